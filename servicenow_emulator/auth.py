"""Authentication: basic auth, OAuth bearer tokens, API keys (``x-sn-apikey``) and session cookies.

Passwords and tokens are kept as salted hashes; nothing secret is ever rendered by the Table API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from .errors import not_authenticated
from .platform import Session
from .store import Store

_HASH_PREFIX = "sha256$"


def hash_secret(secret: str, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(8)
    digest = hashlib.sha256((salt + secret).encode()).hexdigest()
    return f"{_HASH_PREFIX}{salt}${digest}"


def verify_secret(secret: str, stored: str | None) -> bool:
    if not stored:
        return False
    if not stored.startswith(_HASH_PREFIX):
        return hmac.compare_digest(secret.encode(), stored.encode())
    _, salt, digest = stored.split("$", 2)
    candidate = hashlib.sha256((salt + secret).encode()).hexdigest()
    return hmac.compare_digest(candidate, digest)


@dataclass
class Token:
    value: str
    user_sys_id: str
    client_id: str
    expires_at: float
    kind: str  # access | refresh


class Authenticator:
    """Resolves a request's credentials to a Session (cached until users or roles change)."""

    def __init__(self, store: Store, default_tz: callable):
        self.store = store
        self.default_tz = default_tz
        self._basic_cache: dict[str, Session] = {}
        self._session_by_user: dict[str, Session] = {}
        self.tokens: dict[str, Token] = {}
        self.cookies: dict[str, str] = {}

    def invalidate(self) -> None:
        self._basic_cache.clear()
        self._session_by_user.clear()

    # --- sessions --------------------------------------------------------------------------------
    def session_for_user(self, user_sys_id: str) -> Session | None:
        cached = self._session_by_user.get(user_sys_id)
        if cached:
            return cached
        row = self.store.execute(
            "SELECT sys_id, user_name, active, locked_out, time_zone, name FROM sys_user WHERE sys_id = ?",
            [user_sys_id],
        ).fetchone()
        if row is None or row[2] == 0 or row[3] == 1:
            return None
        roles = frozenset(
            r[0]
            for r in self.store.execute(
                "SELECT r.name FROM sys_user_has_role h JOIN sys_user_role r ON r.sys_id = h.role WHERE h.user = ?",
                [user_sys_id],
            ).fetchall()
        )
        groups = tuple(
            g[0] for g in self.store.execute('SELECT "group" FROM sys_user_grmember WHERE user = ?', [user_sys_id])
        )
        session = Session(row[0], row[1], roles, groups, row[4] or self.default_tz(), row[5] or row[1])
        self._session_by_user[user_sys_id] = session
        return session

    def basic(self, user_name: str, password: str) -> Session | None:
        row = self.store.execute(
            "SELECT sys_id, user_password FROM sys_user WHERE user_name = ?", [user_name]
        ).fetchone()
        if row is None or not verify_secret(password, row[1]):
            return None
        return self.session_for_user(row[0])

    def authenticate(self, headers: dict[str, str], query_apikey: str | None = None) -> Session:
        """headers: lower-cased names. Raises the documented 401 when nothing valid is presented."""
        authorization = headers.get("authorization", "")
        if authorization[:6].lower() == "basic ":
            cached = self._basic_cache.get(authorization)
            if cached:
                return cached
            try:
                decoded = base64.b64decode(authorization[6:].strip()).decode("utf-8")
                user_name, _, password = decoded.partition(":")
            except (ValueError, UnicodeDecodeError):
                raise not_authenticated() from None
            session = self.basic(user_name, password)
            if session is None:
                raise not_authenticated()
            self._basic_cache[authorization] = session
            return session
        if authorization[:7].lower() == "bearer ":
            token = self.tokens.get(authorization[7:].strip())
            if token is None or token.kind != "access" or token.expires_at < time.time():
                raise not_authenticated()
            session = self.session_for_user(token.user_sys_id)
            if session is None:
                raise not_authenticated()
            return session
        apikey = headers.get("x-sn-apikey") or query_apikey
        if apikey:
            session = self.api_key(apikey)
            if session is None:
                raise not_authenticated()
            return session
        cookie = headers.get("cookie", "")
        for part in cookie.split(";"):
            name, _, value = part.strip().partition("=")
            if name == "JSESSIONID" and value in self.cookies:
                session = self.session_for_user(self.cookies[value])
                if session:
                    return session
        raise not_authenticated()

    def api_key(self, presented: str) -> Session | None:
        for user, token, active, expires in self.store.execute(
            "SELECT user, token, active, expires FROM api_key"
        ).fetchall():
            if active == 0 or not verify_secret(presented, token):
                continue
            if expires and expires < time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()):
                continue
            return self.session_for_user(user)
        return None

    def remember_cookie(self, session: Session) -> str:
        cookie = secrets.token_hex(16).upper()
        self.cookies[cookie] = session.user_sys_id
        if len(self.cookies) > 10000:
            self.cookies.pop(next(iter(self.cookies)))
        return cookie

    # --- OAuth ---------------------------------------------------------------------------------
    def issue(self, user_sys_id: str, client_id: str, lifespan: int, kind: str) -> Token:
        token = Token(secrets.token_urlsafe(64), user_sys_id, client_id, time.time() + lifespan, kind)
        self.tokens[token.value] = token
        return token

    def current_access_token(self, user_sys_id: str, client_id: str) -> Token | None:
        """A request made while the current token is still valid returns the same token."""
        now = time.time()
        for token in self.tokens.values():
            if (
                token.kind == "access"
                and token.user_sys_id == user_sys_id
                and token.client_id == client_id
                and token.expires_at - now > 60
            ):
                return token
        return None

    def purge_expired(self) -> None:
        now = time.time()
        for value in [v for v, t in self.tokens.items() if t.expires_at < now]:
            del self.tokens[value]
