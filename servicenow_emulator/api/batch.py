"""The Batch API (reference §5.2): several REST requests in one ``POST /api/now/v1/batch``.

Each item runs in-process through the same ASGI application as a top-level request (same routes, same
handlers, same rules), authorized with the outer request's session: items carry no credentials. Items
are marked ``sn.batch_item`` so that rate limits count only the outer batch request. Fault injection
applies to the outer request only.

Choices on points the reference leaves open (UNCONFIRMED):

- The request must be ``Content-Type: application/json`` (400 when missing, 415 otherwise). A malformed
  body, a ``rest_requests`` that is not a list, or an item without ``id``/``method``/``url`` makes the whole
  batch fail with a 400 envelope; nothing runs.
- An item whose decoded body exceeds ``glide.rest.batch.max.inputSize`` (MB, default 5) is not run and is
  listed in ``unserviced_requests``; the other items still run.
- An item whose response body exceeds ``glide.rest.batch.max.outputSize`` (MB, default 10) or the lower
  ``X-BATCHREQUEST-MAX-OUTPUT-SIZE`` request header (bytes) has run, but is reported unserviced.
- Items not started within the time budget (30 s, the "REST Batch API request timeout" quota; the
  emulator property ``emulator.rest.batch.max_execution_seconds`` changes it) are unserviced.
- An item body that is not valid base64 is serviced with a 400 envelope for that item.
- Item headers ``Authorization``, ``Cookie``, ``Host`` and ``Content-Length`` are replaced (the outer
  session authorizes the item; the outer Host builds links). Accept and Content-Type default to JSON.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..errors import PlatformError, bad_request
from .common import emulator_of, json_response, resource

log = logging.getLogger("servicenow_emulator")

DEFAULT_BUDGET_SECONDS = 30.0
_DROPPED_ITEM_HEADERS = {"authorization", "cookie", "host", "content-length", "transfer-encoding", "connection"}
_HEADER_CASE = {"x-transaction-id": "X-Transaction-ID", "www-authenticate": "WWW-Authenticate"}


def _header_name(raw: bytes) -> str:
    name = raw.decode("latin-1")
    lowered = name.lower()
    return _HEADER_CASE.get(lowered) or "-".join(part[:1].upper() + part[1:] for part in lowered.split("-"))


def _parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    media = content_type.split(";")[0].strip().lower()
    if not media:
        raise bad_request("Content-Type header is required", "Send Content-Type: application/json")
    if "json" not in media:
        raise PlatformError(
            415, "Unsupported Media Type", f"Content-Type '{media}' is not supported; use application/json"
        )
    try:
        data = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        raise bad_request("Exception while reading request", "The payload is not valid JSON.") from None
    if not isinstance(data, dict):
        raise bad_request("Exception while reading request", "The payload must be a JSON object.")
    items = data.get("rest_requests")
    if not isinstance(items, list):
        raise bad_request("Missing or invalid rest_requests", "rest_requests must be a list of request objects")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise bad_request("Invalid rest_requests", f"rest_requests[{index}] is not an object")
        for name in ("id", "method", "url"):
            if item.get(name) in (None, ""):
                raise bad_request(
                    f"Missing field: {name}", f"rest_requests[{index}] has no {name}; id, method and url are required"
                )
        headers = item.get("headers", [])
        if headers is not None and not (
            isinstance(headers, list) and all(isinstance(h, dict) and "name" in h for h in headers)
        ):
            raise bad_request("Invalid headers", f"rest_requests[{index}].headers must be a list of {{name, value}}")
    return data


class _Collector:
    """The ASGI ``send`` side of one item: status, headers and body."""

    def __init__(self) -> None:
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []

    @classmethod
    def failed(cls, error: PlatformError) -> _Collector:
        """An item answered with an error envelope without running it (or after it crashed)."""
        collector = cls()
        collector.status = error.status
        collector.headers = [(b"content-type", b"application/json;charset=UTF-8")]
        collector.chunks = [orjson.dumps(error.envelope())]
        return collector

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


def _item_scope(outer: dict[str, Any], item: dict[str, Any], body: bytes) -> dict[str, Any]:
    url = str(item["url"]).strip()
    parts = urlsplit(url)
    raw_path = parts.path or "/"
    if not raw_path.startswith("/"):
        raw_path = "/" + raw_path
    headers: list[tuple[bytes, bytes]] = []
    present: set[str] = set()
    for header in item.get("headers") or []:
        name = str(header.get("name", "")).strip().lower()
        if not name or name in _DROPPED_ITEM_HEADERS:
            continue
        present.add(name)
        headers.append((name.encode("latin-1", "replace"), str(header.get("value", "")).encode("latin-1", "replace")))
    for name, value in outer["headers"]:
        if name == b"host":
            headers.append((b"host", value))
    if "accept" not in present:
        headers.append((b"accept", b"application/json"))
    if "content-type" not in present:
        headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    return {
        "type": "http",
        "asgi": outer.get("asgi", {"version": "3.0"}),
        "http_version": outer.get("http_version", "1.1"),
        "method": str(item["method"]).strip().upper(),
        "scheme": outer.get("scheme", "http"),
        "server": outer.get("server"),
        "client": outer.get("client"),
        "root_path": "",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("latin-1", "replace"),
        "query_string": parts.query.encode("latin-1", "replace"),
        "headers": headers,
        "state": {},
        "extensions": {},
        "sn.session": outer["sn.session"],
        "sn.batch_item": True,
    }


async def _run_item(app: Any, scope: dict[str, Any], body: bytes) -> _Collector:
    delivered = False
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await never.wait()  # the item's client never disconnects; listeners are cancelled when done
        return {"type": "http.disconnect"}

    collector = _Collector()
    try:
        await app(scope, receive, collector.send)
    except Exception:
        # Never a traceback to the client: the item gets the 500 envelope, the batch goes on.
        log.exception("unexpected error serving batch item %s %s", scope["method"], scope["path"])
        return _Collector.failed(
            PlatformError(500, "Internal Server Error", "The emulator failed to process the request")
        )
    return collector


def _status_text(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _output_limit(request: Request) -> float:
    limit = emulator_of(request).settings.number("glide.rest.batch.max.outputSize", 10) * 1024 * 1024
    header = request.headers.get("x-batchrequest-max-output-size")
    if header:
        with contextlib.suppress(ValueError):
            limit = min(limit, float(header))
    return limit


@resource()
async def batch(request: Request) -> Response:
    emulator = emulator_of(request)
    data = _parse_body(await request.body(), request.headers.get("content-type", ""))
    batch_id = data.get("batch_request_id")
    input_limit = emulator.settings.number("glide.rest.batch.max.inputSize", 5) * 1024 * 1024
    output_limit = _output_limit(request)
    budget = emulator.settings.number("emulator.rest.batch.max_execution_seconds", DEFAULT_BUDGET_SECONDS)
    deadline = time.monotonic() + budget
    serviced: list[dict[str, Any]] = []
    unserviced: list[str] = []
    for item in data["rest_requests"]:
        item_id = str(item["id"])
        if time.monotonic() >= deadline:
            unserviced.append(item_id)
            continue
        encoded = item.get("body") or ""
        try:
            body = base64.b64decode(encoded, validate=True) if encoded else b""
        except (binascii.Error, ValueError, TypeError):
            body = None
        if body is not None and len(body) > input_limit:
            unserviced.append(item_id)
            continue
        started = time.perf_counter()
        if body is None:
            collected = _Collector.failed(bad_request("Invalid request body", "The item body is not valid base64"))
        else:
            collected = await _run_item(request.app, _item_scope(request.scope, item, body), body)
        status, headers, payload = collected.status, collected.headers, collected.body
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        if len(payload) > output_limit:
            unserviced.append(item_id)
            continue
        exclude = item.get("exclude_response_headers") in (True, "true", "True")
        serviced.append(
            {
                "id": item_id,
                "status_code": int(status),
                "status_text": _status_text(status),
                "headers": []
                if exclude
                else [{"name": _header_name(k), "value": v.decode("latin-1")} for k, v in headers],
                "body": base64.b64encode(payload).decode("ascii"),
                "execution_time": elapsed_ms,
            }
        )
    return json_response(
        {
            "batch_request_id": "" if batch_id is None else str(batch_id),
            "serviced_requests": serviced,
            "unserviced_requests": unserviced,
        }
    )


ROUTES = [
    ("/api/now/v1/batch", batch, ["POST"]),
    ("/api/now/batch", batch, ["POST"]),
]
