"""The HTTP face: an ASGI app whose routes call the emulator's services.

The outer middleware applies fault injection and latency and guarantees that no Python traceback ever
reaches a client: anything unexpected becomes ServiceNow's 500 envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from .api import admin, aggregate, attachment, batch, change, cmdb, ire, oauth, table
from .api.common import BASE_HEADERS, JSON_TYPE, error_response, transaction_id
from .emulator import Emulator
from .errors import PlatformError, no_such_resource
from .faults import QUOTA_MESSAGE

log = logging.getLogger("servicenow_emulator")
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
HIBERNATION_PAGE = (Path(__file__).parent / "hibernating.html").read_bytes()


async def unknown_resource(request: Request) -> Response:
    """No route: 405 when the path is a resource that lacks this method, else 400 (never plain text)."""
    for route in request.app.router.routes:
        if getattr(route, "endpoint", None) is unknown_resource:
            continue
        match, _ = route.matches(request.scope)
        if match == Match.PARTIAL:
            return error_response(
                PlatformError(405, "Method not Supported", f"{request.method} method not supported for API")
            )
    return error_response(no_such_resource())


def internal_error(request: Request, exc: Exception) -> Response:
    """Starlette's outermost handler answers unexpected errors: ServiceNow's 500 envelope, not plain text."""
    return error_response(PlatformError(500, "Internal Server Error", "The emulator failed to process the request"))


def _routes() -> list[Route]:
    routes: list[Route] = []
    for module in (table, attachment, aggregate, batch, cmdb, ire, change, oauth, admin):
        for path, endpoint, methods in module.ROUTES:
            routes.append(Route(path, endpoint, methods=methods))
    # Every method, OPTIONS and TRACE included, so that no request ever gets Starlette's plain-text answers.
    routes.append(Route("/{path:path}", unknown_resource, methods=sorted(KNOWN_METHODS)))
    return routes


class EmulatorMiddleware:
    """Faults, latency, method override and the never-a-traceback guarantee, around every request."""

    def __init__(self, app: Any, emulator: Emulator):
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        method = scope["method"]
        for name, value in scope["headers"]:
            if name == b"x-http-method-override" and method == "POST":
                scope = {**scope, "method": value.decode().upper()}
                method = scope["method"]
        if method not in KNOWN_METHODS:
            error = PlatformError(405, "Method not Supported", f"{method} method not supported for API")
            await _send(send, 405, orjson.dumps(error.envelope()), JSON_TYPE)
            return
        stats = self.emulator.stats
        stats.requests += 1
        stats.by_route[f"{method} {_route_key(path)}"] += 1
        faults = self.emulator.faults
        decision = faults.decide(method, path)
        if faults.config.latency_ms and not path.startswith(faults.config.exempt_prefix):
            await asyncio.sleep(faults.config.latency_ms / 1000)
        if decision.kind == "drop":
            await _drop(send)
            return
        if decision.kind == "hibernate":
            await _send(send, 200, HIBERNATION_PAGE, "text/html;charset=UTF-8")
            return
        if decision.kind == "quota":
            # The platform has already sent 200 when the quota rule cancels a streaming transaction.
            body = orjson.dumps(
                {
                    "result": [],
                    "error": {
                        "message": QUOTA_MESSAGE,
                        "detail": f"{QUOTA_MESSAGE} Check logs for error trace or enable glide.rest.debug property "
                        "to verify REST request processing",
                    },
                    "status": "failure",
                }
            )
            await _send(send, 200, body, JSON_TYPE)
            return
        if decision.kind == "error":
            await _send_fault(send, decision.status, decision.retry_after)
            return
        if decision.kind == "drop_after":
            # The request is applied but the answer is lost: the hard case for non-idempotent writes.
            async def discard(message: dict) -> None:
                return None

            with contextlib.suppress(Exception):
                await self.app(scope, receive, discard)
            await _drop(send)
            return
        started = False

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unexpected error serving %s %s", method, path)
            if not started:
                error = PlatformError(500, "Internal Server Error", "The emulator failed to process the request")
                await _send(send, 500, orjson.dumps(error.envelope()), JSON_TYPE)


def _route_key(path: str) -> str:
    """Collapse sys_ids so that stats group by resource."""
    parts = path.split("/")
    return "/".join("{id}" if len(p) == 32 and all(c in "0123456789abcdef" for c in p) else p for p in parts)


async def _send(send: Any, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
    merged = {**BASE_HEADERS, "X-Transaction-ID": transaction_id(), "Content-Type": content_type, **(headers or {})}
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in merged.items()]
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def _send_fault(send: Any, status: int, retry_after: int | None) -> None:
    if status == 429:
        error = PlatformError(429, "Rate limit exceeded", "Rate limit of requests per hour for REST API exceeded")
        headers = {"Retry-After": str(retry_after if retry_after is not None else 1)}
        await _send(send, 429, orjson.dumps(error.envelope()), JSON_TYPE, headers)
        return
    if status in (502, 503, 504):
        # A load balancer or a node that is down answers HTML, not the JSON envelope.
        reason = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}[status]
        body = f"<html><head><title>{status} {reason}</title></head><body><h1>{reason}</h1></body></html>".encode()
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        await _send(send, status, body, "text/html;charset=UTF-8", headers)
        return
    error = PlatformError(status, "Internal Server Error" if status >= 500 else "Request failed", "Injected fault")
    await _send(send, status, orjson.dumps(error.envelope()), JSON_TYPE)


async def _drop(send: Any) -> None:
    """Close the connection without an answer (uvicorn passes its protocol's bound ``send``)."""
    owner = getattr(send, "__self__", None)
    transport = getattr(owner, "transport", None)
    if transport is not None:
        transport.close()
        return
    # Not under uvicorn: start a response and abort it, which also breaks the client's read.
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
    raise ConnectionAbortedError("dropped by fault injection")


def create_app(emulator: Emulator | None = None) -> Any:
    emulator = emulator or Emulator()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await emulator.outbound.start()
        try:
            yield
        finally:
            await emulator.outbound.stop()

    app = Starlette(routes=_routes(), lifespan=lifespan, exception_handlers={Exception: internal_error})
    app.state.emulator = emulator
    wrapped = EmulatorMiddleware(app, emulator)
    wrapped.state = app.state  # type: ignore[attr-defined]
    wrapped.emulator = emulator  # type: ignore[attr-defined]
    return wrapped
