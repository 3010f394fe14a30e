"""Change dispatch under a burst: N standard changes approved at once, each must run and close exactly once.

Starts a private stack (``flows.local_stack.LocalStack``), creates N "Restart application service" changes
spread over the demo estate's applications (1 to 3 hosts each), resets the emulator's request counters,
then approves all N from ``--approvers`` threads at once. Every approval fires the emulator's outbound
Business Rule -> the webhook receiver -> ``run-change-request`` runs served by ``python -m flows.serve``
(``--limit`` runs at once). Completion is watched through the Prefect API only, so that the emulator's
counters hold nothing but the approvals, the receiver and the flow runs.

Reported: wall time from the first approval to the last run finished, tickets/min, approval -> Started
percentiles under the burst, and ServiceNow HTTP requests per ticket by route (emulator
``/emulator/admin/stats`` delta / N), split into the dispatch (the receiver's ticket read), the run's ticket
bookkeeping (TicketLog + the ticket read: Batch API calls, the step notes, the attachment) and the runbook's
own CMDB reads. Then it checks, against ServiceNow and Prefect: every change Closed successful, one flow
run per change, one Started note per change.

    .venv/bin/python bench/dispatch_burst.py --changes 200 --limit 8
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flows.local_stack import LocalStack  # noqa: E402
from flows.stack_ops import CHANGE_MANAGER, emulator_stats, new_standard_change  # noqa: E402

APPS = ["wiki", "payments-worker", "payments-api", "portal-web", "reporting-etl"]
RUN_DEPLOYMENT = "run-change-request/run-change-request"
STEPS = 3  # resolve hosts, restart, health check


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, min(len(ordered), math.ceil(p / 100 * len(ordered)))) - 1]


def cpu_seconds(stack: LocalStack) -> dict[str, float]:
    """CPU time (user + system) of each stack process and its descendants, reaped ones included."""
    import psutil

    totals: dict[str, float] = {}
    for managed in {m.process.pid: m for m in [*stack.processes, stack.prefect]}.values():
        try:
            root = psutil.Process(managed.process.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        used = 0.0
        for process in tree:
            try:
                t = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            used += t.user + t.system + t.children_user + t.children_system
        totals[managed.name] = totals.get(managed.name, 0.0) + used
    return totals


def create_changes(stack: LocalStack, count: int) -> list[dict[str, Any]]:
    def one(index: int) -> dict[str, Any]:
        app = APPS[index % len(APPS)]
        with stack.sn() as sn:
            return new_standard_change(
                stack,
                "Restart application service",
                app,
                f"Burst {index}: restart {app}",
                {"service_name": app, "restart_timeout_s": "30"},
                sn=sn,
            )

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def approve_all(stack: LocalStack, changes: list[dict[str, Any]], approvers: int) -> float:
    def one(change: dict[str, Any]) -> None:
        with stack.sn(CHANGE_MANAGER) as sn:
            sn.patch(
                f"/api/now/table/change_request/{change['sys_id']}", json={"approval": "approved"}
            ).raise_for_status()

    started = time.time()
    with ThreadPoolExecutor(approvers) as pool:
        list(pool.map(one, changes))
    return started


def finished_runs(deployment_id: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

    runs: list[Any] = []
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id])),
                limit=200,
                offset=len(runs),
            )
            runs.extend(page)
            if len(page) < 200:
                return runs


def wait_all_final(deployment_id: Any, count: int, timeout_s: float) -> list[Any]:
    """Watch the count of finished runs (one cheap request every 2 s), then read them all."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    final = FlowRunFilter(
        deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
        state=FlowRunFilterState(
            type=FlowRunFilterStateType(any_=[StateType.COMPLETED, StateType.FAILED, StateType.CRASHED])
        ),
    )
    deadline = time.monotonic() + timeout_s
    last = -1
    with get_client(sync_client=True) as client:
        while True:
            done = client.count_flow_runs(flow_run_filter=final)
            if done != last:
                print(f"  {time.strftime('%H:%M:%S')}  {done} runs finished", flush=True)
                last = done
            if done >= count:
                return finished_runs(deployment_id)
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {done} of {count} runs finished in {timeout_s:.0f} s")
            time.sleep(2)


def classify(route: str) -> str:
    method, _, path = route.partition(" ")
    if route == "GET /api/now/table/change_request/{id}":
        return "dispatch: receiver reads the ticket"
    if route == "PATCH /api/now/table/change_request/{id}":
        return "ticket: approval (benchmark) + step notes"
    if path.startswith("/api/now/v1/batch") or path.startswith("/api/now/batch"):
        return "ticket: Batch API (read ticket+variables, start, close)"
    if path.startswith("/api/now/attachment"):
        return "ticket: step log attachment"
    if path.startswith("/api/now/table/cmdb_rel_ci") or path.startswith("/api/now/table/sys_db_object"):
        return "runbook: CMDB traversal (resolve hosts)"
    return f"other: {method} {path}"


def check_outcome(stack: LocalStack, changes: list[dict[str, Any]], runs: list[Any]) -> dict[str, Any]:
    by_tag: Counter[str] = Counter()
    for run in runs:
        for tag in run.tags:
            if tag.startswith("change:"):
                by_tag[tag[len("change:") :]] += 1
    numbers = [c["number"] for c in changes]
    sys_ids = [c["sys_id"] for c in changes]
    with stack.sn() as sn:
        closed: list[dict[str, Any]] = []
        for start in range(0, len(sys_ids), 100):
            chunk = ",".join(sys_ids[start : start + 100])
            closed += sn.get(
                "/api/now/table/change_request",
                params={"sysparm_query": f"sys_idIN{chunk}", "sysparm_fields": "number,state,close_code"},
            ).json()["result"]
        started: Counter[str] = Counter()
        for start in range(0, len(sys_ids), 100):
            chunk = ",".join(sys_ids[start : start + 100])
            rows = sn.get(
                "/api/now/table/sys_journal_field",
                params={
                    "sysparm_query": f"element_idIN{chunk}^valueSTARTSWITHStarted by Prefect",
                    "sysparm_fields": "element_id",
                    "sysparm_limit": 10000,
                },
            ).json()["result"]
            started.update(r["element_id"] for r in rows)
        deliveries = sn.get(
            "/api/now/table/sys_outbound_http_log",
            params={"sysparm_fields": "response_status,elapsed_ms,attempt,error", "sysparm_limit": 100000},
        ).json()["result"]
    elapsed = [int(d["elapsed_ms"] or 0) / 1000 for d in deliveries]
    states = Counter((r["state"], r["close_code"]) for r in closed)
    return {
        "closed_successful": states[("3", "successful")],
        "states": {f"{k[0]}/{k[1] or '-'}": v for k, v in states.items()},
        "one_run_each": all(by_tag[n] == 1 for n in numbers),
        "runs_per_change": dict(Counter(by_tag[n] for n in numbers)),
        "one_started_note_each": all(started[s] == 1 for s in sys_ids),
        "started_notes_per_change": dict(Counter(started[s] for s in sys_ids)),
        "webhook_deliveries": {
            "attempts": len(deliveries),
            "by_status": dict(Counter(d["response_status"] or d["error"][:40] for d in deliveries)),
            "receiver_answer_p50_s": statistics.median(elapsed) if elapsed else None,
            "receiver_answer_max_s": max(elapsed) if elapsed else None,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--limit", type=int, default=8, help="serve's flow runs at once")
    parser.add_argument("--approvers", type=int, default=32, help="threads approving at once")
    parser.add_argument("--start-method", default="forkserver", choices=["forkserver", "spawn", "engine"])
    parser.add_argument("--timeout-s", type=float, default=1800)
    parser.add_argument("--workdir", default=str(ROOT / ".bench" / "dispatch-burst"))
    args = parser.parse_args(argv)

    serve_args = ["--limit", str(args.limit), "--start-method", args.start_method]
    stack = LocalStack(Path(args.workdir), preferred_ports=False, quiet=True, serve_args=serve_args)
    try:
        stack.start()
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            deployment_id = client.read_deployment_by_name(RUN_DEPLOYMENT).id
        changes = create_changes(stack, args.changes)
        print(f"{len(changes)} changes created; serve --limit {args.limit}; approving all at once", flush=True)
        emulator_stats(stack, reset=True)
        cpu_before = cpu_seconds(stack)
        approved_at = approve_all(stack, changes, args.approvers)
        print(f"  approvals sent in {time.time() - approved_at:.1f} s", flush=True)
        runs = wait_all_final(deployment_id, len(changes), args.timeout_s)
        time.sleep(3)  # let the last runs' processes exit and be reaped
        cpu_after = cpu_seconds(stack)
        stats = emulator_stats(stack)
        outcome = check_outcome(stack, changes, runs)
        pending = stats.get("outbound_pending", 0)
    finally:
        stack.stop()

    n = len(changes)
    ends = [r.end_time.timestamp() for r in runs if r.end_time]
    starts = [r.start_time.timestamp() - approved_at for r in runs if r.start_time]
    wall = max(ends) - approved_at
    routes = Counter()
    for route, count in stats["by_route"].items():
        routes[classify(route)] += count
    approvals_route = "ticket: approval (benchmark) + step notes"
    routes[approvals_route] -= n  # the benchmark's own approvals are not the integration's calls
    routes["ticket: step notes"] = routes.pop(approvals_route)
    dispatch = sum(v for k, v in routes.items() if k.startswith("dispatch"))
    bookkeeping = sum(v for k, v in routes.items() if k.startswith("ticket"))
    runbook = sum(v for k, v in routes.items() if k.startswith("runbook"))
    other = sum(v for k, v in routes.items() if k.startswith("other"))
    result = {
        "changes": n,
        "limit": args.limit,
        "start_method": args.start_method,
        "wall_s": wall,
        "tickets_per_min": n / wall * 60,
        "run_start_after_approval_p50_s": statistics.median(starts),
        "run_start_after_approval_p95_s": percentile(starts, 95),
        "cpu_s_per_ticket": {k: round((cpu_after[k] - cpu_before.get(k, 0.0)) / n, 3) for k in cpu_after},
        "requests_total": stats["requests"] - n,
        "per_ticket": {
            "dispatch": dispatch / n,
            "run bookkeeping (TicketLog + ticket read)": bookkeeping / n,
            "runbook CMDB reads": runbook / n,
            "other": other / n,
            "total": (dispatch + bookkeeping + runbook + other) / n,
        },
        "by_route_per_ticket": {k: round(v / n, 2) for k, v in sorted(routes.items())},
        "outbound_pending": pending,
        "outcome": outcome,
        "machine": f"{os.cpu_count()} CPU, {platform.system()}, Python {platform.python_version()}",
        "load_average_1m": os.getloadavg()[0],
    }
    Path(args.workdir, "result.json").write_text(json.dumps(result, indent=2, default=str))
    print()
    print(json.dumps(result, indent=2, default=str))
    ok = (
        outcome["closed_successful"] == n
        and outcome["one_run_each"]
        and outcome["one_started_note_each"]
        and len(runs) == n
    )
    print("\nall closed exactly once" if ok else "\nNOT all closed exactly once")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
