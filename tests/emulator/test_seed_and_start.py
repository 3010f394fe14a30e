"""Starting the emulator: time to first answer, the seeds, the bulk generator and the start options."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PREFECT_SERVICENOW = Path(sys.executable).parent / "prefect-servicenow"
ADMIN = ("admin", "admin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(
    tmp_path: Path,
    *args: str,
    deadline_s: float = 30,
    auth: tuple[str, str] = ADMIN,
    probe: str = "/api/now/table/sys_user?sysparm_limit=1",
    command: list[str] | None = None,
) -> Iterator[tuple[str, float]]:
    """Start ``python -m servicenow_emulator`` (or ``command``); yield its URL and the seconds to the first
    200 on ``probe``."""
    port = _free_port()
    log = tmp_path / f"emulator-{port}.log"
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [*(command or [sys.executable, "-m", "servicenow_emulator"]), "--port", str(port), *args],
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
                r = httpx.get(f"{url}{probe}", auth=auth, timeout=1)
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


def test_demo_seed_starts_with_an_estate(tmp_path):
    # The start-up time (within 2 s) is measured by `bench/emulator_serving.py --start-times`, not asserted here.
    with running(tmp_path, "--seed", "demo") as (url, _):
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


# --- start options ----------------------------------------------------------------------------------------
def _get(url: str, path: str, auth: tuple[str, str] = ADMIN, **params) -> httpx.Response:
    return httpx.get(f"{url}{path}", params=params, auth=auth, timeout=30)


def _marker_rows(url: str, marker: str, auth: tuple[str, str] = ADMIN) -> list[dict]:
    r = _get(url, "/api/now/table/incident", auth, sysparm_query=f"correlation_id={marker}", sysparm_fields="number")
    assert r.status_code == 200, r.text
    return r.json()["result"]


def test_db_file_is_reopened_with_its_data_not_reseeded(tmp_path):
    db = tmp_path / "instance.sqlite"
    with running(tmp_path, "--seed", "empty", "--db", str(db)) as (url, _):
        r = httpx.post(
            f"{url}/api/now/table/incident", json={"short_description": "kept", "correlation_id": "kept-1"}, auth=ADMIN
        )
        number = r.json()["result"]["number"]
        httpx.post(f"{url}/emulator/admin/properties", json={"glide.sys.default.tz": "Europe/Paris"}, auth=ADMIN)
    assert db.exists()
    with running(tmp_path, "--seed", "demo", "--db", str(db)) as (url, _):
        assert _marker_rows(url, "kept-1") == [{"number": number}]
        assert _count(url, "cmdb_ci_server") == 0  # reopened, not seeded with the demo estate
        properties = _get(url, "/emulator/admin/properties").json()["result"]
        assert properties["glide.sys.default.tz"] == "Europe/Paris"
        # numbering continues after the stored records
        r = httpx.post(f"{url}/api/now/table/incident", json={"short_description": "next"}, auth=ADMIN)
        assert r.json()["result"]["number"] > number


def test_admin_user_and_password_at_start(tmp_path):
    with running(
        tmp_path, "--seed", "empty", "--admin-user", "boss", "--admin-password", "s3cret", auth=("boss", "s3cret")
    ) as (url, _):
        assert _get(url, "/emulator/admin/faults", ("boss", "s3cret")).status_code == 200  # an admin
        assert _get(url, "/api/now/table/sys_user", ADMIN).status_code == 401  # no admin / admin then
        assert _get(url, "/api/now/table/sys_user", ("boss", "admin")).status_code == 401
        users = _get(url, "/api/now/table/sys_user", ("boss", "s3cret"), sysparm_query="user_name=boss").json()
        assert [u["sys_id"] for u in users["result"]] == ["6816f79cc0a8016401c5a33be04be441"]  # the system admin


def test_admin_options_are_applied_to_a_reopened_db(tmp_path):
    db = tmp_path / "instance.sqlite"
    with running(tmp_path, "--seed", "empty", "--db", str(db)) as (url, _):
        httpx.post(f"{url}/api/now/table/incident", json={"correlation_id": "reopen-1"}, auth=ADMIN).raise_for_status()
    # a new password for the existing admin
    with running(tmp_path, "--db", str(db), "--admin-password", "n3w", auth=("admin", "n3w")) as (url, _):
        assert _get(url, "/api/now/table/sys_user", ADMIN).status_code == 401
        assert len(_marker_rows(url, "reopen-1", ("admin", "n3w"))) == 1
    # without the options the store keeps its users as they are (no silent reset to admin / admin)
    with running(tmp_path, "--db", str(db), auth=("admin", "n3w")) as (url, _):
        assert _get(url, "/api/now/table/sys_user", ADMIN).status_code == 401
    # another admin user is created; the first one is left alone
    with running(
        tmp_path, "--db", str(db), "--admin-user", "boss", "--admin-password", "b0ss", auth=("boss", "b0ss")
    ) as (url, _):
        assert _get(url, "/emulator/admin/stats", ("boss", "b0ss")).status_code == 200  # it has the admin role
        assert _get(url, "/emulator/admin/stats", ("admin", "n3w")).status_code == 200
        assert len(_marker_rows(url, "reopen-1", ("boss", "b0ss"))) == 1
    # an existing non-admin user named at start becomes an admin, with its password unchanged when none is given
    with running(tmp_path, "--db", str(db), "--admin-user", "itil", auth=("itil", "itil")) as (url, _):
        assert _get(url, "/emulator/admin/stats", ("itil", "itil")).status_code == 200


def test_latency_ms_at_start(tmp_path):
    with (
        running(tmp_path, "--seed", "empty", "--latency-ms", "300") as (url, _),
        httpx.Client(base_url=url, auth=ADMIN, timeout=30) as client,
    ):
        client.get("/api/now/table/sys_user", params={"sysparm_limit": 1})  # a warm connection
        started = time.perf_counter()
        assert client.get("/api/now/table/sys_user", params={"sysparm_limit": 1}).status_code == 200
        assert time.perf_counter() - started >= 0.3
        started = time.perf_counter()
        assert client.get("/emulator/health").status_code == 200  # the emulator's own endpoints are exempt
        assert time.perf_counter() - started < 0.3
        assert client.get("/emulator/admin/faults").json()["result"]["latency_ms"] == 300


FAULTS_AT_START = {
    "script": [{"status": 503, "times": 2, "method": "GET", "path": "^/api/now/table/incident$"}],
    "latency_per_row_ms": 5,
    "seed": 7,
}


def _faults_are_active(url: str) -> None:
    config = _get(url, "/emulator/admin/faults").json()["result"]
    assert config["latency_per_row_ms"] == 5 and config["seed"] == 7 and config["latency_ms"] == 20
    assert config["script"][0]["times"] == 2 and config["script"][0]["status"] == 503
    codes = [_get(url, "/api/now/table/incident", sysparm_limit=1).status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    # and changeable at runtime, through the admin endpoint
    r = httpx.patch(f"{url}/emulator/admin/faults", json={"hibernate": True}, auth=ADMIN)
    assert r.status_code == 200 and r.json()["result"]["latency_per_row_ms"] == 5
    assert "Hibernating" in _get(url, "/api/now/table/sys_user").text
    assert httpx.put(f"{url}/emulator/admin/faults", json={}, auth=ADMIN).json()["result"]["hibernate"] is False


def test_faults_at_start_inline_json(tmp_path):
    with running(tmp_path, "--seed", "empty", "--latency-ms", "20", "--faults", json.dumps(FAULTS_AT_START)) as (
        url,
        _,
    ):
        _faults_are_active(url)


def test_faults_at_start_from_a_file(tmp_path):
    path = tmp_path / "faults.json"
    path.write_text(json.dumps({**FAULTS_AT_START, "latency_ms": 20, "hibernate": True}))
    # the file's latency_ms wins over --latency-ms; hibernation answers every ServiceNow path
    with running(
        tmp_path, "--seed", "empty", "--latency-ms", "900", "--faults", f"@{path}", probe="/emulator/health"
    ) as (url, _):
        r = _get(url, "/api/now/table/sys_user")
        assert r.status_code == 200 and "Hibernating" in r.text
        httpx.patch(f"{url}/emulator/admin/faults", json={"hibernate": False}, auth=ADMIN).raise_for_status()
        _faults_are_active(url)


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        ('{"latency_ms": -1}', "latency_ms must not be negative"),
        ('{"no_such_setting": 1}', "unknown fault settings: no_such_setting"),
        ('{"script": [{"kind": "explode"}]}', "unknown fault kind"),
        ("{not json", "invalid fault settings"),
        ("[1, 2]", "fault settings are a JSON object"),
        ("@/nonexistent/faults.json", "cannot read"),
    ],
)
def test_invalid_faults_at_start_stop_the_emulator(tmp_path, faults, message):
    proc = subprocess.run(
        [sys.executable, "-m", "servicenow_emulator", "--port", str(_free_port()), "--faults", faults],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode != 0
    assert "--faults" in proc.stderr and message in proc.stderr, proc.stderr


@pytest.mark.skipif(not PREFECT_SERVICENOW.exists(), reason="the prefect-servicenow console script is not installed")
def test_prefect_servicenow_emulator_subcommand(tmp_path):
    """``prefect-servicenow emulator`` takes the same options, --faults included."""
    faults = json.dumps({"script": [{"status": 502, "times": 1, "path": "^/api/now/table/problem$"}]})
    with running(
        tmp_path,
        "--seed",
        "demo",
        "--admin-user",
        "boss",
        "--admin-password",
        "b0ss",
        "--faults",
        faults,
        auth=("boss", "b0ss"),
        command=[str(PREFECT_SERVICENOW), "emulator"],
        deadline_s=90,
    ) as (url, _):
        boss = ("boss", "b0ss")
        assert _get(url, "/api/now/table/cmdb_ci_server", boss, sysparm_limit=1).json()["result"]
        assert [_get(url, "/api/now/table/problem", boss).status_code for _ in range(2)] == [502, 200]
