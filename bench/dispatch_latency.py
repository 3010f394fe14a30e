"""Change dispatch latency: approval in ServiceNow -> the "Started by Prefect" work note on the ticket.

Starts a private stack (``flows.local_stack.LocalStack``: emulator with its outbound Business Rules, a real
Prefect server, the webhook receiver and ``python -m flows.serve``), then approves standard changes one at
a time ("Restart application service" on ``wiki``) and, for each, polls the ticket's work notes every
``--probe-ms`` until the Started note appears. The clock starts just before the approval PATCH. Each
change is left to close before the next one is approved. The first ``--warmup`` changes are not counted.

The Prefect run's own timestamps split the time: webhook (approval -> flow run created by the receiver),
runner poll (created -> Pending), process start (Pending -> Running) and the flow's first work
(Running -> Started note: loading the block, reading the ticket, the claim).

The poll path, for comparison: with the Business Rule switched off, each change is approved and the
``poll-change-requests`` deployment is run at once (narrowed to that change), which measures what the poll
adds after it fires; its mean lag on a schedule is half the interval plus that.

    .venv/bin/python bench/dispatch_latency.py                       # 20 changes, forkserver (the default)
    .venv/bin/python bench/dispatch_latency.py --start-method engine  # what prefect.serve() does
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flows.local_stack import LocalStack  # noqa: E402
from flows.stack_ops import (  # noqa: E402
    flow_runs_for,
    new_standard_change,
    rule_off,
    update,
    wait_state,
)

POLL_DEPLOYMENT = "poll-change-requests/poll-change-requests"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p95 of 20 values is the 19th smallest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def started_note_seen(stack: LocalStack, sys_id: str, probe_s: float, timeout_s: float = 120) -> float:
    """Wall-clock time at which the Started note was first seen."""
    query = f"element_id={sys_id}^element=work_notes^valueSTARTSWITHStarted by Prefect"
    deadline = time.time() + timeout_s
    with stack.sn() as sn:
        while time.time() < deadline:
            rows = sn.get(
                "/api/now/table/sys_journal_field",
                params={"sysparm_query": query, "sysparm_fields": "sys_id", "sysparm_limit": 1},
            ).json()["result"]
            if rows:
                return time.time()
            time.sleep(probe_s)
    raise TimeoutError(f"no Started note on {sys_id} after {timeout_s} s")


def run_timeline(number: str) -> dict[str, float]:
    """Wall-clock times of the change's flow run: created, Pending, Running."""
    from prefect.client.orchestration import get_client

    (run,) = [r for r in flow_runs_for(number) if r.deployment_id is not None]
    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(run.id)
    times = {"created": run.created.timestamp()}
    for state in states:
        times.setdefault(state.type.value.lower(), state.timestamp.timestamp())
    return times


def new_change(stack: LocalStack, index: int) -> dict[str, Any]:
    return new_standard_change(
        stack,
        "Restart application service",
        "wiki",
        f"Latency benchmark {index}",
        {"service_name": "wiki", "restart_timeout_s": "10"},
    )


def measure_webhook(stack: LocalStack, count: int, warmup: int, probe_s: float) -> list[dict[str, float]]:
    samples = []
    for index in range(warmup + count):
        change = new_change(stack, index)
        approved_at = time.time()
        update(stack, change["sys_id"], {"approval": "approved"})
        seen = started_note_seen(stack, change["sys_id"], probe_s)
        wait_state(stack, change["sys_id"], {"3"}, timeout_s=120)
        runs = [r for r in flow_runs_for(change["number"]) if r.deployment_id is not None]
        assert len(runs) == 1, f"{change['number']}: {len(runs)} runs"
        timeline = run_timeline(change["number"])
        sample = {
            "total": seen - approved_at,
            "webhook": timeline["created"] - approved_at,
            "runner_poll": timeline.get("pending", timeline["created"]) - timeline["created"],
            "process_start": timeline.get("running", seen) - timeline.get("pending", timeline["created"]),
            "flow_to_note": seen - timeline.get("running", seen),
        }
        label = "warmup" if index < warmup else f"{index - warmup + 1:2d}"
        print(f"  {label}  {change['number']}  " + "  ".join(f"{k} {v:5.2f}" for k, v in sample.items()), flush=True)
        if index >= warmup:
            samples.append(sample)
    return samples


def measure_poll(stack: LocalStack, count: int, probe_s: float) -> list[float]:
    from prefect.deployments import run_deployment

    from servicenow_blocks.dispatch import ready_changes_query

    lags = []
    with rule_off(stack):
        for index in range(count):
            change = new_change(stack, 1000 + index)
            update(stack, change["sys_id"], {"approval": "approved"})
            fired = time.time()
            run_deployment(
                POLL_DEPLOYMENT,
                parameters={"query": ready_changes_query().eq("sys_id", change["sys_id"]).encoded},
                timeout=0,
            )
            seen = started_note_seen(stack, change["sys_id"], probe_s)
            lags.append(seen - fired)
            wait_state(stack, change["sys_id"], {"3"}, timeout_s=120)
            print(f"  poll {index + 1}  {change['number']}  poll fired -> Started {seen - fired:5.2f} s", flush=True)
    return lags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--poll-samples", type=int, default=3)
    parser.add_argument("--poll-interval-s", type=float, default=60.0, help="the poll schedule compared against")
    parser.add_argument("--probe-ms", type=float, default=25.0, help="how often the ticket is checked")
    parser.add_argument("--start-method", default="forkserver", choices=["forkserver", "spawn", "engine"])
    parser.add_argument("--query-seconds", type=float, default=0.5, help="the runner's poll interval")
    parser.add_argument("--workdir", default=str(ROOT / ".bench" / "dispatch-latency"))
    args = parser.parse_args(argv)

    serve_args = ["--start-method", args.start_method, "--query-seconds", str(args.query_seconds)]
    stack = LocalStack(Path(args.workdir), preferred_ports=False, quiet=True, serve_args=serve_args)
    try:
        stack.start()
        print(f"stack up ({args.start_method}, runner query {args.query_seconds} s); webhook path:", flush=True)
        samples = measure_webhook(stack, args.changes, args.warmup, args.probe_ms / 1000)
        poll_lags = measure_poll(stack, args.poll_samples, args.probe_ms / 1000) if args.poll_samples else []
    finally:
        stack.stop()

    totals = [s["total"] for s in samples]
    parts = {k: statistics.median(s[k] for s in samples) for k in samples[0] if k != "total"}
    poll_after_fire = statistics.mean(poll_lags) if poll_lags else float("nan")
    result = {
        "start_method": args.start_method,
        "query_seconds": args.query_seconds,
        "changes": len(samples),
        "p50_s": statistics.median(totals),
        "p95_s": percentile(totals, 95),
        "mean_s": statistics.mean(totals),
        "min_s": min(totals),
        "max_s": max(totals),
        "median_parts_s": parts,
        "poll_fired_to_started_mean_s": poll_after_fire,
        "poll_mean_lag_s": args.poll_interval_s / 2 + poll_after_fire,
        "machine": f"{os.cpu_count()} CPU, {platform.system()}, Python {platform.python_version()}",
        "load_average_1m": os.getloadavg()[0],
    }
    Path(args.workdir, "result.json").write_text(json.dumps(result, indent=2))
    print()
    print(f"webhook path, approval -> Started note, {len(samples)} changes ({args.start_method}):")
    print(f"  p50 {result['p50_s']:.2f} s   p95 {result['p95_s']:.2f} s   mean {result['mean_s']:.2f} s   "
          f"min {result['min_s']:.2f} s   max {result['max_s']:.2f} s")  # fmt: skip
    print("  median split: " + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items()))
    if poll_lags:
        print(
            f"poll path: poll fired -> Started {poll_after_fire:.2f} s (mean of {len(poll_lags)}); on a "
            f"{args.poll_interval_s:.0f} s schedule the mean lag is {result['poll_mean_lag_s']:.1f} s"
        )
    print(f"load average (1 min) at the end: {result['load_average_1m']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
