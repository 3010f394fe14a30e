"""The Attachment API over real HTTP: uploads (raw and multipart), listing, metadata, download, delete,
the size limit and the ACL rules."""

from __future__ import annotations

import hashlib
import json
import os

import httpx
import pytest
from sn_support import ITIL, READONLY, assert_error, create, tag

META_KEYS = {
    "sys_id", "file_name", "content_type", "size_bytes", "size_compressed", "compressed", "table_name",
    "table_sys_id", "hash", "chunk_size_bytes", "state", "image_height", "image_width", "average_image_color",
    "download_link", "sys_created_on", "sys_created_by", "sys_updated_on", "sys_updated_by", "sys_mod_count",
    "sys_tags", "created_by_name", "updated_by_name",
}  # fmt: skip


@pytest.fixture
def incident(admin: httpx.Client) -> dict:
    return create(admin, "incident", {"short_description": tag("att")})


def upload(client: httpx.Client, table_sys_id: str, name: str, data: bytes, content_type: str = "text/plain",
           table: str = "incident", prefix: str = "/api/now/attachment") -> httpx.Response:  # fmt: skip
    return client.post(
        f"{prefix}/file",
        params={"table_name": table, "table_sys_id": table_sys_id, "file_name": name},
        content=data,
        headers={"Content-Type": content_type},
    )


def test_raw_upload_round_trip(emulator, admin, incident):
    data = os.urandom(3000) + b"\x00\xff"
    r = upload(admin, incident["sys_id"], "blob.bin", data, "application/octet-stream", prefix="/api/now/v1/attachment")
    assert r.status_code == 201, r.text
    meta = r.json()["result"]
    assert set(meta) == META_KEYS
    assert all(isinstance(v, str) for v in meta.values()), meta
    assert meta["file_name"] == "blob.bin"
    assert meta["content_type"] == "application/octet-stream"
    assert meta["size_bytes"] == str(len(data)) == meta["size_compressed"]
    assert meta["compressed"] == "false"
    assert meta["hash"] == hashlib.sha256(data).hexdigest()
    assert meta["chunk_size_bytes"] == "700000"
    assert meta["state"] == "available"
    assert (meta["table_name"], meta["table_sys_id"]) == ("incident", incident["sys_id"])
    assert meta["sys_created_by"] == meta["sys_updated_by"] == "admin"
    assert meta["created_by_name"] == "System Administrator"
    assert meta["sys_mod_count"] == "0"
    assert meta["image_width"] == meta["image_height"] == meta["average_image_color"] == ""
    assert meta["download_link"] == f"{emulator.url}/api/now/attachment/{meta['sys_id']}/file"
    assert r.headers["Location"] == f"{emulator.url}/api/now/attachment/{meta['sys_id']}"

    # Download with the Accept header clients leave at JSON: bytes come back untouched.
    d = admin.get(f"/api/now/v1/attachment/{meta['sys_id']}/file", headers={"Accept": "application/json"})
    assert d.status_code == 200
    assert d.content == data
    assert d.headers["content-type"].startswith("application/octet-stream")
    assert json.loads(d.headers["X-Attachment-Metadata"]) == meta

    got = admin.get(f"/api/now/attachment/{meta['sys_id']}")
    assert got.status_code == 200
    assert got.json()["result"] == meta


def test_json_content_type_body_is_not_parsed(admin, incident):
    data = b'{"not": "parsed", "broken": '  # invalid JSON on purpose: it must be stored as is
    r = upload(admin, incident["sys_id"], "data.json", data, "application/json")
    assert r.status_code == 201, r.text
    meta = r.json()["result"]
    assert meta["content_type"] == "application/json"
    assert meta["size_bytes"] == str(len(data))
    assert admin.get(f"/api/now/attachment/{meta['sys_id']}/file").content == data


def test_multipart_upload_round_trip(admin, incident):
    data = "héllo wörld\n".encode() * 50
    r = admin.post(
        "/api/now/attachment/upload",
        data={"table_name": "incident", "table_sys_id": incident["sys_id"]},
        files={"uploadFile": ("notes.txt", data, "text/plain")},
    )
    assert r.status_code == 201, r.text
    meta = r.json()["result"]
    assert meta["file_name"] == "notes.txt"
    assert meta["content_type"] == "text/plain"
    assert meta["size_bytes"] == str(len(data))
    assert meta["hash"] == hashlib.sha256(data).hexdigest()
    assert r.headers["Location"].endswith(f"/api/now/attachment/{meta['sys_id']}")
    assert admin.get(f"/api/now/attachment/{meta['sys_id']}/file").content == data


def test_multipart_upload_errors(admin, incident):
    no_file = admin.post(
        "/api/now/attachment/upload", data={"table_name": "incident", "table_sys_id": incident["sys_id"]},
        files={"ignored": (None, "just a field")},
    )  # fmt: skip
    assert_error(no_file, 400, "Missing file part")
    no_table = admin.post(
        "/api/now/attachment/upload", data={"table_sys_id": incident["sys_id"]}, files={"file": ("a.txt", b"x")}
    )
    assert_error(no_table, 400, "Missing parameter: table_name")
    # pysnow's multipart=True sends a multipart Content-Type without a boundary.
    broken = admin.post("/api/now/attachment/upload", content=b"raw", headers={"Content-Type": "multipart/form-data"})
    assert broken.status_code == 400
    assert broken.json()["status"] == "failure"


def test_list_query_order_paging_and_total(emulator, admin, incident):
    names = ["c.txt", "a.txt", "b.txt", "d.txt"]
    for name in names:
        assert upload(admin, incident["sys_id"], name, name.encode()).status_code == 201
    other = create(admin, "incident", {"short_description": tag("att-other")})
    assert upload(admin, other["sys_id"], "other.txt", b"o").status_code == 201

    query = f"table_name=incident^table_sys_id={incident['sys_id']}^ORDERBYfile_name"
    r = admin.get("/api/now/attachment", params={"sysparm_query": query})
    assert r.status_code == 200
    assert r.headers["X-Total-Count"] == "4"
    assert [m["file_name"] for m in r.json()["result"]] == sorted(names)
    assert 'rel="first"' in r.headers["Link"]

    desc = admin.get("/api/now/attachment", params={"sysparm_query": query.replace("ORDERBY", "ORDERBYDESC")})
    assert [m["file_name"] for m in desc.json()["result"]] == sorted(names, reverse=True)

    page = admin.get(
        "/api/now/v1/attachment",
        params={"sysparm_query": query, "sysparm_limit": 2, "sysparm_offset": 1,
                "sysparm_suppress_pagination_header": "true", "sysparm_display_value": "all"},
    )  # fmt: skip
    assert page.status_code == 200
    assert page.headers["X-Total-Count"] == "4"  # sent even when pagination headers are suppressed
    assert "Link" not in page.headers
    result = page.json()["result"]
    assert [m["file_name"] for m in result] == ["b.txt", "c.txt"]
    assert all(isinstance(v, str) for m in result for v in m.values())  # never display-value pairs

    link = admin.get("/api/now/attachment", params={"sysparm_query": query, "sysparm_limit": 2})
    nxt = [part for part in link.headers["Link"].split(",") if 'rel="next"' in part]
    assert nxt and "sysparm_offset=2" in nxt[0]

    nothing = admin.get("/api/now/v1/attachment", params={"sysparm_query": "table_sys_id=0123"})
    assert nothing.status_code == 200
    assert nothing.json() == {"result": []}
    assert nothing.headers["X-Total-Count"] == "0"


def test_delete_then_404(admin, incident):
    sys_id = upload(admin, incident["sys_id"], "gone.txt", b"bye").json()["result"]["sys_id"]
    r = admin.delete(f"/api/now/v1/attachment/{sys_id}")
    assert r.status_code == 204
    assert r.content == b""
    assert_error(admin.get(f"/api/now/attachment/{sys_id}"), 404, "No Record found")
    assert_error(admin.get(f"/api/now/attachment/{sys_id}/file"), 404, "No Record found")
    assert_error(admin.delete(f"/api/now/attachment/{sys_id}"), 404, "No Record found")
    listed = admin.get("/api/now/attachment", params={"sysparm_query": f"sys_id={sys_id}"})
    assert listed.headers["X-Total-Count"] == "0"


@pytest.mark.parametrize("missing", ["table_name", "table_sys_id", "file_name"])
def test_missing_parameter_is_400(admin, incident, missing):
    params = {"table_name": "incident", "table_sys_id": incident["sys_id"], "file_name": "x.txt"}
    del params[missing]
    r = admin.post("/api/now/attachment/file", params=params, content=b"x", headers={"Content-Type": "text/plain"})
    assert_error(r, 400, f"Missing parameter: {missing}")


def test_missing_content_type_is_400(admin, incident):
    r = admin.post(
        "/api/now/attachment/file",
        params={"table_name": "incident", "table_sys_id": incident["sys_id"], "file_name": "x.txt"},
        content=b"x",
    )
    assert "content-type" not in r.request.headers
    assert_error(r, 400, "Content-Type header is required")


def test_unknown_target_is_404(admin, incident):
    assert_error(upload(admin, "0" * 32, "x.txt", b"x"), 404, "No Record found")
    assert_error(upload(admin, incident["sys_id"], "x.txt", b"x", table="no_such_table"), 404, "No Record found")
    # The same sys_id on another table is not the record.
    assert_error(upload(admin, incident["sys_id"], "x.txt", b"x", table="change_request"), 404, "No Record found")


def test_acl_read_only_user_gets_403_itil_can_attach(emulator, admin, incident):
    with emulator.client(READONLY) as readonly:
        r = upload(readonly, incident["sys_id"], "ro.txt", b"nope")
        assert_error(r, 403, "Operation Failed", "ACL Exception Insert Failed due to security constraints")
    listed = admin.get("/api/now/attachment", params={"sysparm_query": f"table_sys_id={incident['sys_id']}"})
    assert listed.headers["X-Total-Count"] == "0"  # nothing half-written
    with emulator.client(ITIL) as itil:
        r = upload(itil, incident["sys_id"], "itil.txt", b"yes")
        assert r.status_code == 201, r.text
        sys_id = r.json()["result"]["sys_id"]
        assert r.json()["result"]["sys_created_by"] == "itil"
    with emulator.client(READONLY) as readonly:
        # Read-only users read attachments, but cannot delete them.
        assert readonly.get(f"/api/now/attachment/{sys_id}/file").content == b"yes"
        assert_error(readonly.delete(f"/api/now/attachment/{sys_id}"), 403, "Operation Failed")
    with emulator.client(ITIL) as itil:
        # itil reads groups but cannot write them: 403; it cannot even see OAuth entities: 404.
        group = admin.get("/api/now/table/sys_user_group", params={"sysparm_limit": 1}).json()["result"][0]
        r = upload(itil, group["sys_id"], "g.txt", b"g", table="sys_user_group")
        assert_error(r, 403, "Operation Failed", "ACL Exception Insert Failed due to security constraints")
        prop = admin.get("/api/now/table/oauth_entity", params={"sysparm_limit": 1}).json()["result"][0]
        assert_error(upload(itil, prop["sys_id"], "p.txt", b"p", table="oauth_entity"), 404, "No Record found")
        assert upload(admin, prop["sys_id"], "p.txt", b"p", table="oauth_entity").status_code == 201


def test_unauthenticated_is_401(emulator, incident):
    r = httpx.post(
        f"{emulator.url}/api/now/attachment/file",
        params={"table_name": "incident", "table_sys_id": incident["sys_id"], "file_name": "x.txt"},
        content=b"x", headers={"Content-Type": "text/plain"},
    )  # fmt: skip
    assert_error(r, 401, "User Not Authenticated")


def test_size_limit(emulator, admin, incident):
    emulator.set_properties(**{"com.glide.attachment.max_size": "0.001"})  # 1048 bytes
    try:
        big = upload(admin, incident["sys_id"], "big.bin", b"x" * 5000, "application/octet-stream")
        assert_error(big, 400, "Failed to create the attachment. File part might be too large.")
        multipart = admin.post(
            "/api/now/attachment/upload",
            data={"table_name": "incident", "table_sys_id": incident["sys_id"]},
            files={"file": ("big.bin", b"x" * 5000, "application/octet-stream")},
        )
        assert_error(multipart, 400, "Failed to create the attachment. File part might be too large.")
        small = upload(admin, incident["sys_id"], "small.bin", b"x" * 1000, "application/octet-stream")
        assert small.status_code == 201, small.text
    finally:
        emulator.set_properties(**{"com.glide.attachment.max_size": "1024"})
    listed = admin.get("/api/now/attachment", params={"sysparm_query": f"table_sys_id={incident['sys_id']}"})
    assert [m["file_name"] for m in listed.json()["result"]] == ["small.bin"]
    assert upload(admin, incident["sys_id"], "big.bin", b"x" * 5000).status_code == 201
