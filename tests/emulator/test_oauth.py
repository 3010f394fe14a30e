"""``POST /oauth_token.do`` (reference §6): grants, token reuse, refresh, client credentials, expiry."""

from __future__ import annotations

import base64
import time

import httpx
import pytest
from sn_support import OAUTH_CLIENT, get, make_user, patch, sys_id_of, tag

ACCESS_DENIED = {"error": "server_error", "error_description": "access_denied"}


def token(emulator, data: dict, **kw) -> httpx.Response:
    return httpx.post(f"{emulator.url}/oauth_token.do", data=data, **kw)


def password_grant(emulator, user=("itil", "itil"), client=OAUTH_CLIENT) -> httpx.Response:
    return token(
        emulator,
        {"grant_type": "password", "client_id": client[0], "client_secret": client[1], "username": user[0],
         "password": user[1]},
    )  # fmt: skip


def bearer(emulator, access_token: str, path: str = "/api/now/table/incident?sysparm_limit=1") -> httpx.Response:
    return httpx.get(f"{emulator.url}{path}", headers={"Authorization": f"Bearer {access_token}"})


def test_password_grant(emulator):
    r = password_grant(emulator)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"access_token", "refresh_token", "scope", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["scope"] == "useraccount"
    assert isinstance(body["expires_in"], int) and 1700 <= body["expires_in"] <= 1800
    assert body["access_token"] and body["refresh_token"] and body["access_token"] != body["refresh_token"]
    used = bearer(emulator, body["access_token"])
    assert used.status_code == 200
    created = httpx.post(
        f"{emulator.url}/api/now/table/incident",
        json={"short_description": "by bearer"},
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert created.json()["result"]["sys_created_by"] == "itil"


def test_same_access_token_while_valid(emulator):
    first = password_grant(emulator, ("readonly", "readonly")).json()
    second = password_grant(emulator, ("readonly", "readonly")).json()
    assert first["access_token"] == second["access_token"]
    other_user = password_grant(emulator, ("itil", "itil")).json()
    assert other_user["access_token"] != first["access_token"]


def test_client_credentials_in_basic_auth_as_requests_oauthlib_sends_them(emulator):
    basic = base64.b64encode(f"{OAUTH_CLIENT[0]}:{OAUTH_CLIENT[1]}".encode()).decode()
    r = token(
        emulator,
        {"grant_type": "password", "username": "itil", "password": "itil"},
        headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
    )
    assert r.status_code == 200 and r.json()["token_type"] == "Bearer"


def test_refresh_token_grant(emulator):
    first = password_grant(emulator, ("prefect.integration", "snow-integration-pw")).json()
    r = token(
        emulator,
        {"grant_type": "refresh_token", "client_id": OAUTH_CLIENT[0], "client_secret": OAUTH_CLIENT[1],
         "refresh_token": first["refresh_token"], "params": "{'junk': 1}"},  # pysnow leaks a junk field
    )  # fmt: skip
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer" and body["access_token"]
    assert bearer(emulator, body["access_token"]).status_code == 200
    # an access token is not a refresh token, and refresh tokens belong to their client
    r = token(
        emulator,
        {"grant_type": "refresh_token", "client_id": OAUTH_CLIENT[0], "client_secret": OAUTH_CLIENT[1],
         "refresh_token": first["access_token"]},
    )  # fmt: skip
    assert (r.status_code, r.json()) == (401, ACCESS_DENIED)
    # and a refresh token is not a bearer token
    assert bearer(emulator, first["refresh_token"]).status_code == 401


@pytest.mark.parametrize(
    "data",
    [
        {"grant_type": "password", "client_id": OAUTH_CLIENT[0], "client_secret": "wrong", "username": "itil",
         "password": "itil"},
        {"grant_type": "password", "client_id": "no-such-client", "client_secret": "x", "username": "itil",
         "password": "itil"},
        {"grant_type": "password", "client_id": OAUTH_CLIENT[0], "client_secret": OAUTH_CLIENT[1], "username": "itil",
         "password": "wrong"},
        {"grant_type": "password", "username": "itil", "password": "itil"},
        {"grant_type": "refresh_token", "client_id": OAUTH_CLIENT[0], "client_secret": OAUTH_CLIENT[1],
         "refresh_token": "nope"},
        {"grant_type": "client_credentials", "client_id": OAUTH_CLIENT[0], "client_secret": OAUTH_CLIENT[1]},
    ],
)  # fmt: skip
def test_failures_are_401_access_denied(emulator, data):
    r = token(emulator, data)
    assert r.status_code == 401
    assert r.json() == ACCESS_DENIED


def test_json_body_is_refused(emulator):
    r = httpx.post(
        f"{emulator.url}/oauth_token.do",
        json={"grant_type": "password", "client_id": OAUTH_CLIENT[0], "client_secret": OAUTH_CLIENT[1],
              "username": "itil", "password": "itil"},
    )  # fmt: skip
    assert r.status_code in (400, 401)
    assert "access_token" not in r.text and "error" in r.json()


def test_client_credentials_only_when_enabled(emulator):
    data = {"grant_type": "client_credentials", "client_id": OAUTH_CLIENT[0], "client_secret": OAUTH_CLIENT[1]}
    assert token(emulator, data).json() == ACCESS_DENIED
    emulator.set_properties(**{"glide.oauth.inbound.client.credential.grant_type.enabled": "true"})
    try:
        r = token(emulator, data)
        assert r.status_code == 200
        body = r.json()
        assert body["token_type"] == "Bearer" and "refresh_token" not in body
        created = httpx.post(
            f"{emulator.url}/api/now/table/incident",
            json={"short_description": "by client credentials"},
            headers={"Authorization": f"Bearer {body['access_token']}"},
        )
        # the OAuth Application User of the entity
        assert created.json()["result"]["sys_created_by"] == "prefect.integration"
        assert token(emulator, {**data, "client_secret": "wrong"}).json() == ACCESS_DENIED
    finally:
        emulator.set_properties(**{"glide.oauth.inbound.client.credential.grant_type.enabled": "false"})
    assert token(emulator, data).status_code == 401


def test_bearer_tokens_expire(emulator, admin):
    entity = sys_id_of(admin, "oauth_entity", f"client_id={OAUTH_CLIENT[0]}")
    assert get(admin, "oauth_entity", entity)["client_secret"] == ""  # never readable
    user = (tag("oauth"), "oauth-pw")  # a user with no live token yet
    make_user(admin, *user, ["itil"])
    assert patch(admin, "oauth_entity", entity, {"access_token_lifespan": "2"}).status_code == 200
    try:
        body = password_grant(emulator, user).json()
        assert body["expires_in"] <= 2
        assert bearer(emulator, body["access_token"]).status_code == 200
        time.sleep(2.2)
        r = bearer(emulator, body["access_token"])
        assert r.status_code == 401
        assert r.json()["error"]["message"] == "User Not Authenticated"
        # the refresh token still works and gives a fresh access token
        r = token(
            emulator,
            {"grant_type": "refresh_token", "client_id": OAUTH_CLIENT[0], "client_secret": OAUTH_CLIENT[1],
             "refresh_token": body["refresh_token"]},
        )  # fmt: skip
        assert r.status_code == 200 and r.json()["access_token"] != body["access_token"]
        assert bearer(emulator, r.json()["access_token"]).status_code == 200
    finally:
        patch(admin, "oauth_entity", entity, {"access_token_lifespan": "1800"})
    assert password_grant(emulator).json()["expires_in"] > 1700


def test_pysnc_password_grant_flow(emulator, monkeypatch):
    """The real client (requests-oauthlib under pysnc) against the HTTPS listener."""
    from pysnc import ServiceNowClient, ServiceNowPasswordGrantFlow

    # REQUESTS_CA_BUNDLE in the environment would override verify= (see the client-compat notes)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.ca_cert))
    flow = ServiceNowPasswordGrantFlow("itil", "itil", *OAUTH_CLIENT)
    client = ServiceNowClient(emulator.https_url, flow, verify=str(emulator.ca_cert))
    gr = client.GlideRecord("incident")
    gr.limit = 2
    gr.query()
    assert gr.get_row_count() >= 1
