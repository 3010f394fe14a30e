"""Shared fixtures: a live emulator process, reached over real HTTP (and HTTPS for https-only clients)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveEmulator:
    """A running ``python -m servicenow_emulator`` process."""

    url: str
    https_url: str | None
    ca_cert: Path | None
    process: subprocess.Popen
    admin: tuple[str, str] = ("admin", "admin")

    def client(self, auth: tuple[str, str] | None = None, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=auth or self.admin, timeout=30, **kw)

    def set_faults(self, **settings) -> dict:
        """Replace the fault configuration (PUT resets everything not given)."""
        with self.client() as c:
            r = c.put("/emulator/admin/faults", json=settings)
            r.raise_for_status()
            return r.json()["result"]

    def set_properties(self, **properties: str) -> None:
        with self.client() as c:
            c.post("/emulator/admin/properties", json=properties).raise_for_status()

    def stats(self, reset: bool = False) -> dict:
        with self.client() as c:
            r = c.delete("/emulator/admin/stats") if reset else c.get("/emulator/admin/stats")
            r.raise_for_status()
            return r.json()["result"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_emulator(tmp: Path, *, seed: str = "demo", tls: bool = False, extra: list[str] | None = None) -> LiveEmulator:
    port = free_port()
    tls_port = free_port() if tls else None
    args = [sys.executable, "-m", "servicenow_emulator", "--port", str(port), "--seed", seed]
    if tls:
        args += ["--tls", "--tls-port", str(tls_port), "--tls-dir", str(tmp / "tls")]
    args += extra or []
    log = open(tmp / f"emulator-{port}.log", "w")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"emulator exited: {(tmp / f'emulator-{port}.log').read_text()}")
        try:
            if httpx.get(f"{url}/emulator/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    else:
        process.kill()
        raise RuntimeError("emulator did not start within 30 s")
    ca = tmp / "tls" / "ca.pem" if tls else None
    return LiveEmulator(url, f"https://127.0.0.1:{tls_port}" if tls else None, ca, process)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEmulator]:
    """One demo-seeded emulator (with HTTPS) for the whole session. Tests create their own records,
    and restore any fault or property they change."""
    live = start_emulator(tmp_path_factory.mktemp("emulator"), tls=True)
    yield live
    live.stop()


@pytest.fixture
def fresh_emulator(tmp_path: Path) -> Iterator[LiveEmulator]:
    """A private demo-seeded emulator for tests that change instance-wide state."""
    live = start_emulator(tmp_path)
    yield live
    live.stop()


@pytest.fixture
def admin(emulator: LiveEmulator) -> Iterator[httpx.Client]:
    with emulator.client() as client:
        yield client


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory):
    """A real ``prefect server`` on SQLite for the session; this test process talks to it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.local_stack import start_prefect_server

    server = start_prefect_server(tmp_path_factory.mktemp("prefect-home"))
    previous = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server
    finally:
        server.stop()
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
