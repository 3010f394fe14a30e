"""pysnc (ServiceNow's own Python client), unmodified, against the live emulator over HTTPS.

pysnc refuses http:// instances, so these tests use the emulator's TLS listener and its local CA.
REQUESTS_CA_BUNDLE (set in this environment) would override ``verify=``, so the basic-auth client is a
``requests.Session`` that ignores the environment, and the OAuth test points the variable at the CA.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests
from compat_support import bulk_create, table_ids, tag
from pysnc import ServiceNowClient, ServiceNowPasswordGrantFlow

OAUTH_CLIENT_ID = "prefect-servicenow"
OAUTH_CLIENT_SECRET = "prefect-oauth-secret"


@pytest.fixture(scope="module")
def client(emulator) -> Iterator[ServiceNowClient]:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(emulator.ca_cert)
    session.auth = ("admin", "admin")
    yield ServiceNowClient(emulator.https_url, session)
    session.close()


@pytest.fixture(scope="module")
def many(http) -> tuple[str, list[dict]]:
    marker = tag("pysnc-many")
    return marker, bulk_create(http, [{"short_description": f"{marker} {i:03d}"} for i in range(250)])


def test_query_with_or_conditions_and_ordering(client, http):
    marker = tag("pysnc-or")
    bulk_create(http, [{"short_description": f"{marker} {i}", "impact": str(1 + i % 3)} for i in range(9)])
    gr = client.GlideRecord("incident")
    gr.add_query("short_description", "STARTSWITH", marker)
    condition = gr.add_query("impact", "1")
    condition.add_or_condition("impact", "3")
    gr.order_by_desc("number")
    gr.query()
    assert gr.get_row_count() == 6
    seen = [(r.sys_id, r.impact, r.number) for r in gr]
    assert {impact for _, impact, _ in seen} == {"1", "3"}
    numbers = [number for _, _, number in seen]
    assert numbers == sorted(numbers, reverse=True)
    expected = table_ids(http, f"short_descriptionSTARTSWITH{marker}^impact=1^ORimpact=3^ORDERBYDESCnumber")
    assert [sys_id for sys_id, _, _ in seen] == expected
    # display_value=all: pysnc gets both faces of a choice field.
    first = client.GlideRecord("incident")
    assert first.get(expected[0])
    assert first.impact.get_display_value() in ("1 - High", "3 - Low")


def test_iteration_across_pages(emulator, client, many):
    marker, created = many
    emulator.stats(reset=True)
    gr = client.GlideRecord("incident", batch_size=100)
    gr.fields = ["sys_id", "number", "short_description"]
    gr.add_query("short_description", "STARTSWITH", marker)
    gr.order_by("short_description")
    gr.query()
    assert gr.get_row_count() == 250
    seen = [str(r.short_description) for r in gr]
    assert seen == [f"{marker} {i:03d}" for i in range(250)]
    assert len({r["sys_id"] for r in created}) == 250
    # Three pages of 100, 100 and 50 rows: offsets follow the rows received.
    assert emulator.stats()["by_route"].get("GET /api/now/table/incident") == 3


def test_long_query_goes_through_the_batch_api(emulator, client, many):
    """A query over 10000 characters is sent as a GET item of a Batch API request."""
    _, created = many
    ids = [r["sys_id"] for r in created]
    padding = [uuid.uuid4().hex for _ in range(100)]  # unknown ids, to pass pysnc's 10000-char threshold
    emulator.stats(reset=True)
    gr = client.GlideRecord("incident", batch_size=500)
    gr.fields = ["sys_id"]
    gr.add_query("sys_id", "IN", ",".join(ids + padding))
    gr.query()
    assert gr.get_row_count() == 250
    assert sorted(r.sys_id for r in gr) == sorted(ids)
    by_route = emulator.stats()["by_route"]
    assert by_route.get("POST /api/now/v1/batch") == 1
    assert "GET /api/now/table/incident" not in by_route


def test_get_by_sys_id_and_by_field(client, http):
    marker = tag("pysnc-get")
    record = bulk_create(http, [{"short_description": marker}])[0]
    gr = client.GlideRecord("incident")
    assert gr.get(record["sys_id"]) is True
    assert gr.number == record["number"]
    assert gr.short_description == marker

    by_field = client.GlideRecord("incident")
    assert by_field.get("number", record["number"]) is True
    assert by_field.sys_id == record["sys_id"]

    assert client.GlideRecord("incident").get(uuid.uuid4().hex) is False
    empty = client.GlideRecord("incident")
    empty.add_query("short_description", tag("nothing"))
    empty.query()
    assert empty.get_row_count() == 0
    assert list(empty) == []


def test_insert_update_delete(client, http):
    marker = tag("pysnc-crud")
    gr = client.GlideRecord("incident")
    gr.initialize()
    gr.short_description = marker
    gr.impact = 2
    sys_id = gr.insert()
    assert sys_id and len(str(sys_id)) == 32
    assert str(gr.number).startswith("INC")
    stored = http.get(f"/api/now/table/incident/{sys_id}").json()["result"]
    assert (stored["short_description"], stored["impact"], stored["sys_mod_count"]) == (marker, "2", "0")

    gr.short_description = marker + " updated"
    assert gr.update() == sys_id
    stored = http.get(f"/api/now/table/incident/{sys_id}").json()["result"]
    assert (stored["short_description"], stored["sys_mod_count"]) == (marker + " updated", "1")

    assert gr.delete() is True
    assert http.get(f"/api/now/table/incident/{sys_id}").status_code == 404


def test_attachments(client, http):
    marker = tag("pysnc-att")
    gr = client.GlideRecord("incident")
    gr.initialize()
    gr.short_description = marker
    gr.insert()
    location = gr.add_attachment("hello.txt", b"hello world\n", content_type="text/plain")
    gr.add_attachment("data.bin", bytes(range(256)))
    assert location.startswith(client.instance + "/api/now/attachment/")

    attachments = gr.get_attachments()
    assert len(attachments) == 2
    files = {}
    for attachment in attachments:
        files[attachment.file_name] = (attachment.sys_id, attachment.content_type, attachment.read())
    assert files["hello.txt"][1:] == ("text/plain", b"hello world\n")
    assert files["data.bin"][1:] == ("application/octet-stream", bytes(range(256)))
    assert location.endswith(files["hello.txt"][0])

    one = client.Attachment("incident")
    assert one.get(files["hello.txt"][0]) is True
    assert one.readlines() == ["hello world", ""]
    one.delete()
    assert client.Attachment("incident").get(files["hello.txt"][0]) is False
    remaining = gr.get_attachments()
    assert [a.file_name for a in remaining] == ["data.bin"]


def test_update_multiple_and_delete_multiple(client, http):
    marker = tag("pysnc-multi")
    bulk_create(http, [{"short_description": f"{marker} {i}"} for i in range(5)])
    gr = client.GlideRecord("incident")
    gr.add_query("short_description", "STARTSWITH", marker)
    gr.query()
    assert gr.get_row_count() == 5
    for record in gr:
        record.impact = 3
    assert gr.update_multiple() is True
    impacts = http.get(
        "/api/now/table/incident",
        params={"sysparm_query": f"short_descriptionSTARTSWITH{marker}", "sysparm_fields": "impact"},
    ).json()["result"]
    assert [r["impact"] for r in impacts] == ["3"] * 5

    # Nothing changed: pysnc posts an empty batch, which must succeed.
    unchanged = client.GlideRecord("incident")
    unchanged.add_query("short_description", "STARTSWITH", marker)
    unchanged.query()
    assert unchanged.update_multiple() is True

    doomed = client.GlideRecord("incident")
    doomed.add_query("short_description", "STARTSWITH", marker)
    assert doomed.delete_multiple() is True
    assert table_ids(http, f"short_descriptionSTARTSWITH{marker}") == []


def test_oauth_password_grant(emulator, http, monkeypatch):
    # The OAuth session lets the environment's CA bundle override verify=: point it at the emulator's CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.ca_cert))
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    flow = ServiceNowPasswordGrantFlow(
        "prefect.integration", "snow-integration-pw", OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET
    )
    client = ServiceNowClient(emulator.https_url, flow, verify=str(emulator.ca_cert))
    try:
        assert client.session.token["token_type"].lower() == "bearer"
        marker = tag("pysnc-oauth")
        gr = client.GlideRecord("incident")
        gr.initialize()
        gr.short_description = marker
        sys_id = gr.insert()
        stored = http.get(f"/api/now/table/incident/{sys_id}").json()["result"]
        assert stored["sys_created_by"] == "prefect.integration"
        found = client.GlideRecord("incident")
        assert found.get("short_description", marker) is True
    finally:
        # An idle TLS keep-alive connection left open delays the emulator's shutdown.
        client.session.close()

    bad = ServiceNowPasswordGrantFlow("prefect.integration", "wrong", OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET)
    with pytest.raises(Exception):  # noqa: B017 - oauthlib raises its own error class for access_denied
        ServiceNowClient(emulator.https_url, bad, verify=str(emulator.ca_cert))
