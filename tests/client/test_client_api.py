"""The client's operations over real HTTP: records, attachments (with the hash skip), the Aggregate and Batch
APIs, the headers it sends, and the sync and async faces giving identical results."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
from client_support import Instance, tag

from servicenow_blocks import BatchItem, NotFoundError, Query, ServiceNowClient

UPLOAD = "POST /api/now/attachment/file"


def test_create_get_update_delete(sn: Instance, client: Any) -> None:
    marker = tag("crud")
    created = client.create(
        "incident", {"short_description": "crud", "correlation_id": marker, "urgency": "2"}, fields=["sys_id", "number"]
    )
    assert set(created) == {"sys_id", "number"} and created["number"].startswith("INC")
    got = client.get("incident", created["sys_id"])
    assert (got["short_description"], got["urgency"], got["correlation_id"]) == ("crud", "2", marker)
    updated = client.update("incident", created["sys_id"], {"urgency": "1", "work_notes": "note"}, fields=["urgency"])
    assert updated == {"urgency": "1"}
    assert client.first("incident", Query().eq("correlation_id", marker))["sys_id"] == created["sys_id"]
    client.delete("incident", created["sys_id"])
    assert client.first("incident", Query().eq("correlation_id", marker)) is None


def test_attachments_skip_identical_uploads(sn: Instance, client: Any, tmp_path: Any) -> None:
    record = client.create("incident", {"short_description": "files", "correlation_id": tag("files")})
    sys_id = record["sys_id"]
    content = b"first version\n" * 100
    before = sn.counts()
    first = client.attach("incident", sys_id, "log.txt", content, content_type="text/plain")
    assert first.uploaded and first.metadata["hash"] == hashlib.sha256(content).hexdigest()
    again = client.attach("incident", sys_id, "log.txt", content, content_type="text/plain")
    assert not again.uploaded and again.sys_id == first.sys_id
    assert sn.delta(before, UPLOAD) == 1  # the identical file was not sent again
    changed = client.attach("incident", sys_id, "log.txt", b"second version\n", content_type="text/plain")
    assert changed.uploaded and changed.sys_id != first.sys_id
    forced = client.attach("incident", sys_id, "log.txt", content, skip_if_identical=False)
    assert forced.uploaded
    assert sn.delta(before, UPLOAD) == 3
    listed = client.list_attachments("incident", sys_id)
    assert [a["sys_id"] for a in listed] == [first.sys_id, changed.sys_id, forced.sys_id]
    assert {a["file_name"] for a in listed} == {"log.txt"}
    assert client.download_attachment(first.sys_id) == content
    assert client.download_attachment(changed.sys_id) == b"second version\n"
    client.delete_attachment(forced.sys_id)
    assert len(client.list_attachments("incident", sys_id, "log.txt")) == 2
    try:
        client.download_attachment(forced.sys_id)
        raise AssertionError("a deleted attachment downloaded")
    except NotFoundError as error:
        assert error.status == 404


def test_aggregate_count_and_group_by(client: Any) -> None:
    marker = tag("stats")
    for urgency in ("1", "1", "2", "3", "3", "3"):
        client.create("incident", {"short_description": "stats", "correlation_id": marker, "urgency": urgency})
    query = Query().eq("correlation_id", marker)
    assert client.count("incident", query) == 6
    assert client.count("incident", query.eq("urgency", "3")) == 3
    groups = client.group_by("incident", ["urgency"], query)
    assert sorted((g["urgency"], g["count"]) for g in groups) == [("1", 2), ("2", 1), ("3", 3)]
    labelled = client.group_by("incident", ["urgency"], query, display_value=True)
    assert sorted(g["count"] for g in labelled) == [1, 2, 3]
    assert all(" - " in g["urgency"] for g in labelled)  # "1 - High"


def test_batch(client: Any) -> None:
    marker = tag("batch")
    results = client.batch(
        [
            BatchItem("POST", "/api/now/table/incident", {"short_description": "b1", "correlation_id": marker}),
            BatchItem("POST", "/api/now/table/incident", {"short_description": "b2", "correlation_id": marker}),
            BatchItem("GET", "/api/now/table/incident/" + "0" * 32, id="missing"),
            BatchItem("GET", f"/api/now/table/incident?sysparm_query=correlation_id={marker}", id="list"),
        ]
    )
    assert [r.status_code for r in results] == [201, 201, 404, 200]
    assert results[0].ok and not results[2].ok and results[2].id == "missing"
    assert results[0].body["result"]["short_description"] == "b1"
    assert client.count("incident", Query().eq("correlation_id", marker)) == 2


def test_headers_sent(sn: Instance) -> None:
    seen: list[httpx.Request] = []
    creds = sn.credentials(user_agent="acme-automation/2.0")
    with creds.get_client() as client:
        client._http.event_hooks["request"].append(seen.append)
        client.get_records("incident", limit=1)
        client.create("incident", {"short_description": "headers", "correlation_id": tag("headers")})
    assert all(r.headers["user-agent"] == "acme-automation/2.0" for r in seen)
    assert all(r.headers["accept"] == "application/json" for r in seen)
    assert seen[1].headers["content-type"] == "application/json"


def _series(marker: str) -> list[tuple[str, tuple, dict]]:
    query = Query().eq("correlation_id", marker)
    return [
        ("get_records", ("incident", query), {"fields": ["number", "urgency"], "page_size": 2}),
        ("get_records", ("incident", query), {"limit": 3, "page_size": 2, "display_value": "all"}),
        ("first", ("incident", query.order_by_desc("number")), {}),
        ("count", ("incident", query), {}),
        ("group_by", ("incident", ["urgency"], query), {}),
        ("get_records", ("incidnet",), {}),  # an error, the same on both faces
    ]


def _outcome(run: Any) -> Any:
    try:
        return run()
    except Exception as error:
        return (type(error).__name__, error.status, error.message)


async def test_sync_and_async_faces_give_identical_results(
    sn: Instance, client: ServiceNowClient, aclient: Any
) -> None:
    marker = tag("faces")
    for i in range(5):
        client.create(
            "incident", {"short_description": f"face {i}", "correlation_id": marker, "urgency": str(1 + i % 3)}
        )
    for name, args, kwargs in _series(marker):
        sync_result = _outcome(lambda name=name, args=args, kwargs=kwargs: getattr(client, name)(*args, **kwargs))
        try:
            async_result = await getattr(aclient, name)(*args, **kwargs)
        except Exception as error:
            async_result = (type(error).__name__, error.status, error.message)
        if name == "group_by":
            sync_result, async_result = sorted(sync_result, key=str), sorted(async_result, key=str)
        assert async_result == sync_result, name
    assert isinstance(sync_result, tuple) and sync_result[0] == "InvalidTableError"
    # Streaming: the same rows in the same order.
    query = Query().eq("correlation_id", marker)
    sync_rows = list(client.iter_records("incident", query, page_size=2, concurrency=2))
    async_rows = [row async for row in aclient.aiter_records("incident", query, page_size=2, concurrency=2)]
    assert async_rows == sync_rows and len(sync_rows) == 5
    # Writes: the same shape from both faces.
    made = [
        client.create("incident", {"short_description": "w", "correlation_id": marker}, fields=["short_description"]),
        await aclient.create(
            "incident", {"short_description": "w", "correlation_id": marker}, fields=["short_description"]
        ),
    ]
    assert made[0] == made[1] == {"short_description": "w"}


def test_cmdb_instance_and_identify_reconcile(sn: Instance, client: Any) -> None:
    serial = tag("SN")
    item = {"className": "cmdb_ci_linux_server", "values": {"name": serial.lower(), "serial_number": serial}}
    before = sn.counts()
    # The answer of the first IRE call is lost after it was applied: IRE is safe to re-send (it identifies).
    with sn.faults(script=[{"kind": "drop_after", "method": "POST", "path": "/api/now/identifyreconcile$"}]):
        result = client.identify_reconcile([item])
    assert sn.delta(before, "POST /api/now/identifyreconcile") == 2
    (made,) = result["items"]
    assert made["operation"] in ("NO_CHANGE", "UPDATE")  # the re-send found the CI the first call created
    assert len(sn.rows("cmdb_ci_linux_server", f"serial_number={serial}")) == 1
    instance = client.cmdb_instance("cmdb_ci_linux_server", made["sysId"])
    assert instance["attributes"]["serial_number"] == serial
    assert {"outbound_relations", "inbound_relations"} <= set(instance)
