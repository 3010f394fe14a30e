"""The scale-out path: Prefect server on PostgreSQL, deployments from deployments/prefect.yaml, and a
process worker pulling from the work pool, executing a change request end to end against the emulator.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from flows.local_stack import ROOT, start_emulator, start_prefect_server
from flows.stack_ops import wait_for

PG_DSN = "postgresql://postgres@127.0.0.1:5432"


async def _admin_sql(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(f"{PG_DSN}/postgres", timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def postgres_database():
    name = f"prefect_servicenow_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin_sql(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # the machine's PostgreSQL is part of the environment; say so plainly
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is not usable ({exc}); the scale-out test needs it")
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    asyncio.run(_admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _run(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result.stdout


def test_worker_on_postgres_server_executes_a_change(tmp_path: Path, postgres_database: str) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = start_prefect_server(tmp_path / "prefect", database_url=postgres_database, timeout_s=120)
    emulator = start_emulator(tmp_path / "emulator")
    worker = None
    try:
        env = {
            **os.environ,
            **server.env(),
            "PREFECT_SERVICENOW_HOME": str(ROOT),
            "PREFECT_SERVICENOW_SANDBOX": str(tmp_path / "hosts"),
            "PREFECT_WORKER_QUERY_SECONDS": "1",
        }
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            from servicenow_blocks import ServiceNowCredentials

            ServiceNowCredentials(
                instance=emulator.url, username="prefect.integration", password="snow-integration-pw"
            ).save("servicenow", overwrite=True)
            _run(
                [sys.executable, "-m", "prefect", "work-pool", "create", "servicenow-process", "--type", "process"], env
            )
            out = _run(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "--no-prompt",
                    "deploy",
                    "--all",
                    "--prefect-file",
                    "deployments/prefect.yaml",
                ],
                env,
            )
            assert "run-change-request/run-change-request" in out and "poll-change-requests/poll-change-requests" in out

            log = tmp_path / "worker.log"
            worker = subprocess.Popen(
                [sys.executable, "-m", "prefect", "worker", "start", "--pool", "servicenow-process", "--limit", "4"],
                env=env,
                cwd=ROOT,
                stdout=open(log, "w"),  # noqa: SIM115 - owned by the child
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

            with httpx.Client(base_url=emulator.url, auth=("erin.change", "erin.change"), timeout=30) as sn:
                change = sn.get(
                    "/api/now/table/change_request",
                    params={
                        "sysparm_query": "short_description=Restart payments-api after config rollout",
                        "sysparm_fields": "sys_id,number",
                    },
                ).json()["result"][0]
                sn.patch(
                    f"/api/now/table/change_request/{change['sys_id']}", json={"approval": "approved"}
                ).raise_for_status()

            from prefect.deployments import run_deployment

            # The poll deployment (on the worker) dispatches the change to run-change-request (on the worker).
            poll = run_deployment(
                "poll-change-requests/poll-change-requests",
                parameters={"query": f"sys_id={change['sys_id']}^approval=approved^correlation_idISEMPTY"},
                timeout=120,
            )
            assert poll.state_name == "Completed", poll.state

            def closed() -> dict | None:
                with httpx.Client(base_url=emulator.url, auth=("admin", "admin"), timeout=30) as sn:
                    record = sn.get(
                        f"/api/now/table/change_request/{change['sys_id']}",
                        params={"sysparm_fields": "state,close_code,correlation_id"},
                    ).json()["result"]
                return record if record["state"] == "3" else None

            record = wait_for(closed, 120, f"{change['number']} closed by the worker's run")
            assert record["close_code"] == "successful"

            from prefect.client.orchestration import get_client

            def finished() -> object | None:
                # The ticket closes a moment before the run reports its final state.
                with get_client(sync_client=True) as client:
                    run = client.read_flow_run(uuid.UUID(record["correlation_id"]))
                return run if run.state is not None and run.state.is_final() else None

            run = wait_for(finished, 60, "the worker's run to finish")
            assert run.state_name == "Completed"
            assert run.work_pool_name == "servicenow-process"
            assert f"change:{change['number']}" in run.tags
    finally:
        if worker is not None:  # workers stop before the server (a worker without its API ignores SIGTERM)
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        emulator.stop()
        server.stop()
