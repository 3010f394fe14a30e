"""What every REST resource shares: authentication, rate limits, the envelope, parameters and bodies."""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..errors import PlatformError, bad_request
from ..platform import Session

if TYPE_CHECKING:
    from ..emulator import Emulator

JSON_TYPE = "application/json;charset=UTF-8"
BASE_HEADERS = {
    "Server": "ServiceNow",
    "X-Is-Logged-In": "true",
    "Pragma": "no-store,no-cache",
    "Cache-control": "no-cache,no-store,must-revalidate,max-age=-1",
    "Expires": "0",
}


def emulator_of(request: Request) -> Emulator:
    return request.app.state.emulator


def session_of(request: Request) -> Session:
    return request.scope["sn.session"]


def base_url(request: Request) -> str:
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


def transaction_id() -> str:
    return secrets.token_hex(6)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    merged = {**BASE_HEADERS, "X-Transaction-ID": transaction_id(), **(headers or {})}
    return Response(orjson.dumps(data), status_code=status, headers=merged, media_type=JSON_TYPE)


def error_response(error: PlatformError) -> Response:
    return json_response(error.envelope(), error.status, error.headers)


def empty_response(status: int = 204, headers: dict[str, str] | None = None) -> Response:
    merged = {**BASE_HEADERS, "X-Transaction-ID": transaction_id(), **(headers or {})}
    return Response(b"", status_code=status, headers=merged)


def _xml_value(key: str, value: Any) -> str:
    if isinstance(value, dict):
        inner = "".join(_xml_value(k, v) for k, v in value.items())
        return f"<{key}>{inner}</{key}>"
    return f"<{key}>{escape(str(value))}</{key}>"


def xml_response(data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """The Table API's XML form: <response><result>...</result></response>."""
    result = data.get("result")
    rows = result if isinstance(result, list) else [result]
    body = "".join("<result>" + "".join(_xml_value(k, v) for k, v in row.items()) + "</result>" for row in rows if row)
    text = f'<?xml version="1.0" encoding="UTF-8"?><response>{body}</response>'
    merged = {**BASE_HEADERS, "X-Transaction-ID": transaction_id(), **(headers or {})}
    return Response(text.encode(), status_code=status, headers=merged, media_type="application/xml;charset=UTF-8")


def wants_xml(request: Request) -> bool:
    """Accept negotiation for the Table API: JSON by default, XML on request, 406 otherwise."""
    accept = request.headers.get("accept", "").lower()
    if not accept or "json" in accept or "*/*" in accept or "application/*" in accept:
        return False
    if "xml" in accept:
        return True
    raise PlatformError(
        406, "Not Acceptable", f"Accept '{accept}' is not supported; use application/json or application/xml"
    )


# --- parameters -----------------------------------------------------------------------------------
def param(request: Request, name: str) -> str | None:
    """A query parameter, where an empty value means "not set" (clients send ``sysparm_view=``)."""
    value = request.query_params.get(name)
    return value if value not in (None, "") else None


def bool_param(request: Request, name: str, default: bool = False) -> bool:
    value = param(request, name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise bad_request(f"Invalid {name} value", f"{name} must be true or false, not {value!r}")


_INTEGER = re.compile(r"[+-]?[0-9]+")
# The largest LIMIT/OFFSET SQLite takes (a signed 64-bit integer).
MAX_INT_PARAM = 2**63 - 1


def int_param(request: Request, name: str, default: int, *, minimum: int = 0, maximum: int = MAX_INT_PARAM) -> int:
    """An integer parameter (``sysparm_limit``, ``sysparm_offset``): 400 when it is not an integer or is below
    ``minimum``; a value above ``maximum``, however long, is ``maximum`` (a huge limit is no limit, a huge
    offset is past the last row)."""
    value = param(request, name)
    if value is None:
        return default
    text = value.strip()
    if not _INTEGER.fullmatch(text):
        raise bad_request(f"Invalid {name} value", f"{name} must be an integer, not {value!r}")
    try:
        number = int(text)
    except ValueError:  # more digits than int() reads: beyond either bound, the sign decides which
        number = minimum - 1 if text.startswith("-") else maximum + 1
    if number < minimum:
        raise bad_request(f"Invalid {name} value", f"{name} must not be less than {minimum}")
    return min(number, maximum)


def display_param(request: Request) -> str:
    value = (param(request, "sysparm_display_value") or "false").strip().lower()
    if value not in ("true", "false", "all"):
        raise bad_request(
            "Invalid sysparm_display_value value", f"sysparm_display_value must be true, false or all, not {value!r}"
        )
    return value


def fields_param(request: Request) -> list[str] | None:
    value = param(request, "sysparm_fields")
    if value is None:
        return None
    return [f.strip() for f in value.split(",") if f.strip()]


# --- bodies -------------------------------------------------------------------------------------
async def read_json_body(request: Request) -> Any:
    """The JSON body of a write, after the Content-Type and size checks ServiceNow makes."""
    emulator = emulator_of(request)
    limit_mb = emulator.settings.number("glide.rest.max_content_length", 10)
    limit = limit_mb * 1024 * 1024

    def too_large(size: int | str) -> PlatformError:
        return bad_request(
            "Request entity too large",
            f"The request body is {size} bytes; the limit (glide.rest.max_content_length) is {limit_mb:g} MB",
        )

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(declared)  # refused before the body is read into memory
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise too_large(f"more than {int(limit)}")
    body = b"".join(chunks)
    request._body = body  # later readers (request.body()) see the same bytes
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if emulator.settings.flag("emulator.rest.strict_content_type"):
        if not content_type:
            raise bad_request("Content-Type header is required", "Send Content-Type: application/json")
        if "json" not in content_type:
            raise PlatformError(
                415, "Unsupported Media Type", f"Content-Type '{content_type}' is not supported; use application/json"
            )
    if not body.strip():
        return {}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_request("Exception while reading request", "The payload is not valid JSON.") from None


def record_body(data: Any) -> dict[str, Any]:
    """One record per write: a list is taken for its first element, as the platform does."""
    if isinstance(data, list):
        data = data[0] if data else {}
    if not isinstance(data, dict):
        raise bad_request("Exception while reading request", "The payload must be a JSON object.")
    return data


# --- the resource wrapper ---------------------------------------------------------------------------
Handler = Callable[[Request], Awaitable[Response]]


def resource(*, authenticate: bool = True) -> Callable[[Handler], Handler]:
    """Authenticate, apply rate limits, and turn PlatformError into ServiceNow's envelope."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: Request) -> Response:
            emulator = emulator_of(request)
            extra: dict[str, str] = {}
            try:
                if authenticate and "sn.session" not in request.scope:
                    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]}
                    session = emulator.auth.authenticate(headers, request.query_params.get("x-sn-apikey"))
                    request.scope["sn.session"] = session
                    if "cookie" not in headers:
                        cookie = emulator.auth.remember_cookie(session)
                        extra["Set-Cookie"] = f"JSESSIONID={cookie}; Path=/; HttpOnly"
                if authenticate and not request.scope.get("sn.batch_item"):
                    extra.update(emulator.limiter.check(request.scope["sn.session"], request.url.path, request.method))
                response = await handler(request)
            except PlatformError as error:
                response = error_response(error)
                if error.status == 401:
                    response.headers["WWW-Authenticate"] = 'Basic realm="Service-now"'
            for name, value in extra.items():
                response.headers[name] = value
            return response

        return wrapper

    return decorate
