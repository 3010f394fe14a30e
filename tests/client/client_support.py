"""Helpers for the client tests (imported by the test modules; the fixtures are in conftest.py).

Every test talks to a live emulator process over real HTTP. Tests tag the records they create with a
unique ``correlation_id`` so that they never see each other's rows on the shared instance.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from servicenow_blocks import ServiceNowCredentials

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` (unlike `python -m pytest`) does not put the project root on the path
    sys.path.insert(0, str(ROOT))

from tests.conftest import LiveEmulator, start_emulator  # noqa: E402

__all__ = ["LiveEmulator", "start_emulator"]

OAUTH_CLIENT_ID = "prefect-servicenow"
OAUTH_CLIENT_SECRET = "prefect-oauth-secret"
API_KEY = "emulator-api-key-for-prefect-integration"
CLIENT_CREDENTIALS_PROPERTY = "glide.oauth.inbound.client.credential.grant_type.enabled"


def tag(prefix: str = "client") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Instance:
    """The session emulator plus helpers: credentials, fault scopes, request counts."""

    def __init__(self, live: Any):
        self.live = live
        self.url = live.url

    def credentials(self, **kw: Any) -> ServiceNowCredentials:
        kw.setdefault("instance", self.url)
        if kw.get("auth_type", "basic") == "basic":
            kw.setdefault("username", "admin")
            kw.setdefault("password", "admin")
        return ServiceNowCredentials(**kw)

    @contextlib.contextmanager
    def faults(self, **settings: Any) -> Iterator[None]:
        self.live.set_faults(**settings)
        try:
            yield
        finally:
            self.live.set_faults()

    @contextlib.contextmanager
    def properties(self, **values: str) -> Iterator[None]:
        with self.live.client() as admin:
            current = admin.get("/emulator/admin/properties").json()["result"]
        self.live.set_properties(**values)
        try:
            yield
        finally:
            self.live.set_properties(**{name: current.get(name) or "" for name in values})

    def counts(self) -> dict[str, int]:
        stats = self.live.stats()
        return {"requests": stats["requests"], "count_queries": stats["count_queries"], **stats["by_route"]}

    def delta(self, before: dict[str, int], key: str) -> int:
        """How many more ``key`` requests (e.g. "GET /api/now/table/incident") than in ``before``."""
        return self.counts().get(key, 0) - before.get(key, 0)

    def rows(self, table: str, query: str, fields: str = "sys_id") -> list[dict[str, Any]]:
        """Rows as the admin sees them, read with plain httpx (independent of the client under test)."""
        with self.live.client() as admin:
            r = admin.get(
                f"/api/now/table/{table}",
                params={"sysparm_query": query, "sysparm_fields": fields, "sysparm_limit": 10000},
            )
            r.raise_for_status()
            return r.json()["result"]

    def create_user(self, roles: tuple[str, ...] = ("itil",)) -> tuple[str, str]:
        """A new user with these roles and a password found nowhere else; returns (user name, password)."""
        name, password = tag("user"), tag("pw-S3CRET")
        with self.live.client() as admin:
            r = admin.post("/api/now/table/sys_user", json={"user_name": name, "user_password": password})
            assert r.status_code == 201, r.text
            user_id = r.json()["result"]["sys_id"]
            for role in roles:
                found = admin.get("/api/now/table/sys_user_role", params={"sysparm_query": f"name={role}"})
                role_id = found.json()["result"][0]["sys_id"]
                admin.post(
                    "/api/now/table/sys_user_has_role", json={"user": user_id, "role": role_id}
                ).raise_for_status()
        return name, password

    def create_oauth_client(self, **values: str) -> tuple[str, str, str]:
        """A new OAuth client (Application Registry entry); returns (client_id, client_secret, sys_id)."""
        client_id, secret = tag("oauth"), tag("cs-S3CRET")
        with self.live.client() as admin:
            r = admin.post(
                "/api/now/table/oauth_entity",
                json={"name": client_id, "client_id": client_id, "client_secret": secret, **values},
            )
            assert r.status_code == 201, r.text
            return client_id, secret, r.json()["result"]["sys_id"]

    def delete(self, table: str, sys_id: str) -> None:
        with self.live.client() as admin:
            admin.delete(f"/api/now/table/{table}/{sys_id}")
