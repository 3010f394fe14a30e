"""Serve the dispatch deployments from this process (the embedded default; ``prefect deploy`` is the other way).

``python -m flows.serve`` registers ``run-change-request`` and ``poll-change-requests`` (every 60 s) and
runs them as they come, polling Prefect every half second so that a webhook reaches a running flow fast.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from prefect import serve

from flows.change_dispatch import poll_change_requests, run_change_request


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--poll-interval-s", type=float, default=60.0, help="how often poll-change-requests runs")
    parser.add_argument("--query-seconds", type=float, default=0.5, help="how often the runner asks for work")
    parser.add_argument("--limit", type=int, default=50, help="flow runs at once")
    parser.add_argument("--executor-root", default=None, help="sandbox of the local executor's hosts")
    args = parser.parse_args(argv)
    params = {"executor_root": args.executor_root} if args.executor_root else {}
    run = run_change_request.to_deployment(
        "run-change-request", parameters=params, tags=["servicenow", "production"],
        description="Execute one ServiceNow change request's runbook.",
    )  # fmt: skip
    poll = poll_change_requests.to_deployment(
        "poll-change-requests",
        interval=timedelta(seconds=args.poll_interval_s),
        tags=["servicenow"],
        description="Dispatch ready standard changes; resume decided approval gates.",
    )
    serve(run, poll, query_seconds=args.query_seconds, limit=args.limit, print_starting_message=True)


if __name__ == "__main__":
    main()
