"""Helpers shared by the emulator's HTTP tests (imported by the test modules; not a conftest).

Every test talks to a live emulator process over real HTTP (the ``emulator`` session fixture in
``tests/conftest.py``). Tests that create records tag them with a unique ``correlation_id`` (or name)
so that they never see each other's rows on the shared instance.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

ITIL = ("itil", "itil")
READONLY = ("readonly", "readonly")
NOROLE = ("norole", "norole")
INTEGRATION = ("prefect.integration", "snow-integration-pw")
API_KEY = "emulator-api-key-for-prefect-integration"
OAUTH_CLIENT = ("prefect-servicenow", "prefect-oauth-secret")
ENVELOPE_KEYS = {"error", "status"}


def tag(prefix: str = "t") -> str:
    """A unique marker for the rows one test creates."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def assert_error(response: httpx.Response, status: int, message: str, detail: Any = ...) -> dict:
    """The ServiceNow error envelope, exactly: {"error": {"message", "detail"}, "status": "failure"}."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == ENVELOPE_KEYS, body
    assert body["status"] == "failure"
    assert set(body["error"]) == {"message", "detail"}, body
    assert body["error"]["message"] == message, body
    if detail is not ...:
        assert body["error"]["detail"] == detail, body
    assert "Traceback" not in response.text
    return body


def create(client: httpx.Client, table: str, values: dict[str, Any], **params: Any) -> dict[str, Any]:
    """POST a record; return its raw values (display_value=false, no reference links)."""
    params.setdefault("sysparm_exclude_reference_link", "true")
    r = client.post(f"/api/now/table/{table}", json=values, params=params)
    assert r.status_code == 201, r.text
    return r.json()["result"]


def patch(client: httpx.Client, table: str, sys_id: str, values: dict[str, Any], **params: Any) -> httpx.Response:
    params.setdefault("sysparm_exclude_reference_link", "true")
    return client.patch(f"/api/now/table/{table}/{sys_id}", json=values, params=params)


def get(client: httpx.Client, table: str, sys_id: str, **params: Any) -> dict[str, Any]:
    params.setdefault("sysparm_exclude_reference_link", "true")
    r = client.get(f"/api/now/table/{table}/{sys_id}", params=params)
    assert r.status_code == 200, r.text
    return r.json()["result"]


def rows(client: httpx.Client, table: str, query: str = "", fields: str = "", **params: Any) -> list[dict[str, Any]]:
    params.setdefault("sysparm_exclude_reference_link", "true")
    if query:
        params["sysparm_query"] = query
    if fields:
        params["sysparm_fields"] = fields
    r = client.get(f"/api/now/table/{table}", params=params)
    assert r.status_code == 200, r.text
    return r.json()["result"]


def one_by(client: httpx.Client, table: str, query: str, fields: str = "sys_id") -> dict[str, Any]:
    found = rows(client, table, query, fields)
    assert len(found) == 1, found
    return found[0]


def sys_id_of(client: httpx.Client, table: str, query: str) -> str:
    return one_by(client, table, query)["sys_id"]


def delete(client: httpx.Client, table: str, sys_id: str) -> None:
    r = client.delete(f"/api/now/table/{table}/{sys_id}")
    assert r.status_code in (204, 404), r.text


@pytest.fixture
def itil(emulator) -> Iterator[httpx.Client]:
    with emulator.client(ITIL) as client:
        yield client


@pytest.fixture
def readonly(emulator) -> Iterator[httpx.Client]:
    with emulator.client(READONLY) as client:
        yield client


@pytest.fixture
def norole(emulator) -> Iterator[httpx.Client]:
    with emulator.client(NOROLE) as client:
        yield client


def make_user(admin: httpx.Client, user_name: str, password: str, roles: list[str], **fields: Any) -> str:
    """Create a user with roles through the Table API (as an admin would); return its sys_id."""
    user = create(admin, "sys_user", {"user_name": user_name, "user_password": password, **fields})
    for role in roles:
        role_id = sys_id_of(admin, "sys_user_role", f"name={role}")
        create(admin, "sys_user_has_role", {"user": user["sys_id"], "role": role_id})
    return user["sys_id"]
