"""Starting the emulator: time to first answer, the seeds, and the bulk generator."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(tmp_path: Path, *args: str, deadline_s: float = 30) -> Iterator[tuple[str, float]]:
    """Start ``python -m servicenow_emulator``; yield its URL and the seconds to the first 200."""
    port = _free_port()
    log = tmp_path / f"emulator-{port}.log"
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "servicenow_emulator", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"emulator exited: {log.read_text()}")
            try:
                r = httpx.get(f"{url}/api/now/table/sys_user?sysparm_limit=1", auth=("admin", "admin"), timeout=1)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > deadline_s:
                raise AssertionError(f"no answer within {deadline_s} s: {log.read_text()}")
            time.sleep(0.01)
        yield url, time.perf_counter() - started
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _count(url: str, table: str, query: str = "") -> int:
    r = httpx.get(
        f"{url}/api/now/table/{table}",
        params={"sysparm_query": query, "sysparm_limit": 1, "sysparm_fields": "sys_id"},
        auth=("admin", "admin"),
    )
    assert r.status_code == 200, r.text
    return int(r.headers["X-Total-Count"])


def test_demo_seed_answers_within_two_seconds(tmp_path):
    with running(tmp_path, "--seed", "demo") as (url, elapsed):
        assert elapsed < 2.0, f"first 200 after {elapsed:.2f} s"
        assert _count(url, "change_request") > 0
        assert _count(url, "incident") > 0
        assert _count(url, "cmdb_ci_server") > 0
        assert _count(url, "cmdb_rel_ci") > 0


def test_empty_seed_has_users_but_no_estate(tmp_path):
    with running(tmp_path, "--seed", "empty") as (url, _):
        users = httpx.get(
            f"{url}/api/now/table/sys_user",
            params={"sysparm_fields": "user_name", "sysparm_query": "ORDERBYuser_name"},
            auth=("admin", "admin"),
        ).json()["result"]
        assert {"admin", "itil", "readonly", "prefect.integration", "norole"} <= {u["user_name"] for u in users}
        for table in ("cmdb_ci", "change_request", "incident", "cmdb_rel_ci", "sys_user_group"):
            assert _count(url, table) == 0, table
        assert _count(url, "cmdb_rel_type") > 0  # the baseline keeps the relationship types
        for user in (("itil", "itil"), ("readonly", "readonly")):
            assert httpx.get(f"{url}/api/now/table/incident", auth=user).status_code == 200
        r = httpx.post(
            f"{url}/oauth_token.do",
            data={"grant_type": "password", "client_id": "prefect-servicenow", "client_secret": "prefect-oauth-secret",
                  "username": "itil", "password": "itil"},
        )  # fmt: skip
        assert r.status_code == 200
        key = httpx.get(
            f"{url}/api/now/table/incident", headers={"x-sn-apikey": "emulator-api-key-for-prefect-integration"}
        )
        assert key.status_code == 200


def test_ci_count_generator_and_the_default_limit(tmp_path):
    with running(
        tmp_path, "--seed", "empty", "--ci-count", "10050", "--change-count", "20", "--incident-count", "30"
    ) as (
        url,
        _,
    ):
        assert _count(url, "cmdb_ci_server") == 10050
        assert _count(url, "cmdb_ci_linux_server") + _count(url, "cmdb_ci_win_server") == 10050
        assert _count(url, "change_request") == 20 and _count(url, "incident") == 30
        r = httpx.get(
            f"{url}/api/now/table/cmdb_ci_server",
            params={"sysparm_fields": "name"},
            auth=("admin", "admin"),
            timeout=60,
        )
        assert r.headers["X-Total-Count"] == "10050"
        assert len(r.json()["result"]) == 10000  # sysparm_limit defaults to 10000
        names = [row["name"] for row in r.json()["result"]]
        assert len(set(names)) == 10000
        r = httpx.get(
            f"{url}/api/now/table/cmdb_ci_server",
            params={"sysparm_fields": "name,sys_class_name", "sysparm_offset": 10000},
            auth=("admin", "admin"),
        )
        assert len(r.json()["result"]) == 50
        # generated rows are ordinary rows: numbers continue from them
        r = httpx.post(
            f"{url}/api/now/table/change_request", json={"short_description": "after"}, auth=("admin", "admin")
        )
        number = r.json()["result"]["number"]
        assert _count(url, "change_request", f"number={number}") == 1
