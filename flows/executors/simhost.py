"""A sandboxed host's service manager: ``servicectl`` and ``certctl`` over a directory per host.

State lives in ``<root>/<host>/``: ``services/<name>.json`` (pid, started_at, restarts, healthy) and
``certs/`` (staged, released and live key + certificate pairs: see ``certctl`` below). A ``faults.json``
in the host directory makes commands fail on purpose, e.g. ``{"restart": ["payments-api"], "unhealthy":
["portal-web"], "slow_start_s": 0.5, "certctl": ["install"]}`` (tests and demos). Those are static;
``"fail_times": {"restart:wiki": 1, "status:wiki": 2, "install:portal.example.com": 1}`` makes the next N
runs of ``<action>:<name>`` fail and then succeed (the count is kept in ``faults.state.json``).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path


def _host_dir(root: str, host: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in host)
    path = Path(root) / safe
    (path / "services").mkdir(parents=True, exist_ok=True)
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


# --- certctl: a certificate store with a staging area and an atomic switch of the live key + certificate ---
#
# <host>/certs/staged/<name>/{key.pem,cert.pem}   written by `stage` (key 0600, directories 0700)
# <host>/certs/releases/<name>/<fingerprint>/     a promoted pair, never modified afterwards
# <host>/certs/live/<name> -> ../releases/...     the live pair: one symlink, replaced atomically by
#                                                 `install`, so a reader sees the old pair or the new one
# <host>/certs/live/<name>.previous -> ...        the pair before it (rollback)
# Nothing certctl prints contains key material.


def _fingerprint(cert_pem: bytes) -> str:
    """SHA-256 over the leaf certificate's DER, as ``openssl x509 -fingerprint -sha256`` computes it."""
    import base64

    body = cert_pem.split(b"-----BEGIN CERTIFICATE-----", 1)[1].split(b"-----END CERTIFICATE-----", 1)[0]
    return f"sha256:{hashlib.sha256(base64.b64decode(b''.join(body.split()))).hexdigest()}"


def _pem_blocks(data: bytes) -> tuple[bytes, bytes]:
    """(the private key PEM, the certificate PEM(s)) of a bundle; ValueError naming what is wrong."""
    text = data.decode("ascii", errors="replace")
    key_start = text.find("-----BEGIN PRIVATE KEY-----")
    key_end_marker = "-----END PRIVATE KEY-----"
    if key_start < 0 or key_end_marker not in text:
        raise ValueError("stdin has no PKCS#8 private key (-----BEGIN PRIVATE KEY-----)")
    key_end = text.index(key_end_marker) + len(key_end_marker)
    rest = text[:key_start] + text[key_end:]
    cert_start = rest.find("-----BEGIN CERTIFICATE-----")
    if cert_start < 0:
        raise ValueError("stdin has no PEM certificate")
    return (text[key_start:key_end] + "\n").encode(), rest[cert_start:].strip().encode() + b"\n"


def _key_matches(key_pem: bytes, cert_pem: bytes) -> bool:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(key_pem, password=None)
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return key.public_key().public_bytes(der, spki) == cert.public_key().public_bytes(der, spki)


def _not_after(cert_pem: bytes) -> str:
    from cryptography import x509

    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc.strftime("%Y-%m-%d %H:%M:%S")


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start (never readable by others, even for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _cert_store(host_dir: Path) -> Path:
    store = host_dir / "certs"
    store.mkdir(mode=0o700, exist_ok=True)
    for sub in ("staged", "releases", "live"):
        (store / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    return store


def _live_state(store: Path, name: str) -> dict | None:
    live = store / "live" / name
    if not (live / "cert.pem").exists():
        return None
    cert_pem = (live / "cert.pem").read_bytes()
    key = live / "key.pem"
    return {
        "name": name,
        "fingerprint": _fingerprint(cert_pem),
        "not_after": _not_after(cert_pem),
        "key_matches_cert": key.exists() and _key_matches(key.read_bytes(), cert_pem),
        "key_mode": f"{key.stat().st_mode & 0o777:04o}" if key.exists() else None,
        "release": os.readlink(live) if live.is_symlink() else None,
    }


def _stage(host_dir: Path, store: Path, name: str) -> int:
    try:
        key_pem, cert_pem = _pem_blocks(sys.stdin.buffer.read())
        if not _key_matches(key_pem, cert_pem):
            raise ValueError("the private key does not match the certificate")
    except ValueError as exc:
        print(f"certctl: {exc}", file=sys.stderr)  # the message, never the input
        return 2
    faults = _faults(host_dir)
    if "stage" in faults.get("certctl", []) or _fails_now(host_dir, faults, "stage", name):
        print("certctl: no space left on the certificate store", file=sys.stderr)
        return 1
    tmp = store / "staged" / f".{name}.{os.getpid()}.tmp"
    tmp.mkdir(mode=0o700)
    _write_private(tmp / "key.pem", key_pem, 0o600)
    _write_private(tmp / "cert.pem", cert_pem, 0o644)
    staged = store / "staged" / name
    if staged.exists():
        shutil.rmtree(staged)  # an older staging (a rejected or abandoned rotation) is replaced
    os.rename(tmp, staged)
    print(json.dumps({"staged": name, "fingerprint": _fingerprint(cert_pem), "not_after": _not_after(cert_pem)}))
    return 0


def _install(host_dir: Path, store: Path, name: str, expected: str | None) -> int:
    if not expected:
        print("certctl: install needs --fingerprint (the staged certificate to make live)", file=sys.stderr)
        return 2
    staged = store / "staged" / name
    live = store / "live" / name
    current = _live_state(store, name)
    if not (staged / "cert.pem").exists():
        if current and current["fingerprint"] == expected:  # a retried install that had already switched
            print(f"{name}: {expected} already live")
            return 0
        print(f"certctl: nothing staged for {name}", file=sys.stderr)
        return 1
    if _fingerprint((staged / "cert.pem").read_bytes()) != expected:
        print(f"certctl: the staged certificate for {name} is not {expected[:23]}…", file=sys.stderr)
        return 1
    faults = _faults(host_dir)
    if "install" in faults.get("certctl", []) or _fails_now(host_dir, faults, "install", name):
        print("certctl: permission denied writing the certificate store", file=sys.stderr)
        return 1
    release = store / "releases" / name / expected.removeprefix("sha256:")[:32]
    release.parent.mkdir(mode=0o700, exist_ok=True)
    if release.exists():
        shutil.rmtree(staged)
    else:
        os.rename(staged, release)
    previous = os.readlink(live) if live.is_symlink() else None
    _switch_link(live, os.path.relpath(release, live.parent))
    if previous:
        _switch_link(live.with_name(f"{name}.previous"), previous)
    keep = {Path(os.path.normpath(live.parent / t)).name for t in (os.readlink(live), previous) if t}
    for old in (store / "releases" / name).iterdir():
        if old.name not in keep:
            shutil.rmtree(old)
    print(f"{name}: installed {expected}")
    return 0


def _switch_link(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.{os.getpid()}.lnk")
    os.symlink(target, tmp)
    os.replace(tmp, link)  # rename(2): atomic, the old link or the new one


def certctl(host_dir: Path, action: str, name: str, fingerprint: str | None = None) -> int:
    store = _cert_store(host_dir)
    with open(store / ".lock", "a") as lock:  # one certctl at a time per host
        fcntl.flock(lock, fcntl.LOCK_EX)
        if action == "stage":
            return _stage(host_dir, store, name)
        if action == "install":
            return _install(host_dir, store, name, fingerprint)
        if action == "show":
            state = _live_state(store, name)
            if state is None:
                print(f"certctl: no live certificate {name}", file=sys.stderr)
                return 1
            print(json.dumps(state))
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
    parser.add_argument("--fingerprint", help="certctl install: the staged certificate expected (sha256:...)")
    args = parser.parse_args(argv)
    host_dir = _host_dir(args.root, args.host)
    if args.tool == "servicectl":
        return servicectl(host_dir, args.action, args.name)
    return certctl(host_dir, args.action, args.name, args.fingerprint)


if __name__ == "__main__":
    sys.exit(main())
