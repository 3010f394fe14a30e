"""The credentials block: every auth mode against the emulator, OAuth refresh (before expiry and after a 401),
TLS trust, unreachable instances, instance names, and secrets that no repr, error or log shows."""

from __future__ import annotations

import logging
import pickle
import socket
import ssl
import time
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from client_support import (
    API_KEY,
    CLIENT_CREDENTIALS_PROPERTY,
    OAUTH_CLIENT_ID,
    OAUTH_CLIENT_SECRET,
    Instance,
    forward_proxy,
    tag,
)
from pydantic import ValidationError

from servicenow_blocks import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    InstanceUnavailableError,
    ServiceNowCredentials,
    ServiceNowError,
    TLSVerificationError,
)
from servicenow_blocks.credentials import normalize_instance

TOKEN_ROUTE = "POST /oauth_token.do"
INCIDENT_ROUTE = "GET /api/now/table/incident"


def _password_grant(sn: Instance) -> dict[str, Any]:
    r = httpx.post(
        f"{sn.url}/oauth_token.do",
        data={
            "grant_type": "password",
            "client_id": OAUTH_CLIENT_ID,
            "client_secret": OAUTH_CLIENT_SECRET,
            "username": "prefect.integration",
            "password": "snow-integration-pw",
        },
    )
    r.raise_for_status()
    return r.json()


def _created_by(credentials: ServiceNowCredentials) -> str:
    with credentials.get_client() as client:
        record = client.create("incident", {"short_description": "auth mode", "correlation_id": tag("auth")})
        assert client.get("incident", record["sys_id"])["sys_id"] == record["sys_id"]
        return record["sys_created_by"]


@pytest.mark.parametrize(
    ("auth", "user"),
    [
        ({"auth_type": "basic", "username": "itil", "password": "itil"}, "itil"),
        (
            {
                "auth_type": "oauth_password",
                "client_id": OAUTH_CLIENT_ID,
                "client_secret": OAUTH_CLIENT_SECRET,
                "username": "prefect.integration",
                "password": "snow-integration-pw",
            },
            "prefect.integration",
        ),
        ({"auth_type": "api_key", "api_key": API_KEY}, "prefect.integration"),
    ],
    ids=["basic", "oauth_password", "api_key"],
)
def test_auth_modes_act_as_their_user(sn: Instance, auth: dict, user: str) -> None:
    assert _created_by(sn.credentials(**auth)) == user


def test_bearer_token(sn: Instance) -> None:
    token = _password_grant(sn)["access_token"]
    assert _created_by(sn.credentials(auth_type="bearer", token=token)) == "prefect.integration"
    before = sn.counts()
    bad = sn.credentials(auth_type="bearer", token="not-a-token")
    with bad.get_client() as client, pytest.raises(AuthenticationError, match="User Not Authenticated") as caught:
        client.get_records("incident", limit=1)
    assert caught.value.status == 401
    assert sn.delta(before, INCIDENT_ROUTE) == 1  # a fixed token cannot be refreshed: no retry


def test_client_credentials_grant(sn: Instance) -> None:
    creds = sn.credentials(
        auth_type="oauth_client_credentials", client_id=OAUTH_CLIENT_ID, client_secret=OAUTH_CLIENT_SECRET
    )
    before = sn.counts()
    with creds.get_client() as client, pytest.raises(AuthenticationError) as caught:
        client.get_records("incident", limit=1)  # the grant is off by default
    message = str(caught.value)
    assert "client_credentials grant was refused" in message
    assert CLIENT_CREDENTIALS_PROPERTY in message  # the hint names the property to turn on
    assert sn.delta(before, TOKEN_ROUTE) == 1
    assert sn.delta(before, INCIDENT_ROUTE) == 0
    with sn.properties(**{CLIENT_CREDENTIALS_PROPERTY: "true"}):
        assert _created_by(creds) == "prefect.integration"  # the OAuth entity's user


@pytest.mark.parametrize(
    "auth",
    [
        {"auth_type": "basic", "username": "admin", "password": "wrong"},
        {"auth_type": "api_key", "api_key": "wrong-key"},
        {
            "auth_type": "oauth_password",
            "client_id": OAUTH_CLIENT_ID,
            "client_secret": OAUTH_CLIENT_SECRET,
            "username": "prefect.integration",
            "password": "wrong",
        },
        {
            "auth_type": "oauth_password",
            "client_id": OAUTH_CLIENT_ID,
            "client_secret": "wrong",
            "username": "prefect.integration",
            "password": "snow-integration-pw",
        },
    ],
    ids=["basic", "api_key", "oauth_password", "oauth_client_secret"],
)
def test_wrong_credentials_give_one_authentication_error(sn: Instance, auth: dict) -> None:
    before = sn.counts()
    with sn.credentials(**auth).get_client() as client, pytest.raises(AuthenticationError) as caught:
        client.get_records("incident", limit=1)
    error = caught.value
    assert error.status == 401
    assert "Check" in str(error)  # says what to do
    # One request: the refused call, or for OAuth the refused token request (then no call). No retry storm.
    assert sn.delta(before, INCIDENT_ROUTE) + sn.delta(before, TOKEN_ROUTE) == 1


@pytest.fixture
def private_oauth(sn: Instance) -> Iterator[ServiceNowCredentials]:
    """OAuth password-grant credentials (user itil) through an OAuth client of this test only: no token of
    another test (shared process-wide, per client and user) is reused."""
    client_id, client_secret, entity_id = sn.create_oauth_client()
    yield sn.credentials(
        auth_type="oauth_password", client_id=client_id, client_secret=client_secret, username="itil", password="itil"
    )
    sn.delete("oauth_entity", entity_id)


def _token_grants(client: Any) -> list[str]:
    grants: list[str] = []

    def record(request: httpx.Request) -> None:
        if request.url.path == "/oauth_token.do":
            grants.append(parse_qs(request.content.decode())["grant_type"][0])

    async def arecord(request: httpx.Request) -> None:
        record(request)

    client._http.event_hooks["request"].append(arecord if isinstance(client._http, httpx.AsyncClient) else record)
    return grants


def test_oauth_token_is_refreshed_before_it_expires(sn: Instance) -> None:
    # A private OAuth client whose access tokens live 3 s (the seeded client's tokens may already be out).
    client_id, secret, entity_id = sn.create_oauth_client(access_token_lifespan="3")
    try:
        creds = sn.credentials(
            auth_type="oauth_password", client_id=client_id, client_secret=secret, username="itil", password="itil"
        )
        before = sn.counts()
        calls = 0
        with creds.get_client() as client:
            grants = _token_grants(client)
            started = time.monotonic()
            while time.monotonic() - started < 4.5:
                client.get_records("incident", limit=1)
                calls += 1
                time.sleep(0.2)
        # Every call went through on its first try: a token never expired under a request (no 401, no re-send).
        assert sn.delta(before, INCIDENT_ROUTE) == calls
        # Tokens of ~2 s were renewed ahead of expiry with the refresh token, not fetched for every call.
        assert grants[0] == "password"
        assert set(grants[1:]) == {"refresh_token"}
        assert 3 <= len(grants) <= 6, (grants, calls)
        assert calls > 2 * len(grants)
    finally:
        sn.delete("oauth_entity", entity_id)


def test_oauth_refreshes_once_after_a_401(sn: Instance, private_oauth: ServiceNowCredentials) -> None:
    with private_oauth.get_client() as client:
        grants = _token_grants(client)
        client.get_records("incident", limit=1)
        auth = client._core.auth
        auth._access = "revoked-by-the-instance"  # the instance forgot the token (e.g. revoked or restarted)
        before = sn.counts()
        assert len(client.get_records("incident", limit=1)) == 1
        assert sn.delta(before, INCIDENT_ROUTE) == 2  # the 401, then the same request with a new token
        assert grants == ["password", "refresh_token"]
        # A refresh token that no longer works falls back to the password grant.
        auth._access, auth._refresh = "revoked", "revoked-refresh"
        assert len(client.get_records("incident", limit=1)) == 1
        assert grants == ["password", "refresh_token", "refresh_token", "password"]


async def test_one_token_is_shared_by_concurrent_requests_and_by_clients(
    sn: Instance, private_oauth: ServiceNowCredentials
) -> None:
    import asyncio

    before = sn.counts()
    async with private_oauth.get_async_client() as client:
        grants = _token_grants(client)
        results = await asyncio.gather(*(client.get_records("incident", limit=1) for _ in range(6)))
    assert all(len(r) == 1 for r in results)
    assert grants == ["password"]  # one token request however many requests waited for it
    # Later clients of the same credentials (a flow's tasks each build one) reuse the token.
    for _ in range(3):
        with sn.credentials(**private_oauth.model_dump()).get_client() as again:
            assert len(again.get_records("incident", limit=1)) == 1
    assert sn.delta(before, TOKEN_ROUTE) == 1


@pytest.mark.parametrize("grant", ["oauth_password", "oauth_client_credentials"])
async def test_a_hibernating_instance_answering_the_token_request_is_unavailable_not_refused(
    sn: Instance, grant: str
) -> None:
    """/oauth_token.do answers the hibernation page (HTML): the same InstanceUnavailableError as the Table API."""
    creds = sn.credentials(
        auth_type=grant,
        client_id=tag("oauth"),  # an OAuth client of this test only: a token request is certain
        client_secret="any",
        username="itil",
        password="itil",
    )
    for face in ("sync", "async"):
        before = sn.counts()
        with sn.faults(hibernate=True), pytest.raises(InstanceUnavailableError) as caught:
            if face == "sync":
                with creds.get_client() as client:
                    client.get_records("incident", limit=1)
            else:
                async with creds.get_async_client() as aclient:
                    await aclient.get_records("incident", limit=1)
        message = str(caught.value)
        assert "HTML page" in message and "Wake the instance" in message, message
        assert "grant was refused" not in message
        assert caught.value.path == "/oauth_token.do"
        assert sn.delta(before, TOKEN_ROUTE) == 1  # not retried
        assert sn.delta(before, INCIDENT_ROUTE) == 0


# --- TLS, reachability -----------------------------------------------------------------------------------
def test_tls_with_the_instance_ca(sn: Instance) -> None:
    live = sn.live
    ok = sn.credentials(instance=live.https_url, ca_bundle=str(live.ca_cert))
    with ok.get_client() as client:
        assert len(client.get_records("incident", limit=1)) == 1
    with sn.credentials(instance=live.https_url, verify=False).get_client() as client:
        assert len(client.get_records("incident", limit=1)) == 1


@pytest.mark.parametrize("ca_bundle", [None, "/etc/ssl/certs/ca-certificates.crt"], ids=["system", "other-ca"])
def test_untrusted_certificate_gives_one_tls_error(sn: Instance, ca_bundle: str | None) -> None:
    from pathlib import Path

    if ca_bundle and not Path(ca_bundle).is_file():
        pytest.skip("no system CA bundle here")
    before = sn.counts()
    creds = sn.credentials(instance=sn.live.https_url, ca_bundle=ca_bundle)
    with creds.get_client() as client, pytest.raises(TLSVerificationError) as caught:
        client.get_records("incident", limit=1)
    assert "certificate verification failed" in str(caught.value)
    assert "ca_bundle" in str(caught.value)  # the hint says which field fixes it
    assert sn.delta(before, INCIDENT_ROUTE) == 0  # never reached the application; not retried


def test_missing_ca_bundle_is_a_configuration_error(sn: Instance, tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match="is not a readable file"):
        sn.credentials(instance=sn.live.https_url, ca_bundle=str(tmp_path / "nope.pem")).get_client()


def test_a_ca_bundle_that_holds_no_certificate_is_a_configuration_error(sn: Instance, tmp_path: Any) -> None:
    bad = tmp_path / "not-a-ca.pem"
    bad.write_text("this is not a certificate\n")
    with pytest.raises(ConfigurationError) as caught:
        sn.credentials(instance=sn.live.https_url, ca_bundle=str(bad)).get_client()
    assert "ca_bundle" in str(caught.value) and "could not be loaded" in str(caught.value)
    assert "Point ca_bundle at the PEM file" in str(caught.value)


def test_the_ca_bundle_becomes_an_ssl_context_without_deprecation_warnings(sn: Instance) -> None:
    """httpx 0.28 deprecates verify=<path>: the block hands it an SSLContext that trusts the bundle."""
    creds = sn.credentials(instance=sn.live.https_url, ca_bundle=str(sn.live.ca_cert))
    assert isinstance(creds._http_options()["verify"], ssl.SSLContext)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with creds.get_client() as client:
            assert len(client.get_records("incident", limit=1)) == 1
    assert (
        sn.credentials(instance=sn.live.https_url, ca_bundle=str(sn.live.ca_cert), verify=False)._http_options()[
            "verify"
        ]
        is False
    )


def test_unreachable_instance_gives_one_error_after_a_bounded_logged_retry(
    sn: Instance, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    creds = sn.credentials(instance=f"http://127.0.0.1:{port}", max_attempts=3, max_retry_wait=5)
    started = time.monotonic()
    with (
        caplog.at_level(logging.WARNING, "servicenow_blocks"),
        creds.get_client() as client,
        pytest.raises(ConnectionFailedError) as caught,
    ):
        client.get("incident", "0" * 32)
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert "could not connect" in message and "gave up after 3 attempts" in message
    assert "Check the instance URL" in message
    assert elapsed < 3.0  # backoff 0.5 s then 1 s at most (full jitter)
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 2 and "giving up after 3 attempts" in caplog.records[-1].getMessage()


# --- the block itself ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("acme", "https://acme.service-now.com"),
        ("acme.service-now.com", "https://acme.service-now.com"),
        ("https://acme.service-now.com", "https://acme.service-now.com"),
        ("https://acme.service-now.com/", "https://acme.service-now.com"),
        ("https://acme.service-now.com/api/now/table/incident", "https://acme.service-now.com"),
        ("https://acme.service-now.com/nav_to.do?uri=incident.do", "https://acme.service-now.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("  https://sn.example.com:8443/sub  ", "https://sn.example.com:8443/sub"),
    ],
)
def test_instance_forms(given: str, expected: str) -> None:
    assert normalize_instance(given) == expected
    assert ServiceNowCredentials(instance=given, username="u", password="p").base_url == expected


@pytest.mark.parametrize(
    ("kw", "missing"),
    [
        ({"username": "u"}, "password"),
        ({"auth_type": "oauth_password", "client_id": "c", "username": "u", "password": "p"}, "client_secret"),
        ({"auth_type": "oauth_client_credentials", "client_secret": "s"}, "client_id"),
        ({"auth_type": "api_key"}, "api_key"),
        ({"auth_type": "bearer", "token": ""}, "token"),
        ({"instance": "ftp://acme", "username": "u", "password": "p"}, "not a usable URL"),
        ({"instance": "", "username": "u", "password": "p"}, "instance is empty"),
    ],
)
def test_incomplete_blocks_name_the_missing_field(kw: dict, missing: str) -> None:
    kw.setdefault("instance", "acme")
    with pytest.raises(ValidationError, match=missing):
        ServiceNowCredentials(**kw)


def test_an_instance_url_with_a_password_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as caught:
        ServiceNowCredentials(instance="https://svc:pw-S3CRET-url@acme.service-now.com", username="u", password="p")
    message = str(caught.value)
    assert "instance" in message and "username and password fields" in message
    assert "pw-S3CRET-url" not in message and "pw-S3CRET-url" not in repr(caught.value.errors(include_input=False))
    with pytest.raises(ValidationError, match="must not carry a user name"):
        ServiceNowCredentials(instance="https://svc@acme.service-now.com", username="u", password="p")


def test_a_proxy_url_is_a_secret_and_must_be_a_proxy_url() -> None:
    creds = ServiceNowCredentials(
        instance="acme", username="u", password="p", proxy="http://egress:px-S3CRET-dump@proxy.corp:3128"
    )
    assert creds.proxy.get_secret_value() == "http://egress:px-S3CRET-dump@proxy.corp:3128"
    assert creds._http_options()["proxy"] == "http://egress:px-S3CRET-dump@proxy.corp:3128"
    for shown in (repr(creds), str(creds.model_dump()), creds.model_dump_json(), str(creds.model_dump(mode="json"))):
        assert "px-S3CRET-dump" not in shown
    assert ServiceNowCredentials(instance="acme", username="u", password="p", proxy="  ").proxy is None
    with pytest.raises(ValidationError) as caught:
        ServiceNowCredentials(instance="acme", username="u", password="p", proxy="proxy.corp:3128:px-S3CRET-dump")
    assert "proxy" in str(caught.value) and "px-S3CRET-dump" not in str(caught.value)


SECRETS = {
    "password": "pw-S3CRET-basic",
    "client_secret": "cs-S3CRET-oauth",
    "api_key": "ak-S3CRET-key",
    "token": "tk-S3CRET-bearer",
    "proxy_password": "px-S3CRET-proxy",
}


def _everything_shown(*objects: Any) -> str:
    shown = []
    for obj in objects:
        shown += [repr(obj), str(obj)]
        if isinstance(obj, BaseException):
            shown += [repr(vars(obj)), repr(obj.args), repr(pickle.loads(pickle.dumps(obj)).__dict__)]
    return "\n".join(shown)


def test_secrets_never_show(sn: Instance, caplog: pytest.LogCaptureFixture) -> None:
    fields = {k: v for k, v in SECRETS.items() if k != "proxy_password"}
    shown: list[str] = []
    caplog.set_level(logging.DEBUG)
    for auth_type in ("basic", "oauth_password", "api_key", "bearer"):
        creds = ServiceNowCredentials(
            instance=sn.url, auth_type=auth_type, username="admin", client_id=OAUTH_CLIENT_ID, **fields
        )
        shown.append(_everything_shown(creds, creds.model_dump(), creds.model_dump_json()))
        with creds.get_client() as client:
            shown.append(_everything_shown(client, client._core.settings, client._core.auth))
            with pytest.raises(ServiceNowError) as caught:
                client.get_records("incident", limit=1)  # every one of them is refused
            assert isinstance(caught.value, AuthenticationError)
            shown.append(_everything_shown(caught.value))
    proxied = ServiceNowCredentials(
        instance=sn.url,
        username="admin",
        password=SECRETS["password"],
        proxy=f"http://user:{SECRETS['proxy_password']}@127.0.0.1:9",
        max_attempts=1,
    )
    shown.append(_everything_shown(proxied, proxied.model_dump(), proxied.model_dump_json()))
    shown.append(_everything_shown(proxied.model_dump(mode="json")))  # the saved document: see test_client_flow
    with proxied.get_client() as client, pytest.raises(ConnectionFailedError) as caught:
        client.get_records("incident", limit=1)
    shown.append(_everything_shown(caught.value))
    shown.extend(record.getMessage() for record in caplog.records)
    text = "\n".join(shown)
    assert "User Not Authenticated" in text and "**********" in text  # the material is really there
    for name, secret in SECRETS.items():
        assert secret not in text, f"the {name} leaked"


def test_requests_go_through_the_configured_proxy(sn: Instance) -> None:
    with forward_proxy() as proxy:
        with sn.credentials(proxy=proxy.url).get_client() as client:
            assert len(client.get_records("incident", limit=1)) == 1
        assert proxy.seen and proxy.seen[0].startswith(f"GET {sn.url}/api/now/table/incident?")
