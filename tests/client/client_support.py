"""Helpers for the client tests (imported by the test modules; the fixtures are in conftest.py).

Every test talks to a live emulator process over real HTTP. Tests tag the records they create with a
unique ``correlation_id`` so that they never see each other's rows on the shared instance.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

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


@dataclass
class ForwardProxy:
    """A minimal forward proxy (absolute-form requests over plain HTTP) in front of the emulator.

    ``delays`` holds ("METHOD", path regex) -> seconds: a matching request is forwarded that much later, and
    forwarded even when the client has given up meanwhile, as a gateway in front of a slow instance does.
    """

    url: str
    seen: list[str]
    delays: dict[tuple[str, str], float] = field(default_factory=dict)

    def delay_for(self, method: str, url: str) -> float:
        path = httpx.URL(url).path
        return next((s for (m, p), s in self.delays.items() if m == method and re.search(p, path)), 0.0)


@contextlib.contextmanager
def forward_proxy(delays: dict[tuple[str, str], float] | None = None) -> Iterator[ForwardProxy]:
    seen: list[str] = []
    state: dict[str, ForwardProxy] = {}

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            seen.append(f"{self.command} {self.path}")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection")}
            time.sleep(state["proxy"].delay_for(self.command, self.path))
            answer = httpx.request(self.command, self.path, headers=headers, content=body)
            try:
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)
            except OSError:
                pass  # the client gave up waiting

        do_GET = do_POST = do_PATCH = do_DELETE = _forward

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state["proxy"] = ForwardProxy(f"http://127.0.0.1:{server.server_address[1]}", seen, dict(delays or {}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state["proxy"]
    finally:
        server.shutdown()
        server.server_close()
