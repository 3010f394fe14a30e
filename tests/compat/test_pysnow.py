"""pysnow 0.7.9, unmodified, against the live emulator over plain HTTP with basic auth.

pysnow sends every sysparm on every request (stale ones included), ``True``/``False`` booleans, and
Content-Type: application/json on bodiless requests; the emulator must take all of that in its stride.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pysnow
import pytest
from compat_support import bulk_create, table_ids, tag


@pytest.fixture(scope="module")
def client(emulator) -> Iterator[pysnow.Client]:
    c = pysnow.Client(host=urlsplit(emulator.url).netloc, user="admin", password="admin", use_ssl=False)
    yield c
    c.session.close()


@pytest.fixture
def incidents(client) -> pysnow.Resource:
    return client.resource(api_path="/table/incident")


@pytest.fixture(scope="module")
def many(http) -> tuple[str, list[dict]]:
    marker = tag("pysnow-many")
    return marker, bulk_create(http, [{"short_description": f"{marker} {i:03d}"} for i in range(250)])


def test_query_builder_or_and_order(incidents, http):
    marker = tag("pysnow-qb")
    bulk_create(http, [{"short_description": f"{marker} {i}", "impact": str(1 + i % 3)} for i in range(9)])
    qb = (
        pysnow.QueryBuilder()
        .field("short_description").starts_with(marker)
        .AND().field("impact").equals("1").OR().field("impact").equals("3")
        .AND().field("number").order_descending()
    )  # fmt: skip
    rows = incidents.get(query=qb, fields=["sys_id", "number", "impact"]).all()
    assert len(rows) == 6
    assert {r["impact"] for r in rows} == {"1", "3"}
    assert [r["number"] for r in rows] == sorted((r["number"] for r in rows), reverse=True)
    expected = table_ids(http, f"short_descriptionSTARTSWITH{marker}^impact=1^ORimpact=3^ORDERBYDESCnumber")
    assert [r["sys_id"] for r in rows] == expected


def test_caller_driven_offset_loop(emulator, incidents, many):
    marker, created = many
    qb = (
        pysnow.QueryBuilder()
        .field("short_description")
        .starts_with(marker)
        .AND()
        .field("short_description")
        .order_ascending()
    )
    emulator.stats(reset=True)
    limit, offset, seen = 100, 0, []
    while True:
        page = incidents.get(query=qb, limit=limit, offset=offset, fields=["sys_id", "short_description"]).all()
        seen.extend(page)
        if len(page) < limit:
            break
        offset += limit
    assert [r["short_description"] for r in seen] == [f"{marker} {i:03d}" for i in range(250)]
    assert [r["sys_id"] for r in seen] == [r["sys_id"] for r in created]
    assert emulator.stats()["by_route"].get("GET /api/now/table/incident") == 3

    response = incidents.get(query=qb, limit=10, offset=0)
    assert response.headers["X-Total-Count"] == "250"


def test_get_one(emulator, incidents, http):
    marker = tag("pysnow-one")
    admin_id = "6816f79cc0a8016401c5a33be04be441"
    record = bulk_create(http, [{"short_description": marker, "caller_id": admin_id}])[0]
    by_query = incidents.get(query={"sys_id": record["sys_id"]}).one()
    assert by_query["number"] == record["number"]
    by_path = incidents.request("GET", path_append="/" + record["sys_id"]).one()
    assert by_path["short_description"] == marker
    # pysnow sends sysparm_exclude_reference_link=False: references come back as {link, value}.
    assert by_path["caller_id"] == {"link": f"{emulator.url}/api/now/table/sys_user/{admin_id}", "value": admin_id}
    with pytest.raises(pysnow.exceptions.NoResults):
        incidents.get(query={"short_description": tag("none")}).one()


def test_create_update_delete(emulator, incidents, http):
    marker = tag("pysnow-crud")
    created = incidents.create(payload={"short_description": marker, "impact": "2"}).one()
    sys_id = created["sys_id"]
    assert (created["short_description"], created["impact"]) == (marker, "2")

    emulator.stats(reset=True)
    updated = incidents.update(query={"sys_id": sys_id}, payload={"short_description": marker + " updated"}).one()
    assert updated["short_description"] == marker + " updated"
    assert updated["sys_mod_count"] == "1"
    assert emulator.stats()["by_route"].get("PUT /api/now/table/incident/{id}") == 1

    # The stale sysparm_query pysnow leaks into later requests must not pick another record.
    other = incidents.create(payload={"short_description": marker + " other"}).one()
    assert other["sys_id"] != sys_id
    assert incidents.request("GET", path_append="/" + other["sys_id"]).one()["sys_id"] == other["sys_id"]

    assert incidents.delete(query={"sys_id": sys_id}) == {"status": "record deleted"}
    assert http.get(f"/api/now/table/incident/{sys_id}").status_code == 404


def test_attachments(client, incidents, http, tmp_path):
    marker = tag("pysnow-att")
    sys_id = incidents.create(payload={"short_description": marker}).one()["sys_id"]
    text_file = tmp_path / "notes.txt"
    text_file.write_bytes(b"first line\nsecond line\n")
    json_file = tmp_path / "payload.json"
    json_file.write_bytes(b'{"looks": "like json", "but": ["is", "a", "file"]}')

    first = incidents.attachments.upload(sys_id, str(text_file)).one()
    second = incidents.attachments.upload(sys_id, str(json_file), name="renamed.json").one()
    assert first["file_name"] == "notes.txt"
    assert first["size_bytes"] == str(len(text_file.read_bytes()))
    assert second["file_name"] == "renamed.json"

    # The table resource now leaks table_name/table_sys_id/file_name into every request: ignored.
    assert incidents.get(query={"sys_id": sys_id}).one()["short_description"] == marker

    listed = incidents.attachments.get(sys_id=sys_id)
    assert sorted(a["file_name"] for a in listed) == ["notes.txt", "renamed.json"]
    for attachment in listed:
        data = client.session.get(
            f"{client.base_url}/api/now/attachment/{attachment['sys_id']}/file", headers={"Accept": "*/*"}
        ).content
        source = text_file if attachment["file_name"] == "notes.txt" else json_file
        assert data == source.read_bytes()
    # Downloading with pysnow's default Accept: application/json works as well.
    assert client.session.get(f"{client.base_url}/api/now/attachment/{first['sys_id']}/file").content.startswith(
        b"first line"
    )

    assert incidents.attachments.delete(first["sys_id"]) == {"status": "record deleted"}
    remaining = incidents.attachments.get(sys_id=sys_id)
    assert [a["file_name"] for a in remaining] == ["renamed.json"]
    assert http.get(f"/api/now/attachment/{first['sys_id']}").status_code == 404


def test_legacy_query_follows_link_next(emulator, many, http, tmp_path):
    marker, _ = many
    host = urlsplit(emulator.url).netloc
    # A page size through the deprecated global request_params: the server pages, the client follows Link.
    legacy = pysnow.Client(
        host=host, user="admin", password="admin", use_ssl=False, request_params={"sysparm_limit": 100}
    )
    try:
        emulator.stats(reset=True)
        records = list(
            legacy.query(table="incident", query=f"short_descriptionSTARTSWITH{marker}").get_multiple(
                fields=["short_description"], order_by=["short_description"]
            )
        )
        assert [r["short_description"] for r in records] == [f"{marker} {i:03d}" for i in range(250)]
        assert emulator.stats()["by_route"].get("GET /api/now/table/incident") == 3

        # With limit=, the client asks to suppress Link, so limit caps the total.
        capped = list(
            legacy.query(table="incident", query=f"short_descriptionSTARTSWITH{marker}").get_multiple(
                fields=["short_description"], order_by=["short_description"], limit=30
            )
        )
        assert len(capped) == 30

        # Legacy insert (201) and multipart attach() to /attachment/upload.
        created = legacy.insert(table="incident", payload={"short_description": marker + " legacy"})
        upload = tmp_path / "legacy.txt"
        upload.write_bytes(b"legacy multipart")
        attached = legacy.query(table="incident", query={"sys_id": created["sys_id"]}).attach(str(upload))
        assert attached["file_name"] == "legacy.txt"
        assert attached["table_sys_id"] == created["sys_id"]
        assert http.get(f"/api/now/attachment/{attached['sys_id']}/file").content == b"legacy multipart"
    finally:
        legacy.session.close()
