"""The Attachment API (reference §4): upload, list, read metadata, download and delete file attachments.

Metadata lives in ``sys_attachment`` rows written through the platform (so system fields are maintained
and rules apply); the bytes live in the store's content table. Both are written in one transaction.

Every metadata value is a plain string: the Attachment API has no display-value or reference-link
shapes, whatever ``sysparm_display_value`` the client sends (pysnc sends ``all`` and copes with both).

Choices on points the reference marks UNCONFIRMED:

- An upload larger than ``com.glide.attachment.max_size`` (MB, default 1024) answers **400** with
  ``Failed to create the attachment. File part might be too large.`` (the wording seen in the field; the
  real status code is not documented). The body is drained before answering so the client reads the
  answer instead of a reset connection.
- A missing mandatory parameter answers 400 ``Missing parameter: <name>``, checked in the order
  table_name, table_sys_id, file_name; a missing Content-Type header answers 400 as well.
- An unknown target table is treated like an unknown record: 404 ``No Record found``.
- Deleting an attachment needs delete rights on sys_attachment (403 ``ACL Exception Delete Failed``
  otherwise); reading one needs read rights on sys_attachment (404 when missing, 403 on the list).
- ``/upload`` accepts ``record_sys_id`` (older documentation) as well as ``table_sys_id``; the file part's
  own filename wins over a ``file_name`` form field; a part without a filename is not a file.
- ``creation_time`` (``YYYY-MM-DD HH:MM:SS`` UTC, or ISO 8601) sets ``sys_created_on`` when it parses.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from .. import acl
from ..errors import PlatformError, acl_denied, bad_request, read_denied, record_not_found
from ..platform import Session, new_sys_id
from ..timeutil import parse_glide
from .common import (
    BASE_HEADERS,
    base_url,
    empty_response,
    emulator_of,
    int_param,
    json_response,
    param,
    resource,
    session_of,
    transaction_id,
)
from .table import fetch_rows, link_header

TABLE = "sys_attachment"
DEFAULT_LIMIT = 1000
CHUNK_SIZE_BYTES = "700000"
TOO_LARGE = "Failed to create the attachment. File part might be too large."


# --- metadata ---------------------------------------------------------------------------------------
def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _Names:
    """user_name -> display name, cached for one request."""

    def __init__(self, request: Request):
        self.store = emulator_of(request).store
        self.cache: dict[str, str] = {}

    def __call__(self, user_name: str | None) -> str:
        if not user_name:
            return ""
        if user_name not in self.cache:
            row = self.store.execute("SELECT name FROM sys_user WHERE user_name = ?", [user_name]).fetchone()
            self.cache[user_name] = (row[0] if row else None) or user_name
        return self.cache[user_name]


def metadata(row: dict[str, Any], base: str, names: _Names) -> dict[str, str]:
    """A sys_attachment row as the Attachment API renders it (every value a string)."""
    sys_id = row["sys_id"]
    return {
        "size_bytes": _text(row.get("size_bytes")),
        "file_name": _text(row.get("file_name")),
        "sys_mod_count": _text(row.get("sys_mod_count")),
        "average_image_color": _text(row.get("average_image_color")),
        "image_width": _text(row.get("image_width")),
        "sys_updated_on": _text(row.get("sys_updated_on")),
        "sys_tags": "",
        "table_name": _text(row.get("table_name")),
        "sys_id": sys_id,
        "image_height": _text(row.get("image_height")),
        "sys_updated_by": _text(row.get("sys_updated_by")),
        "download_link": f"{base}/api/now/attachment/{sys_id}/file",
        "content_type": _text(row.get("content_type")),
        "sys_created_on": _text(row.get("sys_created_on")),
        "size_compressed": _text(row.get("size_compressed")),
        "compressed": "true" if row.get("compressed") else "false",
        "state": _text(row.get("state")),
        "table_sys_id": _text(row.get("table_sys_id")),
        "chunk_size_bytes": _text(row.get("chunk_size_bytes")),
        "hash": _text(row.get("hash")),
        "sys_created_by": _text(row.get("sys_created_by")),
        "created_by_name": names(row.get("sys_created_by")),
        "updated_by_name": names(row.get("sys_updated_by")),
    }


def _readable_attachment(request: Request) -> dict[str, Any]:
    """The attachment named in the path, or the 404 a missing or unreadable one gets."""
    emulator = emulator_of(request)
    if not acl.allowed(emulator.dictionary, session_of(request), TABLE, "read"):
        raise record_not_found()
    row = emulator.store.get(TABLE, request.path_params["sys_id"])
    if row is None:
        raise record_not_found()
    return row


# --- writes -----------------------------------------------------------------------------------------
def _max_bytes(request: Request) -> float:
    return emulator_of(request).settings.number("com.glide.attachment.max_size", 1024) * 1024 * 1024


def _check_target(request: Request, session: Session, table_name: str, table_sys_id: str) -> None:
    """The target must exist and be visible (else 404); the caller needs create on sys_attachment and
    write on the target (else 403, the insert ACL message)."""
    emulator = emulator_of(request)
    dictionary = emulator.dictionary
    if table_name not in dictionary or not acl.allowed(dictionary, session, table_name, "read"):
        raise record_not_found()
    if emulator.store.get(table_name, table_sys_id) is None:
        raise record_not_found()
    if not (
        acl.allowed(dictionary, session, TABLE, "create") and acl.allowed(dictionary, session, table_name, "write")
    ):
        raise acl_denied("Insert")


def _store_attachment(
    request: Request,
    *,
    table_name: str,
    table_sys_id: str,
    file_name: str,
    content_type: str,
    content: bytes,
    encryption_context: str | None = None,
    creation_time: str | None = None,
) -> Response:
    emulator = emulator_of(request)
    session = session_of(request)
    sys_id = new_sys_id()
    values = {
        "sys_id": sys_id,
        "file_name": file_name,
        "content_type": content_type,
        "size_bytes": len(content),
        "size_compressed": len(content),
        "compressed": "false",
        "table_name": table_name,
        "table_sys_id": table_sys_id,
        "hash": hashlib.sha256(content).hexdigest(),
        "chunk_size_bytes": CHUNK_SIZE_BYTES,
        "state": "available",
        "encryption_context": encryption_context,
    }
    created_on = parse_glide(creation_time) if creation_time else None
    with emulator.store.transaction():
        record = emulator.platform.insert(TABLE, values, session)
        sys_id = record["sys_id"]
        emulator.store.put_content(sys_id, content)
        if created_on:
            emulator.store.update(TABLE, sys_id, {"sys_created_on": created_on})
    row = emulator.store.get(TABLE, sys_id) or record
    base = base_url(request)
    location = f"{base}/api/now/attachment/{sys_id}"
    return json_response({"result": metadata(row, base, _Names(request))}, 201, {"Location": location})


async def _read_body_limited(request: Request, limit: float) -> bytes | None:
    """The raw body, or None when it is over ``limit`` bytes (the rest is drained, not kept)."""
    chunks: list[bytes] = []
    size = 0
    over = False
    async for chunk in request.stream():
        size += len(chunk)
        if over:
            continue
        if size > limit:
            over = True
            chunks.clear()
        else:
            chunks.append(chunk)
    return None if over else b"".join(chunks)


@resource()
async def upload_file(request: Request) -> Response:
    """POST .../attachment/file: the raw body is the file (never parsed, whatever its Content-Type)."""
    session = session_of(request)
    required = {}
    for name in ("table_name", "table_sys_id", "file_name"):
        value = param(request, name)
        if value is None:
            raise bad_request(f"Missing parameter: {name}", f"The {name} parameter is required to post an attachment")
        required[name] = value
    content_type = request.headers.get("content-type", "").strip()
    if not content_type:
        raise bad_request(
            "Content-Type header is required",
            "Specify the content type of the file in the Content-Type header to post an attachment",
        )
    _check_target(request, session, required["table_name"], required["table_sys_id"])
    content = await _read_body_limited(request, _max_bytes(request))
    if content is None:
        raise bad_request(TOO_LARGE, "The attachment exceeds com.glide.attachment.max_size")
    return _store_attachment(
        request,
        table_name=required["table_name"],
        table_sys_id=required["table_sys_id"],
        file_name=required["file_name"],
        content_type=content_type,
        content=content,
        encryption_context=param(request, "encryption_context"),
        creation_time=param(request, "creation_time"),
    )


@resource()
async def upload_multipart(request: Request) -> Response:
    """POST .../attachment/upload: multipart/form-data, metadata fields first, the file part last."""
    session = session_of(request)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        raise bad_request("Invalid Content-Type", "Send the attachment as multipart/form-data")
    try:
        form = await request.form(max_files=10, max_fields=100)
    except Exception as exc:
        detail = getattr(exc, "detail", None) or str(exc) or "The multipart body could not be parsed"
        raise bad_request("Failed to create the attachment. Invalid multipart request.", detail) from None
    try:
        upload: UploadFile | None = None
        fields: dict[str, str] = {}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                upload = value
            else:
                fields.setdefault(name, value)
        table_name = fields.get("table_name") or None
        table_sys_id = fields.get("table_sys_id") or fields.get("record_sys_id") or None
        for name, value in (("table_name", table_name), ("table_sys_id", table_sys_id)):
            if value is None:
                raise bad_request(
                    f"Missing parameter: {name}", f"The {name} form field is required to post an attachment"
                )
        if upload is None:
            raise bad_request("Missing file part", "The multipart body has no file part (a part with a filename)")
        _check_target(request, session, table_name, table_sys_id)
        if (upload.size or 0) > _max_bytes(request):
            raise bad_request(TOO_LARGE, "The attachment exceeds com.glide.attachment.max_size")
        content = await upload.read()
        return _store_attachment(
            request,
            table_name=table_name,
            table_sys_id=table_sys_id,
            file_name=upload.filename or fields.get("file_name") or "attachment",
            content_type=upload.content_type or "application/octet-stream",
            content=content,
            encryption_context=fields.get("encryption_context") or None,
        )
    finally:
        await form.close()


@resource()
async def delete_attachment(request: Request) -> Response:
    emulator = emulator_of(request)
    session = session_of(request)
    row = _readable_attachment(request)
    if not acl.allowed(emulator.dictionary, session, TABLE, "delete"):
        raise acl_denied("Delete")
    with emulator.store.transaction():
        emulator.platform.delete(TABLE, row["sys_id"], session)
        emulator.store.delete_content(row["sys_id"])
    return empty_response(204)


# --- reads ------------------------------------------------------------------------------------------
@resource()
async def list_attachments(request: Request) -> Response:
    """GET .../attachment: metadata rows matching sysparm_query; X-Total-Count is always sent."""
    emulator = emulator_of(request)
    session = session_of(request)
    if not acl.allowed(emulator.dictionary, session, TABLE, "read"):
        raise read_denied()
    limit = int_param(request, "sysparm_limit", DEFAULT_LIMIT)
    offset = int_param(request, "sysparm_offset", 0)
    suppress = (param(request, "sysparm_suppress_pagination_header") or "").strip().lower() == "true"
    # Only sys_id is selected through the shared query path; the metadata shape is built here.
    found, total = fetch_rows(
        request, TABLE, param(request, "sysparm_query") or "", fields=["sys_id"], limit=limit, offset=offset, count=True
    )
    ids = [r["sys_id"]["value"] if isinstance(r["sys_id"], dict) else r["sys_id"] for r in found]
    by_id: dict[str, dict[str, Any]] = {}
    if ids:
        marks = ", ".join("?" for _ in ids)
        cursor = emulator.store.execute(f"SELECT * FROM sys_attachment WHERE sys_id IN ({marks})", ids)
        names = [d[0] for d in cursor.description]
        by_id = {row[names.index("sys_id")]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
    base = base_url(request)
    user_names = _Names(request)
    result = [metadata(by_id[i], base, user_names) for i in ids if i in by_id]
    headers = {"X-Total-Count": str(total or 0)}
    if not suppress:
        headers["Link"] = link_header(request, total or 0, limit, offset)
    return json_response({"result": result}, headers=headers)


@resource()
async def get_attachment(request: Request) -> Response:
    row = _readable_attachment(request)
    return json_response({"result": metadata(row, base_url(request), _Names(request))})


@resource()
async def download(request: Request) -> Response:
    """GET .../attachment/{sys_id}/file: the bytes, whatever the Accept header says."""
    emulator = emulator_of(request)
    row = _readable_attachment(request)
    content = emulator.store.get_content(row["sys_id"])
    if content is None:
        raise PlatformError(404, "No Record found", "The attachment's content is missing")
    meta = metadata(row, base_url(request), _Names(request))
    headers = {
        **BASE_HEADERS,
        "X-Transaction-ID": transaction_id(),
        # ASCII-only JSON: header values must be latin-1, file names need not be.
        "X-Attachment-Metadata": json.dumps(meta, separators=(",", ":")),
    }
    body = b"" if request.method == "HEAD" else content
    response = Response(body, headers=headers, media_type=meta["content_type"] or "application/octet-stream")
    if request.method == "HEAD":
        response.headers["Content-Length"] = str(len(content))
    return response


_PREFIXES = ("/api/now/attachment", "/api/now/v1/attachment")
ROUTES = [
    route
    for prefix in _PREFIXES
    for route in (
        (prefix, list_attachments, ["GET", "HEAD"]),
        (f"{prefix}/file", upload_file, ["POST"]),
        (f"{prefix}/upload", upload_multipart, ["POST"]),
        (f"{prefix}/{{sys_id}}", get_attachment, ["GET", "HEAD"]),
        (f"{prefix}/{{sys_id}}", delete_attachment, ["DELETE"]),
        (f"{prefix}/{{sys_id}}/file", download, ["GET", "HEAD"]),
    )
]
