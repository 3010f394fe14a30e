"""Serve the dispatch deployments from this process (the embedded default; ``prefect deploy`` is the other way).

``python -m flows.serve`` registers ``run-change-request`` and ``poll-change-requests`` (every 60 s) and
runs them as they come, polling Prefect every half second so that a webhook reaches a running flow fast.

Each flow run gets its own process. ``prefect.serve()`` starts ``python -m prefect.engine``, which imports
Prefect and loads the flow from the deployment's entrypoint: 2-4 s per run before the flow's first line
on 2 cores. Here the runner is given the flow objects, and each run's process is forked from a
``forkserver`` that has imported them once (``--start-method spawn``: a fresh interpreter per run, as
Prefect's runner does for flows it holds; ``--start-method engine``: what ``prefect.serve()`` does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
from datetime import timedelta
from typing import Any

from prefect.exceptions import TerminationSignal
from prefect.runner import Runner

from flows.change_dispatch import poll_change_requests, run_change_request

# The flows, and what Prefect imports lazily while running one (serializing parameters imports fastapi):
# imported once in the forkserver, not in every run. A name that fails to import is skipped.
PRELOAD = [
    "flows.change_dispatch",
    "fastapi",
    "prefect.task_engine",
    "prefect.concurrency.asyncio",
    "prefect.utilities.visualization",
    "prefect._internal.observers",
    "prefect._internal.states",
    "opentelemetry._logs",
    "opentelemetry.metrics",
    "anyio._backends._asyncio",
    "pydantic.color",
    "rich._emoji_codes",
]


class _ForkServerMultiprocessing:
    """``multiprocessing`` as ``prefect.flow_engine.run_flow_in_subprocess`` sees it: "spawn" is a forkserver."""

    def __init__(self, context: Any):
        self._context = context

    def __getattr__(self, name: str) -> Any:
        return getattr(multiprocessing, name)

    def get_context(self, method: str | None = None) -> Any:
        return self._context if method == "spawn" else multiprocessing.get_context(method)


def use_forkserver(preload: list[str] = PRELOAD) -> None:
    """Start flow-run processes from a forkserver that has already imported ``preload``."""
    import multiprocessing.forkserver

    import prefect.flow_engine

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload)
    prefect.flow_engine.multiprocessing = _ForkServerMultiprocessing(context)  # type: ignore[attr-defined]
    multiprocessing.forkserver.ensure_running()  # pay its imports now, not on the first webhook


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--poll-interval-s", type=float, default=60.0, help="how often poll-change-requests runs")
    parser.add_argument("--query-seconds", type=float, default=0.5, help="how often the runner asks for work")
    parser.add_argument(
        "--limit", type=int, default=8, help="flow runs at once (8: the best of 4/8/16 on 2 cores, bench/RESULTS.md)"
    )
    parser.add_argument("--executor-root", default=None, help="sandbox of the local executor's hosts")
    parser.add_argument(
        "--start-method",
        choices=["forkserver", "spawn", "engine"],
        default="forkserver",
        help="how flow-run processes start: forked from a server that has imported the flows (fast), a fresh "
        "interpreter given the flow (spawn), or `python -m prefect.engine` loading the entrypoint (engine, "
        "what prefect.serve() does)",
    )
    args = parser.parse_args(argv)
    if args.start_method == "forkserver":
        use_forkserver()
    params = {"executor_root": args.executor_root} if args.executor_root else {}
    with contextlib.suppress(KeyboardInterrupt, TerminationSignal):  # stopped: Ctrl-C or SIGTERM
        asyncio.run(_serve(args, params))


async def _serve(args: argparse.Namespace, params: dict[str, Any]) -> None:
    # Runner.add_flow, not serve(deployments): the runner then holds the flow objects and starts each run
    # in a process of its own that receives the flow (not `python -m prefect.engine`, which imports it again
    # from the deployment's entrypoint).
    runner = Runner(name="servicenow-dispatch", query_seconds=args.query_seconds, limit=args.limit)
    deployments = [
        (
            run_change_request,
            {
                "name": "run-change-request",
                "parameters": params,
                "tags": ["servicenow", "production"],
                "description": "Execute one ServiceNow change request's runbook.",
            },
        ),
        (
            poll_change_requests,
            {
                "name": "poll-change-requests",
                "interval": timedelta(seconds=args.poll_interval_s),
                "tags": ["servicenow"],
                "description": "Dispatch ready standard changes; resume decided approval gates.",
            },
        ),
    ]
    for flow, options in deployments:
        if args.start_method == "engine":  # what prefect.serve() does: each run re-imports the entrypoint
            await runner.aadd_deployment(await flow.ato_deployment(**options))
        else:  # the runner keeps the flow object and hands it to the run's process
            await runner.aadd_flow(flow, **options)
    print(
        f"Serving run-change-request/run-change-request and poll-change-requests/poll-change-requests "
        f"(every {args.poll_interval_s:g} s); {args.limit} runs at once, flow runs started by {args.start_method}.",
        flush=True,
    )
    await runner.start()


if __name__ == "__main__":
    main()
