"""What a runbook is: an input model built from the ticket, and an async subflow of named steps.

A runbook module defines an ``Inputs`` model (a ``RunbookInputs``: ticket fields and template variables,
validated, each field saying how to fix a bad value), an async flow decorated with ``@runbook_flow`` that
calls ``ctx.step(...)`` for each named step, and a ``RUNBOOK = Runbook(...)`` naming the templates it
serves. Steps run as Prefect tasks cached per execution, so a run resumed after an approval gate does not
repeat finished steps; each step writes one work note. ``ctx.gate(...)`` stops before a destructive step
until the change task approval arrives.

Every runbook's inputs carry the change's assignment group and its planned window (``start_date`` /
``end_date``, glide_date_time strings in UTC). A change runs inside its window: not after ``end_date``, and
not before ``start_date`` (less ``EARLY_START``: from approval to execution takes a moment, and a change
whose form defaulted its start to "in a few minutes" should not need rescheduling). The clock is checked
when a run claims the change, and again when a destructive step's gate is passed.
"""

from __future__ import annotations

import datetime as dt
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from prefect import Flow, flow, task
from prefect.logging import get_run_logger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from flows.executors import Executor
from servicenow_blocks.client import AsyncServiceNowClient
from servicenow_blocks.dispatch import EARLY_START
from servicenow_blocks.gates import step_slug
from servicenow_blocks.glide_time import format_glide_time, parse_glide_time
from servicenow_blocks.tickets import StepRecord, TicketLog


class RunbookInputs(BaseModel):
    """Base for a runbook's inputs: built from the ticket's fields and the template's variables.

    Give each field a ``description`` and, in ``json_schema_extra={"fix": ...}``, the fix a person should
    make in ServiceNow when the value is wrong; that text goes into the work note. A validator may name a
    fix of its own for one kind of error: ``PydanticCustomError(type, message, {"fix": ...})`` (with
    ``"names_input": True`` when the message already shows the value).

    The clock checks of the planned window use the validation context: ``{"now": datetime}`` sets the
    time, ``{"clock": False}`` skips them (no context: now).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    number: str
    sys_id: str
    assignment_group: str = Field(
        pattern=r"^[0-9a-f]{32}$",
        description="The group that owns the change; approval gate tasks are assigned to it.",
        json_schema_extra={"fix": "set the change's Assignment group to the team that owns the work"},
    )
    start_date: dt.datetime | None = Field(
        default=None,
        description="Planned start date (UTC); empty: no planned window start.",
        json_schema_extra={"fix": "set the change's Planned start date (start_date) as YYYY-MM-DD HH:MM:SS"},
    )
    end_date: dt.datetime | None = Field(
        default=None,
        description="Planned end date (UTC); empty: no planned window end.",
        json_schema_extra={"fix": "set the change's Planned end date (end_date) as YYYY-MM-DD HH:MM:SS"},
    )

    @classmethod
    def from_ticket(
        cls, ticket: dict[str, Any], variables: dict[str, str], *, now: dt.datetime | None = None
    ) -> RunbookInputs:
        """Ticket fields first, template variables over them; raise InputError naming each bad field.

        A ticket that is already claimed (``correlation_id`` set: this run, resumed after an approval gate)
        started inside its window, so the clock is not checked again here; the gate checks the window end.
        """
        data = {k: v for k, v in ticket.items() if v not in (None, "")}
        data.update({k: v for k, v in variables.items() if v not in (None, "")})
        context = {"now": now or dt.datetime.now(dt.UTC), "clock": not ticket.get("correlation_id")}
        try:
            return cls.model_validate(data, context=context)
        except ValidationError as exc:
            raise InputError.from_validation(cls, exc) from None

    @field_validator("start_date", "end_date", mode="before")
    @classmethod
    def _glide_date_time(cls, value: Any) -> dt.datetime | None:
        """'YYYY-MM-DD HH:MM:SS' in UTC, as the Table API gives it (empty: not set)."""
        if value is None or value == "":
            return None
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        if isinstance(value, str):
            try:
                return parse_glide_time(value)
            except ValueError:
                pass
        raise PydanticCustomError("glide_date_time", "not a date and time in the form YYYY-MM-DD HH:MM:SS (UTC)")

    @field_validator("start_date")
    @classmethod
    def _window_open(cls, value: dt.datetime | None, info: ValidationInfo) -> dt.datetime | None:
        now = _clock(info)
        if value is not None and now is not None and value - EARLY_START > now:
            raise PydanticCustomError(
                "window_not_open",
                "the planned start date {start} UTC has not come (now {now} UTC); Prefect does not run a change "
                "before its planned window",
                {
                    "start": format_glide_time(value),
                    "now": format_glide_time(now),
                    "names_input": True,
                    "fix": "approve the change again once its window has opened, or set start_date to the "
                    "time the work may start",
                },
            )
        return value

    @field_validator("end_date")
    @classmethod
    def _window_end(cls, value: dt.datetime | None, info: ValidationInfo) -> dt.datetime | None:
        if value is None:
            return value
        start = info.data.get("start_date")
        if start is not None and value <= start:
            raise PydanticCustomError(
                "window_order",
                "the planned end date is not after the planned start date {start} UTC",
                {"start": format_glide_time(start), "fix": "set end_date after start_date"},
            )
        now = _clock(info)
        if now is not None and value <= now:
            raise PydanticCustomError(
                "window_passed",
                "the planned end date {end} UTC has passed (now {now} UTC)",
                {
                    "end": format_glide_time(value),
                    "now": format_glide_time(now),
                    "names_input": True,
                    "fix": "reschedule the change (set start_date and end_date to the new window) and approve again",
                },
            )
        return value

    def window_text(self) -> str:
        """The planned window, for notes: '2026-11-29 22:00:00 to 2026-11-30 00:00:00 UTC'."""
        if self.start_date is None and self.end_date is None:
            return "no planned window"
        start = format_glide_time(self.start_date) if self.start_date else "(open)"
        end = format_glide_time(self.end_date) if self.end_date else "(open)"
        return f"{start} to {end} UTC"

    def window_closed(self, now: dt.datetime | None = None) -> str | None:
        """Why the planned window has ended (naming end_date), or None while it is open."""
        now = now or dt.datetime.now(dt.UTC)
        if self.end_date is None or self.end_date > now:
            return None
        end, now_text = format_glide_time(self.end_date), format_glide_time(now)
        return f"the planned end date {end} UTC (end_date) has passed (now {now_text} UTC)"


def _clock(info: ValidationInfo) -> dt.datetime | None:
    """The time to check the planned window against, or None when the context says not to."""
    context = info.context if isinstance(info.context, dict) else {}
    if context.get("clock") is False:
        return None
    now = context.get("now") or dt.datetime.now(dt.UTC)
    return now if now.tzinfo else now.replace(tzinfo=dt.UTC)


class ApplicationInputs(RunbookInputs):
    """Inputs of runbooks that act on an application: the change's Configuration item."""

    cmdb_ci: str = Field(
        pattern=r"^[0-9a-f]{32}$",
        description="The application the change is for (the change's Configuration item).",
        json_schema_extra={"fix": "set the change's Configuration item to the application CI"},
    )
    cmdb_ci_name: str = Field(default="", alias="cmdb_ci.name")


class InputError(ValueError):
    """Ticket data that cannot run; the message names each field and its fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))

    @classmethod
    def from_validation(cls, model: type[BaseModel], exc: ValidationError) -> InputError:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "(ticket)"
            info = model.model_fields.get(name)
            extra = (info.json_schema_extra or {}) if info else {}
            ctx = error.get("ctx") or {}
            fix = ctx.get("fix") or (extra.get("fix") if isinstance(extra, dict) else None)
            value = error.get("input")
            shown = "" if isinstance(value, dict) or ctx.get("names_input") else f" (got {str(value)[:80]!r})"
            problems.append(f"{name}: {error['msg']}{shown}" + (f". Fix: {fix}" if fix else ""))
        return cls(problems)


@dataclass
class StepLog:
    """Lines a step writes: they go to the Prefect log and to the log file attached to the ticket."""

    name: str
    lines: list[str] = field(default_factory=list)

    def __call__(self, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.lines.append(f"{stamp} {message}")
        get_run_logger().info("[%s] %s", self.name, message)


@dataclass
class StepResult:
    """A step's value, with an optional detail for the work note, and whether it was skipped."""

    value: Any = None
    detail: str = ""
    skipped: bool = False


class StepFailed(Exception):
    def __init__(self, record: StepRecord):
        self.record = record
        super().__init__(f"step '{record.name}' failed: {record.detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (StepFailed, (self.record,))


class StopRequested(Exception):
    """The ticket says stop (cancelled, on hold, moved on) at a step boundary."""


class GateReached(Exception):
    def __init__(self, step: str, description: str):
        self.step = step
        self.description = description
        super().__init__(f"approval needed before '{step}'")


class WindowClosed(Exception):
    """The change's planned window ended before a destructive step could start."""

    def __init__(self, step: str, reason: str):
        self.step = step
        self.reason = reason
        super().__init__(
            f"Not running '{step}': {reason}; nothing destructive was done. "
            "Fix: raise the change again for a new window (start_date, end_date)"
        )


@dataclass
class RunbookOutcome:
    """How a runbook subflow ended."""

    status: Literal["completed", "failed", "stopped", "awaiting_approval"]
    summary: str = ""
    records: list[StepRecord] = field(default_factory=list)
    gate_step: str | None = None
    gate_description: str = ""
    failed_step: str | None = None


StepFn = Callable[..., Awaitable[Any]]


@task(name="runbook-step", persist_result=True, cache_key_fn=lambda context, params: params["cache_key"])
async def _run_step(
    cache_key: str,
    name: str,
    fn: StepFn,
    args: tuple,
    kwargs: dict,
    retries: int,
    retry_delay_s: float,
    ctx: RunbookContext,
) -> tuple[StepRecord, Any, dict[str, Any]]:
    """Run one step (retrying as the runbook asked), then write its work note; cached per execution."""
    log = StepLog(name)
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        try:
            result = await fn(log, *args, **kwargs)
            break
        except Exception as exc:  # the step's own failure, reported on the ticket
            log(f"attempt {attempts} failed: {exc}")
            if attempts > retries:
                record = StepRecord(name, "failed", time.monotonic() - started, str(exc), attempts, log.lines)
                await ctx.ticket_log.step(record)
                raise StepFailed(record) from exc
            await _sleep(retry_delay_s)
    if not isinstance(result, StepResult):
        result = StepResult(value=result)
    outcome = "skipped" if result.skipped else ("retried" if attempts > 1 else "succeeded")
    record = StepRecord(name, outcome, time.monotonic() - started, result.detail, attempts, log.lines)
    state = await ctx.ticket_log.step(record)
    return record, result.value, state


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


class RunbookContext:
    """What a runbook's steps may use: the ticket, the executor, ServiceNow, steps and gates."""

    def __init__(
        self,
        *,
        inputs: RunbookInputs,
        client: AsyncServiceNowClient,
        ticket_log: TicketLog,
        executor: Executor,
        run_key: str,
        approved_gates: set[str] | None = None,
        on_step: Callable[[StepRecord], Awaitable[None]] | None = None,
    ):
        self.inputs = inputs
        self.client = client
        self.ticket_log = ticket_log
        self.executor = executor
        self.run_key = run_key
        self.approved_gates = approved_gates or set()
        self.records: list[StepRecord] = []
        self._on_step = on_step
        self._index = 0

    def __repr__(self) -> str:
        # Prefect records subflow parameters; show the ticket, never the client's internals.
        return f"RunbookContext({self.inputs.number}, run {self.run_key})"

    async def step(
        self, name: str, fn: StepFn, *args: Any, retries: int = 0, retry_delay_s: float = 1.0, **kwargs: Any
    ) -> Any:
        """Run a named step; its work note, duration and outcome go to the ticket."""
        reason = self.ticket_log.stop_reason()
        if reason:
            raise StopRequested(reason)
        self._index += 1
        key = f"{self.run_key}:{self._index}:{step_slug(name)}"
        record, value, state = await _run_step.with_options(task_run_name=name)(
            key, name, fn, args, kwargs, retries, retry_delay_s, self
        )
        self.ticket_log.observe(state)
        self.records.append(record)
        if self._on_step:
            await self._on_step(record)
        return value

    async def gate(self, step: str, description: str) -> None:
        """Stop here until the change task approval for ``step`` arrives (destructive steps).

        A destructive step never starts after the change's planned window: neither when the run reaches
        the gate nor when it passes it after the approval (which may come days later).
        """
        closed = self.inputs.window_closed()
        if closed:
            raise WindowClosed(step, closed)
        if step_slug(step) in self.approved_gates:
            return
        if self.inputs.end_date is not None:
            description += (
                f" (the planned window ends {format_glide_time(self.inputs.end_date)} UTC: approve before then)"
            )
        raise GateReached(step, description)


RunbookBody = Callable[[Any, RunbookContext], Awaitable[str]]


def runbook_flow(name: str) -> Callable[[RunbookBody], Flow]:
    """Make a runbook body an async subflow returning a RunbookOutcome (never raising for step failures)."""

    def decorate(body: RunbookBody) -> Flow:
        async def run(inputs: RunbookInputs, ctx: RunbookContext) -> RunbookOutcome:
            try:
                summary = await body(inputs, ctx)
            except GateReached as gate:
                return RunbookOutcome(
                    "awaiting_approval", records=ctx.records, gate_step=gate.step, gate_description=gate.description
                )
            except StepFailed as failure:
                ctx.records.append(failure.record)
                return RunbookOutcome(
                    "failed",
                    summary=f"Step '{failure.record.name}' failed: {failure.record.detail}",
                    records=ctx.records,
                    failed_step=failure.record.name,
                )
            except StopRequested as stop:
                return RunbookOutcome("stopped", summary=str(stop), records=ctx.records)
            except WindowClosed as closed:
                return RunbookOutcome("failed", summary=str(closed), records=ctx.records, failed_step=closed.step)
            return RunbookOutcome("completed", summary=summary or "", records=ctx.records)

        run.__name__ = body.__name__
        run.__doc__ = body.__doc__
        return flow(name=name, validate_parameters=False, persist_result=False, log_prints=True)(run)

    return decorate


@dataclass(frozen=True)
class Runbook:
    """A registry entry: which templates (or categories) select this runbook, its inputs and its flow."""

    name: str
    inputs: type[RunbookInputs]
    flow: Flow
    templates: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    description: str = ""
    destructive: bool = False

    kind: ClassVar[str] = "runbook"

    def __post_init__(self) -> None:
        if not inspect.iscoroutinefunction(self.flow.fn):
            raise TypeError(f"runbook {self.name}: the flow must be async")
