"""Outbound Business Rules: after insert/update, POST a signed JSON payload to a webhook.

A rule is a ``sys_script`` row (table, when=after, insert/update, a condition such as
``current.approval.changesTo('approved')`` and an optional encoded-query filter) carrying the emulator's
webhook fields (URL, HMAC secret, extra headers). Deliveries are asynchronous, retried with backoff,
and each attempt is logged in ``sys_outbound_http_log``. The payload and signature are exactly what
``deployments/servicenow/prefect_webhook_business_rule.js`` sends from a real instance.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from .dictionary import JOURNAL_TYPES, SECRET_TYPES
from .platform import Change, new_sys_id
from .query import QueryContext, SqlBuilder, class_filter, parse
from .render import raw_string
from .store import quote
from .timeutil import glide_now

log = logging.getLogger("servicenow_emulator.outbound")

_TERM = re.compile(
    r"""^\s*(!?)\s*current\.(?:(\w+)\.(changesTo|changesFrom|changes|nil)\(\s*(?:'([^']*)'|"([^"]*)"|(-?\d+))?\s*\)"""
    r"""|getValue\(\s*'(\w+)'\s*\)\s*(==|!=)\s*'([^']*)'|(\w+)\s*(==|!=)\s*'([^']*)')\s*$"""
)


class ConditionError(ValueError):
    """A Business Rule condition the emulator cannot evaluate."""


def evaluate_condition(condition: str, change: Change) -> bool:
    """Evaluate the subset of GlideElement conditions that rules use: changes(), changesTo/From(), nil(),
    and equality, joined by && and ||. An empty condition is true."""
    condition = (condition or "").strip()
    if not condition or condition == "true":
        return True
    return any(all(_term(term, change) for term in alternative.split("&&")) for alternative in condition.split("||"))


def _term(term: str, change: Change) -> bool:
    m = _TERM.match(term)
    if not m:
        raise ConditionError(f"unsupported condition term {term.strip()!r}")
    negate = m.group(1) == "!"
    if m.group(2):
        name, method = m.group(2), m.group(3)
        arg = next((g for g in (m.group(4), m.group(5), m.group(6)) if g is not None), None)
        if method == "changes":
            result = change.changes(name)
        elif method == "changesTo":
            result = change.changes_to(name, arg)
        elif method == "changesFrom":
            result = change.changes_from(name, arg)
        else:
            result = change.value(name) in (None, "")
    else:
        name = m.group(7) or m.group(10)
        op = m.group(8) or m.group(11)
        wanted = m.group(9) if m.group(7) else m.group(12)
        value = change.value(name)
        actual = "" if value is None else str(value)
        result = (actual == wanted) if op == "==" else (actual != wanted)
    return not result if negate else result


def sign(secret: str, timestamp: str, body: str) -> str:
    """base64(HMAC-SHA256(secret, timestamp + "." + body)), as CertificateEncryption.generateMac gives it."""
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1=" + base64.b64encode(digest).decode()


@dataclass
class Delivery:
    rule_name: str
    url: str
    secret: str
    headers: dict[str, str]
    body: str
    table: str
    sys_id: str
    max_attempts: int
    delivery_id: str = field(default_factory=lambda: uuid.uuid4().hex)


class OutboundRules:
    """Matches committed writes against the rules and delivers webhooks in the background."""

    def __init__(self, emulator: Any):
        self.emulator = emulator
        self.queue: asyncio.Queue[Delivery] | None = None
        self._worker: asyncio.Task | None = None
        self._rules: list[dict[str, Any]] | None = None
        self.backoff_s = 0.5
        self._tasks: set[asyncio.Task] = set()
        self.pending = 0

    def invalidate(self) -> None:
        self._rules = None

    def rules(self) -> list[dict[str, Any]]:
        if self._rules is None:
            cursor = self.emulator.store.execute(
                'SELECT sys_id, name, collection, "when", action_insert, action_update, filter_condition, '
                "condition, x_webhook_url, x_webhook_secret, x_webhook_headers, x_webhook_max_attempts, active "
                "FROM sys_script WHERE x_webhook_url IS NOT NULL AND x_webhook_url != ''"
            )
            names = [d[0] for d in cursor.description]
            self._rules = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        return self._rules

    # --- matching ------------------------------------------------------------------------------
    def on_commit(self, change: Change) -> None:
        if change.table in ("sys_script", "sys_outbound_http_log"):
            return
        for rule in self.rules():
            try:
                if self._fires(rule, change):
                    self.enqueue(rule, change)
            except Exception as exc:
                # The write has committed: a rule that cannot be evaluated (an unsupported condition, a filter
                # SQLite refuses) is skipped and recorded, and the other rules still run.
                log.warning(
                    "business rule %r skipped for %s %s: %s", rule["name"], change.table, change.current["sys_id"], exc
                )
                self._log_skip(rule, change, exc)

    def _fires(self, rule: dict[str, Any], change: Change) -> bool:
        if rule["active"] == 0 or (rule["when"] or "after") not in ("after", "async"):
            return False
        if change.operation == "insert" and not rule["action_insert"]:
            return False
        if change.operation == "update" and not rule["action_update"]:
            return False
        if change.operation == "delete":
            return False
        table = rule["collection"] or ""
        if table not in self.emulator.dictionary or not change.is_a(table):
            return False
        if not evaluate_condition(rule["condition"] or "", change):
            return False
        return not rule["filter_condition"] or self._filter_matches(table, rule["filter_condition"], change)

    def _filter_matches(self, table: str, encoded: str, change: Change) -> bool:
        dictionary = self.emulator.dictionary
        builder = SqlBuilder(QueryContext(dictionary, table))
        compiled = builder.compile(parse(encoded))
        cls_sql, cls_params = class_filter(dictionary, table)
        sql = f"SELECT 1 FROM {quote(dictionary.root(table))} t WHERE t.sys_id = ? AND {cls_sql} AND ({compiled.where})"
        row = self.emulator.store.execute(sql, [change.current["sys_id"], *cls_params, *compiled.params]).fetchone()
        return row is not None

    def payload(self, rule: dict[str, Any], change: Change) -> str:
        fields = self.emulator.dictionary.fields(change.table)
        changed: dict[str, str] = {}
        for name, f in fields.items():
            if f.type in JOURNAL_TYPES or f.type in SECRET_TYPES:
                continue
            if change.operation == "insert":
                value = raw_string(f, change.current.get(name))
                if value != "":
                    changed[name] = value
            elif name in change.changed_fields:
                changed[name] = raw_string(f, change.current.get(name))
        body = {
            "table": change.table,
            "sys_id": change.current["sys_id"],
            "number": str(change.current.get("number") or ""),
            "operation": change.operation,
            "sys_updated_on": str(change.current.get("sys_updated_on") or ""),
            "sys_mod_count": str(change.current.get("sys_mod_count") or "0"),
            "changed": changed,
            "rule": rule["name"] or "",
        }
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)

    def enqueue(self, rule: dict[str, Any], change: Change) -> None:
        try:
            extra = json.loads(rule["x_webhook_headers"]) if rule["x_webhook_headers"] else {}
        except json.JSONDecodeError:
            extra = {}
        delivery = Delivery(
            rule_name=rule["name"] or "",
            url=rule["x_webhook_url"],
            secret=rule["x_webhook_secret"] or "",
            headers={str(k): str(v) for k, v in extra.items()},
            body=self.payload(rule, change),
            table=change.table,
            sys_id=change.current["sys_id"],
            max_attempts=max(1, int(rule["x_webhook_max_attempts"] or 5)),
        )
        if self.queue is None:
            log.warning("outbound delivery for %s dropped: the server loop is not running", change.table)
            return
        self.pending += 1
        self.queue.put_nowait(delivery)

    # --- delivery ------------------------------------------------------------------------------
    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self._client = httpx.AsyncClient(timeout=10.0, verify=False)
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()
        if getattr(self, "_client", None):
            await self._client.aclose()

    async def _run(self) -> None:
        assert self.queue is not None
        while True:
            delivery = await self.queue.get()
            # Each delivery runs on its own, so one slow receiver does not hold back the queue.
            task = asyncio.create_task(self._deliver(delivery))
            self._tasks.add(task)  # a reference, so that the task is not collected mid-flight
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            for attempt in range(1, delivery.max_attempts + 1):
                timestamp = str(int(time.time()))
                headers = {
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "User-Agent": "ServiceNow/1.0",
                    "X-SN-Webhook-Id": delivery.delivery_id,
                    "X-SN-Webhook-Timestamp": timestamp,
                    "X-SN-Webhook-Signature": sign(delivery.secret, timestamp, delivery.body),
                    **delivery.headers,
                }
                started = time.perf_counter()
                status, response_body, error = None, "", ""
                try:
                    response = await self._client.post(delivery.url, content=delivery.body.encode(), headers=headers)
                    status, response_body = response.status_code, response.text[:4000]
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"[:1000]
                self._log(delivery, attempt, status, response_body, error, headers, time.perf_counter() - started)
                if status is not None and status < 500 and status != 429:
                    return
                if attempt < delivery.max_attempts:
                    await asyncio.sleep(min(self.backoff_s * 2 ** (attempt - 1), 30))
        finally:
            self.pending -= 1

    def _log_skip(self, rule: dict[str, Any], change: Change, exc: Exception) -> None:
        """A skipped rule as a ``sys_outbound_http_log`` row: attempt 0, no status, the reason in ``error``."""
        delivery = Delivery(
            rule_name=rule["name"] or "",
            url=rule["x_webhook_url"] or "",
            secret="",
            headers={},
            body="",
            table=change.table,
            sys_id=change.current["sys_id"],
            max_attempts=0,
        )
        error = f"business rule skipped: {type(exc).__name__}: {exc}"[:1000]
        try:
            self._log(delivery, 0, None, "", error, {}, 0.0)
        except Exception:  # the log is best effort; the write it is about has committed
            log.exception("could not record the skipped business rule %r", rule["name"])

    def _log(
        self,
        delivery: Delivery,
        attempt: int,
        status: int | None,
        response_body: str,
        error: str,
        headers: dict[str, str],
        elapsed: float,
    ) -> None:
        now = glide_now()
        shown = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        self.emulator.store.insert(
            "sys_outbound_http_log",
            {
                "sys_id": new_sys_id(),
                "url": delivery.url,
                "http_method": "post",
                "response_status": status,
                "request_body": delivery.body,
                "response_body": response_body,
                "request_headers": json.dumps(shown),
                "source_table": delivery.table,
                "source_record": delivery.sys_id,
                "source_business_rule": delivery.rule_name,
                "delivery_id": delivery.delivery_id,
                "attempt": attempt,
                "elapsed_ms": int(elapsed * 1000),
                "error": error,
                "sys_created_on": now,
                "sys_created_by": "system",
                "sys_updated_on": now,
                "sys_updated_by": "system",
                "sys_mod_count": 0,
                "sys_class_name": "sys_outbound_http_log",
            },
        )
