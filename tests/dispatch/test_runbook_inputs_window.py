"""Every runbook's inputs carry the change's assignment group and planned window, validated from the ticket
(``RunbookInputs.from_ticket``, as ``run_change_request`` builds them): each problem names the field and
the fix, and a change outside its window does not run. No stack needed: the models, from ticket dicts."""

from __future__ import annotations

import datetime as dt

import pytest

from flows.runbooks import registry
from flows.runbooks.base import EARLY_START, InputError, RunbookContext, WindowClosed
from flows.runbooks.restart_app_service import Inputs as RestartInputs
from flows.runbooks.rotate_tls_certificate import Inputs as RotateInputs
from servicenow_blocks.glide_time import format_glide_time as glide_time

NOW = dt.datetime(2026, 11, 29, 12, 0, 0, tzinfo=dt.UTC)
RESTART_VARIABLES = {"service_name": "wiki", "restart_timeout_s": "10"}


def ticket(**fields: str) -> dict[str, str]:
    """A change as ``read_change`` returns it (reference fields as sys_ids, dates as glide_date_time)."""
    return {
        "sys_id": "a" * 32,
        "number": "CHG0031337",
        "correlation_id": "",
        "cmdb_ci": "b" * 32,
        "cmdb_ci.name": "wiki",
        "assignment_group": "c" * 32,
        "start_date": glide_time(NOW - dt.timedelta(hours=1)),
        "end_date": glide_time(NOW + dt.timedelta(hours=1)),
        **fields,
    }


def problems(fields: dict[str, str], variables: dict[str, str] = RESTART_VARIABLES) -> list[str]:
    with pytest.raises(InputError) as raised:
        RestartInputs.from_ticket(ticket(**fields), variables, now=NOW)
    return raised.value.problems


def test_a_valid_window_and_group_are_modelled_for_every_runbook() -> None:
    for runbook in registry.RUNBOOKS:
        assert {"assignment_group", "start_date", "end_date"} <= set(runbook.inputs.model_fields)
    inputs = RestartInputs.from_ticket(ticket(), RESTART_VARIABLES, now=NOW)
    assert inputs.assignment_group == "c" * 32
    assert inputs.start_date == NOW - dt.timedelta(hours=1) and inputs.start_date.tzinfo is not None
    assert inputs.end_date == NOW + dt.timedelta(hours=1)
    assert inputs.window_text() == "2026-11-29 11:00:00 to 2026-11-29 13:00:00 UTC"
    assert inputs.window_closed(NOW) is None
    rotate = RotateInputs.from_ticket(ticket(), {"common_name": "wiki.example.com"}, now=NOW)
    assert rotate.end_date == inputs.end_date


def test_no_planned_window_is_allowed() -> None:
    """Changes made without dates (the test and bench helpers, many templates) run at any time."""
    inputs = RestartInputs.from_ticket(ticket(start_date="", end_date=""), RESTART_VARIABLES, now=NOW)
    assert inputs.start_date is None and inputs.end_date is None
    assert inputs.window_text() == "no planned window" and inputs.window_closed(NOW) is None
    only_end = RestartInputs.from_ticket(ticket(start_date=""), RESTART_VARIABLES, now=NOW)
    assert only_end.window_text() == "(open) to 2026-11-29 13:00:00 UTC"


def test_a_window_that_has_ended_names_end_date_and_the_fix() -> None:
    (problem,) = problems({"start_date": "2026-11-28 22:00:00", "end_date": "2026-11-29 02:00:00"})
    assert problem == (
        "end_date: the planned end date 2026-11-29 02:00:00 UTC has passed (now 2026-11-29 12:00:00 UTC). "
        "Fix: reschedule the change (set start_date and end_date to the new window) and approve again"
    )


def test_an_end_before_the_start_names_end_date_and_the_fix() -> None:
    (problem,) = problems({"start_date": "2026-11-29 11:30:00", "end_date": "2026-11-29 11:00:00"})
    assert problem == (
        "end_date: the planned end date is not after the planned start date 2026-11-29 11:30:00 UTC "
        "(got '2026-11-29 11:00:00'). Fix: set end_date after start_date"
    )
    (same,) = problems({"start_date": "2026-11-29 11:30:00", "end_date": "2026-11-29 11:30:00"})
    assert same.startswith("end_date: the planned end date is not after the planned start date")


def test_a_window_that_has_not_opened_names_start_date_and_the_fix() -> None:
    (problem,) = problems({"start_date": "2026-11-29 20:00:00", "end_date": "2026-11-29 22:00:00"})
    assert problem.startswith(
        "start_date: the planned start date 2026-11-29 20:00:00 UTC has not come (now 2026-11-29 12:00:00 UTC)"
    )
    assert "Fix: approve the change again once its window has opened, or set start_date" in problem


def test_a_start_a_few_minutes_ahead_runs() -> None:
    """The demo seed's changes start 5 minutes after they are created: approving them at once runs them."""
    soon = NOW + dt.timedelta(minutes=5)
    fields = {"start_date": glide_time(soon), "end_date": glide_time(soon + dt.timedelta(hours=2))}
    assert RestartInputs.from_ticket(ticket(**fields), RESTART_VARIABLES, now=NOW).start_date == soon
    late = NOW + EARLY_START + dt.timedelta(seconds=1)
    (problem,) = problems({"start_date": glide_time(late), "end_date": glide_time(late + dt.timedelta(hours=1))})
    assert problem.startswith("start_date: ")


def test_malformed_dates_and_a_missing_group_name_the_field_and_the_fix() -> None:
    found = problems({"assignment_group": "", "start_date": "tomorrow", "end_date": "29/11/2026 14:00"})
    assert found == [
        "assignment_group: Field required. Fix: set the change's Assignment group to the team that owns the work",
        "start_date: not a date and time in the form YYYY-MM-DD HH:MM:SS (UTC) (got 'tomorrow'). "
        "Fix: set the change's Planned start date (start_date) as YYYY-MM-DD HH:MM:SS",
        "end_date: not a date and time in the form YYYY-MM-DD HH:MM:SS (UTC) (got '29/11/2026 14:00'). "
        "Fix: set the change's Planned end date (end_date) as YYYY-MM-DD HH:MM:SS",
    ]
    (bad_group,) = problems({"assignment_group": "Linux Operations"})
    assert bad_group.startswith("assignment_group: String should match pattern")


def test_window_problems_come_with_the_other_input_problems() -> None:
    found = problems({"end_date": "2026-11-29 02:00:00"}, {"restart_timeout_s": "3"})
    assert [p.split(":")[0] for p in found] == ["end_date", "service_name", "restart_timeout_s"]


def test_a_claimed_ticket_is_not_clock_checked_again() -> None:
    """A run resumed after an approval gate re-reads its (claimed) ticket: it started inside its window, so
    the inputs still build; the destructive step's gate checks the window end itself (below)."""
    fields = {"correlation_id": "d" * 32, "start_date": "2026-11-28 22:00:00", "end_date": "2026-11-29 02:00:00"}
    inputs = RestartInputs.from_ticket(ticket(**fields), RESTART_VARIABLES, now=NOW)
    assert inputs.end_date == dt.datetime(2026, 11, 29, 2, 0, tzinfo=dt.UTC)
    assert "end date 2026-11-29 02:00:00 UTC (end_date) has passed" in (inputs.window_closed(NOW) or "")
    with pytest.raises(InputError):  # the order of the window is not a clock check
        RestartInputs.from_ticket(
            ticket(correlation_id="d" * 32, start_date="2026-11-29 03:00:00", end_date="2026-11-29 02:00:00"),
            RESTART_VARIABLES,
            now=NOW,
        )


async def test_a_gate_after_the_window_ended_stops_the_destructive_step() -> None:
    past = ticket(correlation_id="d" * 32, start_date="2026-01-01 10:00:00", end_date="2026-01-01 12:00:00")
    inputs = RotateInputs.from_ticket(past, {"common_name": "wiki.example.com"})
    ctx = RunbookContext(
        inputs=inputs, client=None, ticket_log=None, executor=None, run_key="r", approved_gates={"install-certificate"}
    )  # type: ignore[arg-type]
    with pytest.raises(WindowClosed) as closed:
        await ctx.gate("Install certificate", "Replace the live certificate")
    assert str(closed.value).startswith(
        "Not running 'Install certificate': the planned end date 2026-01-01 12:00:00 UTC (end_date) has passed"
    )
    assert "Fix: raise the change again for a new window (start_date, end_date)" in str(closed.value)
