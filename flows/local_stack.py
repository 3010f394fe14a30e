"""The embedded local stack: a real ``prefect server`` on SQLite and the emulator, as child processes.

Used by ``make demo`` and by the tests. A real server (not the ephemeral one) because the ephemeral
server runs no scheduler and would be started again by every flow-run subprocess.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited ({process.returncode}); log:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s; log:\n{log.read_text()[-4000:]}")


@dataclass
class ManagedProcess:
    name: str
    process: subprocess.Popen
    log: Path
    url: str

    def stop(self, timeout_s: float = 15) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class PrefectServer(ManagedProcess):
    home: Path = field(default_factory=Path)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def env(self) -> dict[str, str]:
        """Environment for processes that talk to this server."""
        return {
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_UI_URL": self.url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.3",
        }


def start_prefect_server(
    home: Path, *, port: int | None = None, ui: bool = False, timeout_s: float = 90
) -> PrefectServer:
    """``prefect server start`` on SQLite under ``home``; returns once /api/health answers."""
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = home / "prefect-server.log"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "true" if ui else "false",
        "PREFECT_UI_URL": f"http://127.0.0.1:{port}",
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        # Run-state automations and late-run detection react within seconds, not minutes.
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
    }
    env.pop("PREFECT_PROFILE", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=open(log, "w"),  # noqa: SIM115 - owned by the child
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/api/health", process, log, timeout_s)
    return PrefectServer("prefect-server", process, log, url, home)


def start_emulator(
    workdir: Path,
    *,
    port: int | None = None,
    seed: str = "demo",
    extra: list[str] | None = None,
    timeout_s: float = 30,
) -> ManagedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = workdir / f"emulator-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "servicenow_emulator", "--port", str(port), "--seed", seed, *(extra or [])],
        stdout=open(log, "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/emulator/health", process, log, timeout_s)
    return ManagedProcess("servicenow-emulator", process, log, url)
