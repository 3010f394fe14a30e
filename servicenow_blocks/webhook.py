"""The webhook receiver: ServiceNow Business Rules POST here; Prefect gets exactly one run per approval.

``POST /servicenow/webhook`` checks, in order: body size (413), the HMAC signature over
``timestamp.body`` and a 5-minute timestamp window (401), JSON (400) and the payload schema (422).
Then it re-reads the record from ServiceNow (the body is a hint, never the truth) and:

- ``change_request``: dispatches the change (``dispatch.dispatch_change``): 202 with the flow run id, or
  200 with the reason it was not dispatched (not approved, already claimed, ...);
- ``change_task`` of a Prefect approval gate: resumes the waiting flow run (``gates.resume_gate``).

A delivery seen before (same signature within the window) gets the first answer again. ``GET /health``
reports readiness. Start it with ``prefect-servicenow webhook``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import signing
from .client import AsyncServiceNowClient
from .credentials import ServiceNowCredentials
from .dispatch import DEFAULT_DEPLOYMENT, dispatch_change, idempotency_key, read_ticket, why_not_runnable
from .errors import NotFoundError, ServiceNowError
from .gates import GATE_FIELDS, parse_gate_correlation, resume_gate

log = logging.getLogger("servicenow_blocks.webhook")
MAX_BODY_BYTES = 64 * 1024
SYS_ID_PATTERN = r"^[0-9a-f]{32}$"


class WebhookPayload(BaseModel):
    """What the Business Rule sends (deployments/servicenow/prefect_webhook_business_rule.js)."""

    table: str = Field(pattern=r"^[a-z0-9_]+$")
    sys_id: str = Field(pattern=SYS_ID_PATTERN)
    number: str = ""
    operation: str = Field(pattern=r"^(insert|update)$")
    sys_updated_on: str = ""
    sys_mod_count: str = ""
    changed: dict[str, str] = Field(default_factory=dict)
    rule: str = ""


@dataclass
class ReceiverConfig:
    """Where the receiver's secrets and targets come from."""

    credentials: ServiceNowCredentials
    secrets: list[str]
    deployment: str = DEFAULT_DEPLOYMENT
    tolerance_s: int = signing.DEFAULT_TOLERANCE_S
    max_body_bytes: int = MAX_BODY_BYTES
    path: str = "/servicenow/webhook"
    # Flow-run creations in flight at once: a burst of approvals queues here rather than as concurrent
    # writers on the Prefect server (on SQLite they collide and get 503s).
    max_concurrent_dispatches: int = 8


@dataclass
class _ReplayCache:
    """Answers already given, by signature, for the length of the timestamp window."""

    ttl_s: float
    entries: OrderedDict[str, tuple[float, int, dict[str, Any]]] = field(default_factory=OrderedDict)

    def get(self, key: str) -> tuple[int, dict[str, Any]] | None:
        self._expire()
        hit = self.entries.get(key)
        return (hit[1], hit[2]) if hit else None

    def put(self, key: str, status: int, body: dict[str, Any]) -> None:
        self.entries[key] = (time.monotonic(), status, body)
        self._expire()

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.ttl_s
        while self.entries and next(iter(self.entries.values()))[0] < cutoff:
            self.entries.popitem(last=False)
        while len(self.entries) > 10000:
            self.entries.popitem(last=False)


def _error(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


class WebhookReceiver:
    def __init__(self, config: ReceiverConfig):
        self.config = config
        self.replays = _ReplayCache(ttl_s=2 * config.tolerance_s)
        self._client: AsyncServiceNowClient | None = None
        self.prefect: Any = None  # a PrefectClient for the app's lifetime (create_app's lifespan)
        self._locks: dict[str, asyncio.Lock] = {}
        self._dispatching = asyncio.Semaphore(config.max_concurrent_dispatches)
        # Answers by idempotency key: ServiceNow re-sending an approval (its retry after a timeout is signed
        # anew, so no replay) is answered here without asking Prefect again. Prefect's key stays the truth.
        self.dispatched = _ReplayCache(ttl_s=2 * config.tolerance_s)

    def client(self) -> AsyncServiceNowClient:
        if self._client is None:
            self._client = self.config.credentials.get_async_client(logger=log)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "deployment": self.config.deployment})

    async def receive(self, request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.config.max_body_bytes:
            return _error(413, "payload_too_large", f"the body is over {self.config.max_body_bytes} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.config.max_body_bytes:
                return _error(413, "payload_too_large", f"the body is over {self.config.max_body_bytes} bytes")
        try:
            signing.verify(
                self.config.secrets,
                request.headers.get(signing.TIMESTAMP_HEADER),
                request.headers.get(signing.SIGNATURE_HEADER),
                body,
                tolerance_s=self.config.tolerance_s,
            )
        except signing.SignatureError as exc:
            log.warning("webhook rejected (%s): %s", exc.reason, exc)
            return _error(401, exc.reason, str(exc))
        replay_key = request.headers.get(signing.SIGNATURE_HEADER, "")
        cached = self.replays.get(replay_key)
        if cached:
            status, answer = cached
            return JSONResponse({**answer, "replayed": True}, status_code=status)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _error(400, "malformed_json", f"the body is not JSON: {exc}")
        try:
            payload = WebhookPayload.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            return _error(422, "invalid_payload", problems)
        # One decision at a time per record: concurrent duplicates wait and then share the answer.
        lock = self._locks.setdefault(payload.sys_id, asyncio.Lock())
        async with lock:
            cached = self.replays.get(replay_key)
            if cached:
                return JSONResponse({**cached[1], "replayed": True}, status_code=cached[0])
            status, answer = await self._handle(payload)
        if len(self._locks) > 10000:
            self._locks.clear()
        if status < 500:  # a decision is replayed; a transient failure is not, so that a retry is handled anew
            self.replays.put(replay_key, status, answer)
        return JSONResponse(answer, status_code=status)

    async def _handle(self, payload: WebhookPayload) -> tuple[int, dict[str, Any]]:
        try:
            if payload.table == "change_request":
                ticket = await read_ticket(self.client(), payload.sys_id)
                key = idempotency_key(ticket) if why_not_runnable(ticket) is None else None
                known = self.dispatched.get(key) if key else None
                if known:
                    return 202, {**known[1], "duplicate": True, "reason": "already dispatched"}
                async with self._dispatching:
                    result = await dispatch_change(
                        ticket, deployment=self.config.deployment, source="webhook", client=self.prefect
                    )
                log.info("%s: %s", result.number, result.reason)
                if result.dispatched and result.idempotency_key:
                    self.dispatched.put(result.idempotency_key, 202, result.to_json())
                return (202 if result.dispatched else 200), result.to_json()
            if payload.table == "change_task":
                task = await self.client().get("change_task", payload.sys_id, fields=GATE_FIELDS)
                if parse_gate_correlation(task.get("correlation_id")) is None:
                    return 200, {"resumed": False, "reason": f"{task.get('number')} is not a Prefect approval gate"}
                resumed, reason = await resume_gate(task)
                return (202 if resumed else 200), {"resumed": resumed, "reason": reason, "number": task.get("number")}
        except NotFoundError:
            return 200, {"dispatched": False, "reason": f"{payload.table} {payload.sys_id} not found in ServiceNow"}
        except ServiceNowError as exc:
            log.error("ServiceNow read failed for %s %s: %s", payload.table, payload.sys_id, exc)
            return 503, {"error": "servicenow_unavailable", "detail": str(exc)}
        except Exception as exc:  # Prefect unreachable or refusing: ServiceNow should send it again later
            log.exception("dispatching %s %s failed", payload.table, payload.sys_id)
            return 503, {"error": "dispatch_failed", "detail": f"{type(exc).__name__}: {exc}"}
        return 422, {"error": "unsupported_table", "detail": f"no handler for table {payload.table!r}"}


def create_app(config: ReceiverConfig) -> Starlette:
    receiver = WebhookReceiver(config)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        from prefect.client.orchestration import get_client

        async with get_client() as prefect:
            receiver.prefect = prefect
            try:
                yield
            finally:
                receiver.prefect = None
                await receiver.close()

    app = Starlette(
        routes=[
            Route(config.path, receiver.receive, methods=["POST"]),
            Route("/health", receiver.health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.receiver = receiver
    return app


async def load_config(
    credentials_block: str, secret_block: str, deployment: str = DEFAULT_DEPLOYMENT
) -> ReceiverConfig:
    """Credentials and the HMAC secret (a Secret block holding a string, or a JSON list for rotation)."""
    from prefect.blocks.system import Secret

    credentials = await ServiceNowCredentials.load(credentials_block)
    secret = (await Secret.load(secret_block)).get()
    secrets = [str(s) for s in secret] if isinstance(secret, list) else [str(secret)]
    return ReceiverConfig(credentials=credentials, secrets=secrets, deployment=deployment)
