"""``POST /oauth_token.do``: password, refresh_token and client_credentials grants (reference §6).

Form-encoded only. Client credentials may come in the form or as HTTP Basic (how requests-oauthlib
sends them). Failures answer 401 ``{"error": "server_error", "error_description": "access_denied"}``.
"""

from __future__ import annotations

import base64

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..auth import verify_secret
from .common import emulator_of

ACCESS_DENIED = {"error_description": "access_denied", "error": "server_error"}


def _json(data: dict, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json;charset=UTF-8")


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
    authorization = request.headers.get("authorization", "")
    if (not client_id) and authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip()).decode()
            client_id, _, client_secret = decoded.partition(":")
        except (ValueError, UnicodeDecodeError):
            pass
    return client_id, client_secret


async def token(request: Request) -> Response:
    emulator = emulator_of(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return _json(
            {"error": "invalid_request", "error_description": "Content-Type must be application/x-www-form-urlencoded"},
            400,
        )
    form = {k: str(v) for k, v in (await request.form()).items()}
    client_id, client_secret = _client_credentials(request, form)
    entity = emulator.store.find("oauth_entity", {"client_id": client_id}, limit=1)
    if not entity or entity[0]["active"] == 0 or not verify_secret(client_secret, entity[0]["client_secret"]):
        return _json(ACCESS_DENIED, 401)
    entity_row = entity[0]
    access_life = int(entity_row["access_token_lifespan"] or 1800)
    refresh_life = int(entity_row["refresh_token_lifespan"] or 8640000)
    grant = form.get("grant_type", "")
    auth = emulator.auth
    auth.purge_expired()
    if grant == "password":
        session = auth.basic(form.get("username", ""), form.get("password", ""))
        if session is None:
            return _json(ACCESS_DENIED, 401)
        access = auth.current_access_token(session.user_sys_id, client_id) or auth.issue(
            session.user_sys_id, client_id, access_life, "access"
        )
        refresh = auth.issue(session.user_sys_id, client_id, refresh_life, "refresh")
        return _json(_token_body(access, access_life, refresh.value))
    if grant == "refresh_token":
        presented = auth.tokens.get(form.get("refresh_token", ""))
        if presented is None or presented.kind != "refresh" or presented.client_id != client_id:
            return _json(ACCESS_DENIED, 401)
        if auth.session_for_user(presented.user_sys_id) is None:
            return _json(ACCESS_DENIED, 401)
        access = auth.issue(presented.user_sys_id, client_id, access_life, "access")
        # The refresh grant returns an access token; the refresh token stays valid and is echoed back.
        return _json(_token_body(access, access_life, presented.value))
    if grant == "client_credentials":
        if not emulator.settings.flag("glide.oauth.inbound.client.credential.grant_type.enabled"):
            return _json(ACCESS_DENIED, 401)
        user = entity_row["user"]
        if not user or auth.session_for_user(user) is None:
            return _json(ACCESS_DENIED, 401)
        access = auth.current_access_token(user, client_id) or auth.issue(user, client_id, access_life, "access")
        return _json(_token_body(access, access_life, None))
    return _json({"error": "unsupported_grant_type", "error_description": f"grant_type {grant!r}"}, 400)


def _token_body(access, lifespan: int, refresh: str | None) -> dict:
    import time

    body = {
        "access_token": access.value,
        "refresh_token": refresh or "",
        "scope": "useraccount",
        "token_type": "Bearer",
        "expires_in": max(1, int(access.expires_at - time.time())) if access else lifespan,
    }
    if refresh is None:
        body.pop("refresh_token")
    return body


ROUTES = [("/oauth_token.do", token, ["POST"])]
