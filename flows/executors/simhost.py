"""A sandboxed host's service manager: ``servicectl`` and ``certctl`` over a directory per host.

State lives in ``<root>/<host>/``: ``services/<name>.json`` (pid, started_at, restarts, healthy) and
``certs/<name>.pem``. A ``faults.json`` in the host directory makes commands fail on purpose, e.g.
``{"restart": ["payments-api"], "unhealthy": ["portal-web"], "slow_start_s": 0.5}`` (tests and demos).
Those are static; ``"fail_times": {"restart:wiki": 1, "status:wiki": 2}`` makes the next N runs of
``<action>:<name>`` fail and then succeed (the count is kept in ``faults.state.json``).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path


def _host_dir(root: str, host: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in host)
    path = Path(root) / safe
    (path / "services").mkdir(parents=True, exist_ok=True)
    (path / "certs").mkdir(parents=True, exist_ok=True)
    return path


def _faults(host_dir: Path) -> dict:
    path = host_dir / "faults.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _fails_now(host_dir: Path, faults: dict, action: str, name: str) -> bool:
    """True for the first ``fail_times["<action>:<name>"]`` calls, counted across processes."""
    key = f"{action}:{name}"
    times = int(faults.get("fail_times", {}).get(key, 0))
    if times <= 0:
        return False
    path = host_dir / "faults.state.json"
    with open(path, "a+") as handle:  # one command at a time per host: lock the counter file
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        text = handle.read()
        used = json.loads(text) if text.strip() else {}
        if used.get(key, 0) >= times:
            return False
        used[key] = used.get(key, 0) + 1
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(used))
    return True


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace a file so that a concurrent reader sees the old or the new content, never half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _service_file(host_dir: Path, name: str) -> Path:
    return host_dir / "services" / f"{name}.json"


def servicectl(host_dir: Path, action: str, name: str) -> int:
    faults = _faults(host_dir)
    path = _service_file(host_dir, name)
    state = json.loads(path.read_text()) if path.exists() else {"name": name, "restarts": 0, "active": True}
    if action == "status":
        healthy = state.get("active", True) and name not in faults.get("unhealthy", [])
        healthy = healthy and not _fails_now(host_dir, faults, action, name)
        print(
            json.dumps({"name": name, "active": state.get("active", True), "healthy": healthy, "pid": state.get("pid")})
        )
        return 0 if healthy else 3
    if action in ("restart", "start"):
        if (
            name in faults.get(action, [])
            or name in faults.get("restart", [])
            or _fails_now(host_dir, faults, action, name)
        ):
            print(f"Job for {name}.service failed because the control process exited with error code.", file=sys.stderr)
            return 1
        time.sleep(float(faults.get("slow_start_s", 0)))
        state.update(active=True, pid=random.randint(1000, 65000), started_at=time.time())
        state["restarts"] = state.get("restarts", 0) + (1 if action == "restart" else 0)
    elif action == "stop":
        state.update(active=False, pid=None)
    else:
        print(f"servicectl: unknown action {action}", file=sys.stderr)
        return 2
    _write_atomically(path, json.dumps(state).encode())
    print(f"{name}: {action} ok (pid {state.get('pid')})")
    return 0


def certctl(host_dir: Path, action: str, name: str) -> int:
    path = host_dir / "certs" / f"{name}.pem"
    if action == "install":
        data = sys.stdin.buffer.read()
        if b"BEGIN CERTIFICATE" not in data:
            print("certctl: stdin is not a PEM certificate", file=sys.stderr)
            return 2
        faults = _faults(host_dir)
        if "install" in faults.get("certctl", []) or _fails_now(host_dir, faults, action, name):
            print("certctl: permission denied writing the certificate store", file=sys.stderr)
            return 1
        if path.exists():
            path.with_suffix(".pem.previous").write_bytes(path.read_bytes())
        _write_atomically(path, data)
        print(f"{name}: installed sha256:{hashlib.sha256(data).hexdigest()}")
        return 0
    if action == "show":
        if not path.exists():
            print(f"certctl: no certificate {name}", file=sys.stderr)
            return 1
        print(f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}")
        return 0
    print(f"certctl: unknown action {action}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="simhost")
    parser.add_argument("--root", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("tool", choices=["servicectl", "certctl"])
    parser.add_argument("action")
    parser.add_argument("name")
    args = parser.parse_args(argv)
    host_dir = _host_dir(args.root, args.host)
    return (servicectl if args.tool == "servicectl" else certctl)(host_dir, args.action, args.name)


if __name__ == "__main__":
    sys.exit(main())
