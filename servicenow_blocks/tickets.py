"""``TicketLog``: a change request that moves with the work.

Start claims the change (correlation_id = the flow run id, correlation_display = "Prefect"), moves it to
Implement along the change model and writes a "Started by Prefect" work note with the execution URL.
Each step writes one work note (name, outcome, duration). Close moves the change through Review to
Closed with the real close code and close notes holding the summary and the execution URL; the step log
is attached as a text file. Every write's answer carries the ticket's current state, which is how the
runner notices a change cancelled or put on hold in ServiceNow, at no extra request.

Writes are batched where the state model needs several moves, so that a ticket costs about one
request per step plus four.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from pydantic import SecretStr

from .choices import ChangeCloseCode, ChangeState, ChangeType, change_path
from .client import AsyncServiceNowClient, BatchItem
from .credentials import ServiceNowCredentials
from .errors import ServiceNowError, error_for_status

STATE_FIELDS = (
    "sys_id", "number", "state", "type", "on_hold", "approval", "correlation_id", "active", "sys_mod_count",
)  # fmt: skip
MAX_NOTES = 4000
CORRELATION_DISPLAY = "Prefect"


@dataclass
class StepRecord:
    """What one runbook step did, as the ticket and the attached log show it."""

    name: str
    outcome: str  # succeeded | failed | skipped | retried
    duration_s: float
    detail: str = ""
    attempts: int = 1
    log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome in ("succeeded", "skipped", "retried")

    def note(self) -> str:
        attempts = f", {self.attempts} attempts" if self.attempts > 1 else ""
        text = f"Step '{self.name}': {self.outcome} in {self.duration_s:.1f} s{attempts}"
        return f"{text}\n{self.detail}" if self.detail else text


class Redactor:
    """Removes secret values (and their URL-encoded and base64 forms) from text bound for tickets and files."""

    def __init__(self, secrets: Iterable[str] = ()):
        values: set[str] = set()
        for secret in secrets:
            if secret and len(secret) >= 4:
                values |= {secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode()}
        ordered = sorted(values, key=len, reverse=True)  # longest first: a secret may contain another
        self._pattern = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None

    @classmethod
    def for_credentials(cls, credentials: ServiceNowCredentials) -> Redactor:
        """Every secret of the block, the proxy URL's password and the Basic auth header's value."""
        secrets = [
            value.get_secret_value()
            for name in type(credentials).model_fields
            if isinstance(value := getattr(credentials, name), SecretStr)
        ]
        proxy_password = urlsplit(credentials.proxy.get_secret_value()).password if credentials.proxy else None
        if proxy_password:
            secrets.append(unquote(proxy_password))
        if credentials.username and credentials.password:
            secrets.append(f"{credentials.username}:{credentials.password.get_secret_value()}")
        return cls(secrets)

    def __call__(self, text: str) -> str:
        return self._pattern.sub("[REDACTED]", text) if self._pattern else text


def execution_link(url: str | None) -> str:
    return url or "(no Prefect UI URL configured: set PREFECT_UI_URL)"


class TicketLog:
    """Start, step and close a change request from a flow run."""

    table = "change_request"

    def __init__(
        self,
        client: AsyncServiceNowClient,
        ticket: Mapping[str, Any],
        *,
        run_id: str,
        run_url: str | None,
        redact: Redactor | None = None,
    ):
        self.client = client
        self.sys_id = str(ticket["sys_id"])
        self.number = str(ticket.get("number", ""))
        self.change_type = ChangeType(ticket.get("type") or "normal")
        self.run_id = run_id
        self.run_url = run_url
        self.redact = redact or Redactor()
        self.current: dict[str, Any] = dict(ticket)
        self.steps: list[StepRecord] = []
        self.writes = 0

    # --- state -----------------------------------------------------------------------------------------
    @property
    def state(self) -> ChangeState:
        return ChangeState(self.current["state"])

    @property
    def claimed_by_us(self) -> bool:
        return self.current.get("correlation_id") == self.run_id

    def observe(self, state: Mapping[str, Any]) -> None:
        """Take a read of the ticket's state unless it is older than the one held: a step replayed from
        Prefect's cache after a suspension answers with the state from before it."""
        if _mod_count(state) >= _mod_count(self.current):
            self.current.update(state)

    async def refresh(self) -> dict[str, Any]:
        """Re-read the ticket's state from ServiceNow."""
        self.current = await self.client.get(self.table, self.sys_id, fields=STATE_FIELDS)
        return self.current

    def stop_reason(self) -> str | None:
        """Why work must stop at this step boundary (cancelled, on hold, closed, claimed elsewhere)."""
        if self.current.get("correlation_id") not in (None, "", self.run_id):
            return f"{self.number} was claimed by another execution ({self.current.get('correlation_id')})"
        if str(self.current.get("on_hold")) == "true":
            return f"{self.number} was put on hold in ServiceNow"
        state = self.state
        if state == ChangeState.CANCELED:
            return f"{self.number} was canceled in ServiceNow"
        if state in (ChangeState.CLOSED, ChangeState.REVIEW):
            return f"{self.number} was moved to {state.label} in ServiceNow"
        return None

    # --- writes ---------------------------------------------------------------------------------------
    def _url(self) -> str:
        return f"/api/now/table/{self.table}/{self.sys_id}?sysparm_fields={','.join(STATE_FIELDS)}"

    async def _patch(self, updates: list[dict[str, Any]]) -> dict[str, Any]:
        """Apply PATCHes in order (one request: a Batch API call when there are several)."""
        self.writes += 1
        if len(updates) == 1:
            self.current = await self.client.update(self.table, self.sys_id, updates[0], fields=STATE_FIELDS)
            return self.current
        results = await self.client.batch(
            [BatchItem("PATCH", self._url(), body=u, id=str(i)) for i, u in enumerate(updates)]
        )
        for result in results:
            if not result.ok:
                error = (result.body or {}).get("error", {}) if isinstance(result.body, dict) else {}
                raise error_for_status(
                    result.status_code,
                    error.get("message") or f"HTTP {result.status_code}",
                    error.get("detail"),
                    transaction_id=result.headers.get("X-Transaction-ID"),
                    method="PATCH",
                    path=f"/api/now/table/{self.table}/{self.sys_id}",
                )
        self.current = results[-1].body["result"]
        return self.current

    def _moves(self, target: ChangeState, final: dict[str, Any]) -> list[dict[str, Any]]:
        """PATCH bodies walking the change model to ``target``; ``final`` rides on the last one."""
        path = change_path(self.change_type, self.state, target) if self.state != target else []
        moves: list[dict[str, Any]] = [{"state": str(s.value)} for s in path]
        if not moves:
            moves = [{}]
        moves[-1].update(final)
        return moves

    async def note(self, text: str) -> dict[str, Any]:
        return await self._patch([{"work_notes": self.redact(text)}])

    async def start(self) -> bool:
        """Claim the change and move it to Implement with the Started note; False if already ours (resume)."""
        if self.claimed_by_us:
            return False
        started = f"Started by Prefect: flow run {self.run_id}\nExecution: {execution_link(self.run_url)}"
        claim = {"correlation_id": self.run_id, "correlation_display": CORRELATION_DISPLAY}
        moves = self._moves(ChangeState.IMPLEMENT, {"work_notes": self.redact(started)})
        moves[0].update(claim)
        await self._patch(moves)
        return True

    async def step(self, record: StepRecord) -> dict[str, Any]:
        """One work note for a finished step; the answer refreshes the ticket state."""
        self.steps.append(record)
        return await self.note(record.note())

    async def attach_log(self, text: str, file_name: str | None = None) -> dict[str, Any]:
        name = file_name or f"prefect-run-{self.run_id}.log"
        result = await self.client.attach(
            self.table,
            self.sys_id,
            name,
            self.redact(text).encode(),
            content_type="text/plain",
            skip_if_identical=False,
        )
        self.writes += 1
        return result.metadata

    async def close(self, code: ChangeCloseCode, summary: str) -> dict[str, Any]:
        """Close with the close code and notes (summary + execution URL), passing through Review."""
        notes = f"{summary.strip()}\n\nExecution: {execution_link(self.run_url)}"
        notes = self.redact(notes)
        if len(notes) > MAX_NOTES:
            notes = notes[: MAX_NOTES - 40] + "\n[truncated; see the attached log]"
        final = {
            "close_code": code.value,
            "close_notes": notes,
            "work_notes": self.redact(f"Closed by Prefect: {code.label}.\nExecution: {execution_link(self.run_url)}"),
        }
        return await self._patch(self._moves(ChangeState.CLOSED, final))

    def log_text(self, header: Iterable[str] = ()) -> str:
        """The step log attached to the ticket."""
        lines = [*header, ""]
        for record in self.steps:
            lines.append(
                f"== {record.name}: {record.outcome} ({record.duration_s:.2f} s, {record.attempts} attempt(s))"
            )
            if record.detail:
                lines.append(record.detail)
            lines.extend(record.log)
            lines.append("")
        return "\n".join(lines)


def _mod_count(state: Mapping[str, Any]) -> int:
    try:
        return int(state.get("sys_mod_count") or -1)
    except (TypeError, ValueError):
        return -1


def close_code_for(steps: Iterable[StepRecord], failed: bool) -> ChangeCloseCode:
    """unsuccessful on failure; successful_issues when a step was skipped or retried into success."""
    if failed:
        return ChangeCloseCode.UNSUCCESSFUL
    if any(s.outcome in ("skipped", "retried") for s in steps):
        return ChangeCloseCode.SUCCESSFUL_ISSUES
    return ChangeCloseCode.SUCCESSFUL


__all__ = ["CORRELATION_DISPLAY", "Redactor", "ServiceNowError", "StepRecord", "TicketLog", "close_code_for"]
