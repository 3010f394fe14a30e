"""``python -m servicenow_emulator`` (also ``prefect-servicenow emulator``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from .faults import FaultInjector
from .server import ServeOptions, serve


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="servicenow_emulator", description="A faithful local ServiceNow instance.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--seed", choices=["demo", "empty"], default="demo")
    p.add_argument(
        "--db", default=":memory:", help="SQLite file (default: in memory); an existing file is reopened, not re-seeded"
    )
    p.add_argument("--tls", action="store_true", help="also serve HTTPS with a generated local CA")
    p.add_argument("--tls-port", type=int, default=8443)
    p.add_argument("--tls-dir", default=".emulator-tls", help="where the local CA and certificate are kept")
    p.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request")
    p.add_argument(
        "--faults",
        metavar="JSON|@FILE",
        help="fault settings at start, as JSON or @file, in the schema of /emulator/admin/faults "
        "(its keys win over --latency-ms and --fault-seed)",
    )
    p.add_argument("--admin-user", default=None, help="admin user (default admin; applied to a reopened --db too)")
    p.add_argument(
        "--admin-password", default=None, help="its password (default admin; applied to a reopened --db too)"
    )
    p.add_argument("--property", action="append", default=[], metavar="NAME=VALUE", help="set a system property")
    p.add_argument("--ci-count", type=int, default=0, help="generate this many servers (benchmarks)")
    p.add_argument("--change-count", type=int, default=0)
    p.add_argument("--incident-count", type=int, default=0)
    p.add_argument("--fault-seed", type=int, default=0)
    p.add_argument("--log-level", default="warning")
    return p


def read_faults(text: str | None) -> dict[str, Any]:
    """``--faults``: inline JSON or ``@path``; checked against the admin endpoint's schema (SystemExit if bad)."""
    if not text:
        return {}
    try:
        raw = Path(text[1:]).read_text() if text.startswith("@") else text
        data = json.loads(raw)
        FaultInjector().configure(data)  # the admin endpoint's checks, now rather than at the first request
    except OSError as exc:
        raise SystemExit(f"--faults: cannot read {text[1:]!r}: {exc}") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise SystemExit(f"--faults: invalid fault settings: {exc}") from None
    return data


def options_from(args: argparse.Namespace) -> ServeOptions:
    properties = {}
    for item in args.property:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--property expects NAME=VALUE, got {item!r}")
        properties[name] = value
    return ServeOptions(
        host=args.host,
        port=args.port,
        seed=args.seed,
        db=args.db,
        tls=args.tls,
        tls_port=args.tls_port,
        tls_dir=args.tls_dir,
        latency_ms=args.latency_ms,
        faults=read_faults(args.faults),
        admin_user=args.admin_user,
        admin_password=args.admin_password,
        properties=properties,
        ci_count=args.ci_count,
        change_count=args.change_count,
        incident_count=args.incident_count,
        fault_seed=args.fault_seed,
        log_level=args.log_level,
    )


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        asyncio.run(serve(options_from(args)))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
