"""The embedded local stack: a real ``prefect server`` on SQLite and the emulator, as child processes.

Used by ``make demo`` and by the tests. A real server (not the ephemeral one) because the ephemeral
server runs no scheduler and would be started again by every flow-run subprocess.
"""

from __future__ import annotations

import os
import secrets
import shutil
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
    home: Path,
    *,
    port: int | None = None,
    ui: bool = False,
    timeout_s: float = 90,
    database_url: str | None = None,
) -> PrefectServer:
    """``prefect server start`` under ``home`` (SQLite there, or ``database_url``, e.g. PostgreSQL);
    returns once /api/health answers."""
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
    if database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
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


INTEGRATION_USER = ("prefect.integration", "snow-integration-pw")
ADMIN = ("admin", "admin")


def say(text: str) -> None:
    print(text, flush=True)


class LocalStack:
    """The emulator, a Prefect server, the blocks, the webhook receiver, serve() and the Business Rules."""

    def __init__(
        self,
        workdir: Path,
        keep: bool = False,
        *,
        preferred_ports: bool = True,
        quiet: bool = False,
        prefect: PrefectServer | None = None,
        serve_args: list[str] | None = None,
    ):
        self.workdir = workdir
        self.external_prefect = prefect
        self.serve_args = serve_args or []
        self.keep = keep
        self.preferred_ports = preferred_ports
        self.quiet = quiet
        self.processes: list[ManagedProcess] = []
        self.secret = secrets.token_urlsafe(32)
        self.sandbox = workdir / "hosts"

    def start(self) -> None:
        """Start everything; on a failure, stop what did start (no orphaned servers) and raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True)
        self._say(f"Starting the ServiceNow emulator and a Prefect server (workdir {self.workdir})")
        self.emulator = start_emulator(self.workdir, port=self._port(8080))
        self.processes.append(self.emulator)
        if self.external_prefect is not None:
            self.prefect: PrefectServer = self.external_prefect
        else:
            self.prefect = start_prefect_server(self.workdir / "prefect", port=self._port(4200), ui=self.keep)
            self.processes.append(self.prefect)
        os.environ.update(self.prefect.env())
        self._say(f"  emulator  {self.emulator.url}  (admin/admin; see servicenow_emulator/README.md)")
        self._say(f"  prefect   {self.prefect.url}")
        self._blocks()
        self.receiver_port = self._port(8787)
        env = {**os.environ, **self.prefect.env()}
        self.receiver = self._spawn(
            "webhook-receiver",
            [
                sys.executable,
                "-m",
                "servicenow_blocks.cli",
                "webhook",
                "--port",
                str(self.receiver_port),
                "--log-level",
                "warning",
            ],
            env,
            f"http://127.0.0.1:{self.receiver_port}/health",
        )
        serve_argv = [sys.executable, "-m", "flows.serve", "--executor-root", str(self.sandbox)]
        self.serve = self._spawn(
            "serve",
            [*serve_argv, "--poll-interval-s", "3600", *self.serve_args],
            # The local Prefect server runs on SQLite, which answers concurrent writers with a retryable 503
            # ("database is locked"); under a burst of runs the default 5 retries of a client are not enough.
            {**env, "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PREFECT_CLIENT_MAX_RETRIES": "10"},
            None,
        )
        self._wait_for_deployments()
        self._say(f"  receiver  http://127.0.0.1:{self.receiver_port}/servicenow/webhook")
        self.rules = self._business_rules()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], health: str | None) -> ManagedProcess:
        log = self.workdir / f"{name}.log"
        process = subprocess.Popen(
            argv,
            stdout=open(log, "w"),  # noqa: SIM115 - owned by the child
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        managed = ManagedProcess(name, process, log, health or "")
        self.processes.append(managed)
        if health:
            wait_http(health, process, log, 60)
        return managed

    def _blocks(self) -> None:
        from prefect.blocks.system import Secret

        from servicenow_blocks import ServiceNowCredentials

        ServiceNowCredentials(
            instance=self.emulator.url, username=INTEGRATION_USER[0], password=INTEGRATION_USER[1]
        ).save("servicenow", overwrite=True)
        Secret(value=self.secret).save("servicenow-webhook-secret", overwrite=True)

    def _wait_for_deployments(self) -> None:
        from prefect.client.orchestration import get_client

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with get_client(sync_client=True) as client:
                names = {d.name for d in client.read_deployments()}
            if {"run-change-request", "poll-change-requests"} <= names:
                return
            if self.serve.process.poll() is not None:
                raise RuntimeError(f"serve exited:\n{self.serve.log.read_text()[-3000:]}")
            time.sleep(0.5)
        raise RuntimeError("the deployments did not appear within 90 s")

    def sn(self, auth: tuple[str, str] = ADMIN) -> httpx.Client:
        return httpx.Client(base_url=self.emulator.url, auth=auth, timeout=30)

    def _business_rules(self) -> dict[str, str]:
        """The emulator's outbound Business Rules, as deployments/servicenow/ installs them on an instance."""
        url = f"http://127.0.0.1:{self.receiver_port}/servicenow/webhook"
        rules = {
            "change approved": {
                "name": "Prefect webhook: change approved",
                "collection": "change_request",
                "condition": "current.approval.changesTo('approved')",
            },
            "gate decided": {
                "name": "Prefect webhook: approval gate decided",
                "collection": "change_task",
                "condition": "current.approval.changesTo('approved') || current.approval.changesTo('rejected')",
                "filter_condition": "correlation_idSTARTSWITHprefect-gate:",
            },
        }
        ids = {}
        with self.sn() as sn:
            for key, rule in rules.items():
                body = {
                    **rule,
                    "when": "after",
                    "action_update": "true",
                    "action_insert": "false",
                    "x_webhook_url": url,
                    "x_webhook_secret": self.secret,
                    "x_webhook_max_attempts": "5",
                }
                ids[key] = sn.post("/api/now/table/sys_script", json=body).raise_for_status().json()["result"]["sys_id"]
        return ids

    def stop(self) -> None:
        for managed in reversed(self.processes):
            managed.stop()

    def _port(self, preferred: int) -> int:
        return preferred_port(preferred) if self.preferred_ports else free_port()

    def _say(self, text: str) -> None:
        if not self.quiet:
            say(text)


def preferred_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()
