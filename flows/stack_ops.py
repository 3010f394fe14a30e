"""Operations on a running ``LocalStack``: shared by ``make demo``, the dispatch tests and the benchmarks.

Everything here talks to the emulator over its REST API (as a person in ServiceNow would), to the
sandboxed hosts through their ``faults.json``, or to Prefect through its client.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import httpx

from flows.local_stack import ADMIN

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

    from flows.local_stack import LocalStack

CHANGE_MANAGER = ("erin.change", "erin.change")
TICKET_FIELDS = (
    "number,state,close_code,close_notes,correlation_id,correlation_display,approval,approval_set,on_hold,active"
)


# --- reading and waiting ------------------------------------------------------------------------------------
def find(sn: httpx.Client, table: str, query: str, fields: str, limit: int | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"sysparm_query": query, "sysparm_fields": fields}
    if limit:
        params["sysparm_limit"] = limit
    return sn.get(f"/api/now/table/{table}", params=params).raise_for_status().json()["result"]


def wait_for(check: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.3) -> Any:
    """Call ``check`` until it returns something truthy; that value, or TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


@lru_cache(maxsize=256)
def _sys_id_of(base_url: str, table: str, query: str) -> str:
    with httpx.Client(base_url=base_url, auth=ADMIN, timeout=30) as sn:
        rows = find(sn, table, query, "sys_id", limit=1)
    if not rows:
        raise LookupError(f"no {table} record matches {query!r} in the seed")
    return rows[0]["sys_id"]


def sys_id_of(stack: LocalStack, table: str, query: str) -> str:
    """The sys_id of a seeded record (templates, CIs, groups, variables: they never change; cached)."""
    return _sys_id_of(stack.emulator.url, table, query)


def change_by_description(stack: LocalStack, text: str) -> dict[str, Any]:
    with stack.sn() as sn:
        rows = find(sn, "change_request", f"short_description={text}", "sys_id,number,state,approval")
    if not rows:
        raise LookupError(f"no change {text!r} in the demo seed")
    return rows[0]


def ticket(stack: LocalStack, sys_id: str, fields: str = TICKET_FIELDS) -> dict[str, Any]:
    """The change with values and display values (``{"state": {"value": "3", "display_value": "Closed"}}``)."""
    with stack.sn() as sn:
        return (
            sn.get(
                f"/api/now/table/change_request/{sys_id}",
                params={"sysparm_fields": fields, "sysparm_display_value": "all"},
            )
            .raise_for_status()
            .json()["result"]
        )


def work_notes(stack: LocalStack, sys_id: str) -> list[dict[str, Any]]:
    """The change's work notes, oldest first: ``[{"value": ..., "sys_created_on": ...}]``."""
    with stack.sn() as sn:
        return find(
            sn,
            "sys_journal_field",
            f"element_id={sys_id}^element=work_notes^ORDERBYsys_created_on",
            "value,sys_created_on",
        )


def journal(stack: LocalStack, sys_id: str) -> list[str]:
    """One line per work note (its first line), with its time."""
    return [f"{r['sys_created_on']}  {r['value'].splitlines()[0]}" for r in work_notes(stack, sys_id)]


def attachments(stack: LocalStack, sys_id: str) -> list[dict[str, Any]]:
    with stack.sn() as sn:
        return (
            sn.get("/api/now/attachment", params={"sysparm_query": f"table_sys_id={sys_id}"})
            .raise_for_status()
            .json()["result"]
        )


def attachment_text(stack: LocalStack, attachment_sys_id: str) -> str:
    with stack.sn() as sn:
        return sn.get(f"/api/now/attachment/{attachment_sys_id}/file").raise_for_status().text


def wait_state(stack: LocalStack, sys_id: str, states: set[str], timeout_s: float = 90) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        record = ticket(stack, sys_id)
        return record if record["state"]["value"] in states else None

    return wait_for(check, timeout_s, f"{sys_id} to reach a state in {sorted(states)}")


def wait_note(stack: LocalStack, sys_id: str, text: str, timeout_s: float = 60) -> dict[str, Any]:
    """The first work note containing ``text``, once it exists."""

    def check() -> dict[str, Any] | None:
        return next((n for n in work_notes(stack, sys_id) if text in n["value"]), None)

    return wait_for(check, timeout_s, f"a work note containing {text!r} on {sys_id}")


def run_url(stack: LocalStack, record: dict[str, Any]) -> str:
    run_id = record.get("correlation_id", {}).get("value", "")
    return f"{stack.prefect.url}/runs/flow-run/{run_id}" if run_id else ""


# --- acting in ServiceNow ----------------------------------------------------------------------------------
def new_standard_change(
    stack: LocalStack,
    template: str,
    ci_name: str,
    short: str,
    variables: dict[str, str],
    *,
    group: str = "Linux Operations",
    sn: httpx.Client | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A standard change from a template, with its variables (what a requester's form submission creates).

    ``fields`` override the change's values (e.g. ``approval="approved"`` to create it already approved,
    which no update Business Rule sees).
    """
    values = {
        "type": "standard",
        "short_description": short,
        "std_change_producer_version": sys_id_of(stack, "std_change_producer_version", f"name={template} - 1"),
        "cmdb_ci": sys_id_of(stack, "cmdb_ci", f"name={ci_name}"),
        "assignment_group": sys_id_of(stack, "sys_user_group", f"name={group}"),
        "category": "Software",
        "approval": "requested",
        **fields,
    }
    with contextlib.ExitStack() as stack_of_clients:
        client = sn or stack_of_clients.enter_context(stack.sn())
        change = client.post("/api/now/table/change_request", json=values).raise_for_status().json()["result"]
        for order, (name, value) in enumerate(variables.items()):
            client.post(
                "/api/now/table/question_answer",
                json={
                    "table_name": "change_request",
                    "table_sys_id": change["sys_id"],
                    "question": sys_id_of(stack, "item_option_new", f"name={name}"),
                    "value": value,
                    "order": order * 100,
                },
            ).raise_for_status()
    return change


def update(
    stack: LocalStack, sys_id: str, values: dict[str, Any], table: str = "change_request", auth=CHANGE_MANAGER
) -> dict[str, Any]:
    with stack.sn(auth) as sn:
        return sn.patch(f"/api/now/table/{table}/{sys_id}", json=values).raise_for_status().json()["result"]


def approve(stack: LocalStack, sys_id: str, table: str = "change_request", decision: str = "approved") -> None:
    """Approve (or reject) a change as the change manager, or a change task (a gate) as an admin."""
    update(stack, sys_id, {"approval": decision}, table, CHANGE_MANAGER if table == "change_request" else ADMIN)


def gate_tasks(stack: LocalStack, change_sys_id: str) -> list[dict[str, Any]]:
    """The Prefect approval gate change tasks of a change."""
    with stack.sn() as sn:
        return find(
            sn,
            "change_task",
            f"change_request={change_sys_id}^correlation_idSTARTSWITHprefect-gate:",
            "sys_id,number,approval,state,active,close_code,close_notes,correlation_id",
        )


@contextlib.contextmanager
def rule_off(stack: LocalStack, key: str = "change approved") -> Iterator[None]:
    """Switch one of the stack's outbound Business Rules off for a while (a lost webhook)."""
    with stack.sn() as sn:
        sn.patch(f"/api/now/table/sys_script/{stack.rules[key]}", json={"active": "false"}).raise_for_status()
    try:
        yield
    finally:
        with stack.sn() as sn:
            sn.patch(f"/api/now/table/sys_script/{stack.rules[key]}", json={"active": "true"}).raise_for_status()


def set_emulator_faults(stack: LocalStack, **settings: Any) -> dict[str, Any]:
    """Replace the emulator's fault configuration (PUT resets whatever is not given)."""
    with stack.sn() as sn:
        return sn.put("/emulator/admin/faults", json=settings).raise_for_status().json()["result"]


def emulator_stats(stack: LocalStack, reset: bool = False) -> dict[str, Any]:
    with stack.sn() as sn:
        response = sn.delete("/emulator/admin/stats") if reset else sn.get("/emulator/admin/stats")
        return response.raise_for_status().json()["result"]


@contextlib.contextmanager
def host_faults(stack: LocalStack, host: str, faults: dict[str, Any]) -> Iterator[None]:
    """Make a sandboxed host misbehave (``flows/executors/simhost.py``'s ``faults.json``) for a while."""
    directory = stack.sandbox / host
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "faults.json"
    path.write_text(json.dumps(faults))
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        (directory / "faults.state.json").unlink(missing_ok=True)


# --- Prefect -----------------------------------------------------------------------------------------------
def flow_runs_for(number: str) -> list[FlowRun]:
    """The flow runs carrying the ``change:<number>`` tag (the dispatch tags every run it creates)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"change:{number}"])), limit=50
        )
