"""The Prefect side: the tasks inside a real async flow run by a real Prefect server, the block registered with
``prefect block register -m servicenow_blocks`` and saved and loaded with its secrets kept secret."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from client_support import Instance, forward_proxy, tag
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, LogFilter, LogFilterFlowRunId

from servicenow_blocks import NotFoundError, Query, ServiceNowCredentials, tasks


@pytest.fixture(scope="module")
def secrets(sn: Instance) -> dict[str, str]:
    """A user and an OAuth client of this module, with secrets found nowhere else (so a leak can be seen)."""
    user, password = sn.create_user(("itil",))
    client_id, client_secret, entity_id = sn.create_oauth_client()
    yield {"username": user, "password": password, "client_id": client_id, "client_secret": client_secret}
    sn.delete("oauth_entity", entity_id)


def _credentials(sn: Instance, secrets: dict[str, str]) -> ServiceNowCredentials:
    return sn.credentials(auth_type="oauth_password", **secrets)


async def _task_runs(state: Any, expected: int, timeout_s: float = 10) -> list[Any]:
    """The flow run's task runs, once all ``expected`` have been recorded in a final state (the server
    records them from events, a moment after the flow returns)."""
    run_filter = FlowRunFilter(id={"any_": [state.state_details.flow_run_id]})
    async with get_client() as client:
        for _ in range(int(timeout_s / 0.25)):
            runs = await client.read_task_runs(flow_run_filter=run_filter)
            if len(runs) >= expected and all(r.state and r.state.is_final() for r in runs):
                break
            await asyncio.sleep(0.25)
    assert len(runs) == expected, runs
    return runs


async def _logs(flow_run_id: Any, until: str, timeout_s: float = 10) -> list[str]:
    """The flow run's log lines from the API, once ``until`` has arrived (logs are shipped in batches)."""
    async with get_client() as client:
        for _ in range(int(timeout_s / 0.25)):
            logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            lines = [log.message for log in logs]
            if any(until in line for line in lines):
                return lines
            await asyncio.sleep(0.25)
    raise AssertionError(f"no log line with {until!r} in {lines}")


async def test_tasks_in_a_flow(prefect_server: Any, sn: Instance, secrets: dict, tmp_path: Path) -> None:
    marker = tag("flow")
    destination = tmp_path / "downloaded.txt"

    @flow(name="servicenow-client-tasks")
    async def ticket_work(credentials: ServiceNowCredentials) -> dict[str, Any]:
        by_marker = Query().eq("correlation_id", marker)
        created = await tasks.create_record(
            credentials, "incident", {"short_description": "from a flow", "correlation_id": marker}, by_marker
        )
        sys_id = created["sys_id"]
        read = await tasks.get_record(credentials, "incident", sys_id, fields=["number", "short_description"])
        updated = await tasks.update_record(credentials, "incident", sys_id, {"work_notes": "done", "urgency": "1"})
        attached = await tasks.attach_file(credentials, "incident", sys_id, "result.txt", "all good\n", "text/plain")
        again = await tasks.attach_file(credentials, "incident", sys_id, "result.txt", "all good\n", "text/plain")
        data = await tasks.download_attachment(credentials, attached["sys_id"], destination)
        counted = await tasks.count_records(credentials, "incident", by_marker)
        rows = await tasks.get_records(credentials, "incident", by_marker, fields=["urgency"], limit=5)
        await tasks.delete_record(credentials, "incident", sys_id)
        remaining = await tasks.count_records(credentials, "incident", by_marker)
        return {
            "number": created["number"],
            "read": read,
            "urgency": updated["urgency"],
            "uploaded": (attached["uploaded"], again["uploaded"]),
            "data": data,
            "counts": (counted, remaining),
            "rows": rows,
        }

    before = sn.counts()
    state = await ticket_work(_credentials(sn, secrets), return_state=True)
    assert state.is_completed(), state
    result = await state.result()
    assert result["read"] == {"number": result["number"], "short_description": "from a flow"}
    assert result["urgency"] == "1"
    assert result["uploaded"] == (True, False)  # the identical file was not sent twice
    assert result["data"] == b"all good\n" and destination.read_bytes() == b"all good\n"
    assert result["counts"] == (1, 0)
    assert result["rows"] == [{"urgency": "1"}]
    assert sn.delta(before, "POST /oauth_token.do") == 1  # ten tasks, ten clients, one OAuth token

    task_runs = await _task_runs(state, 10)
    assert all(t.state.is_completed() for t in task_runs)
    lines = await _logs(state.state_details.flow_run_id, "Deleted incident")
    assert any(f"Created incident {result['number']}" in line for line in lines)
    assert any("already attached" in line and "not re-sent" in line for line in lines)
    text = "\n".join(lines)
    for secret in (secrets["password"], secrets["client_secret"]):
        assert secret not in text


async def test_a_failing_task_fails_once_with_the_typed_error(prefect_server: Any, sn: Instance) -> None:
    @flow(name="servicenow-client-missing-record")
    async def read_missing(credentials: ServiceNowCredentials) -> dict:
        return await tasks.get_record(credentials, "incident", "0" * 32)

    state = await read_missing(sn.credentials(), return_state=True)
    assert state.is_failed()
    try:
        await state.result()
        raise AssertionError("the flow did not raise")
    except NotFoundError as error:
        assert error.status == 404 and "Check the sys_id" in str(error)
    task_runs = await _task_runs(state, 1)
    assert task_runs[0].state.is_failed() and task_runs[0].run_count == 1  # retried in the client, not by Prefect


async def test_block_registers_saves_and_loads_with_secrets_hidden(
    prefect_server: Any, sn: Instance, secrets: dict
) -> None:
    registered = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "servicenow_blocks"],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=120,
    )
    assert registered.returncode == 0, registered.stdout + registered.stderr
    async with get_client() as client:
        block_type = await client.read_block_type_by_slug("servicenow-credentials")
        assert block_type.name == "ServiceNow Credentials"
        schema = await client.read_block_schema_by_checksum(ServiceNowCredentials._calculate_schema_checksum())
        assert {"password", "client_secret", "api_key", "token", "proxy"} <= set(schema.fields["secret_fields"])

    name = tag("block")
    proxy_password = tag("px-S3CRET")
    with forward_proxy() as proxy:
        proxy_url = proxy.url.replace("http://", f"http://egress:{proxy_password}@")
        await sn.credentials(auth_type="oauth_password", proxy=proxy_url, **secrets).asave(name)
        async with get_client() as client:
            stored = await client.read_block_document_by_name(name, "servicenow-credentials", include_secrets=False)
        for secret in (secrets["password"], secrets["client_secret"], proxy_password):
            assert secret not in str(stored.data)
        loaded = await ServiceNowCredentials.aload(name)
        assert loaded.password.get_secret_value() == secrets["password"]  # really stored, and kept secret
        assert loaded.proxy.get_secret_value() == proxy_url
        for secret in (secrets["password"], secrets["client_secret"], proxy_password):
            assert secret not in repr(loaded) and secret not in str(loaded.model_dump())
        async with loaded.get_async_client() as client:
            assert await client.count("incident", Query().eq("correlation_id", tag("none"))) == 0
        assert proxy.seen  # through the stored proxy
