"""ServiceNow REST client: Table, Attachment, Aggregate, Batch, CMDB Instance and IRE APIs.

``ServiceNowClient`` (sync) and ``AsyncServiceNowClient`` (async) share every line of logic: each
operation is a program (see ``transport``) that the client's driver runs. What the programs do:

- **Paging** counts once, then pages with ``sysparm_no_count`` and ``sysparm_suppress_pagination_header``,
  optionally fetching several pages at once (a bounded window, so memory stays flat), or pages by keyset on
  sys_id. ``limit`` is exact; order is stable (``ORDERBYsys_id`` is added as the last sort key).
- **Retries** honour ``Retry-After`` (429, 503) and ``X-RateLimit-Reset`` (429), back off exponentially with
  jitter on 502/503/504 and transport errors, within an attempt and a time budget, and log each retry and
  the giving up. A non-idempotent write (POST, or a PATCH that appends journal entries) is re-sent only when
  it provably did not reach the instance (connect or write failure, 429, 503), or after looking the record
  up through a correlation query (an attachment: through its SHA-256), and looking again after a wait while
  it is not found (the instance may still be applying it); otherwise AmbiguousWriteError.
- **Errors** are typed (``servicenow_blocks.errors``) and say what to do.
- **Limits**: a request rate and a concurrency cap per instance, shared by every client in the process
  (sync and async alike); when live clients disagree, the strictest setting applies.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import ssl
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
import orjson

from .errors import (
    AmbiguousWriteError,
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    InstanceUnavailableError,
    RateLimitedError,
    RetryBudgetExceededError,
    ServiceNowError,
    TLSVerificationError,
    TransactionCancelledError,
    error_for_status,
)
from .query import Query, Raw
from .transport import (
    Acquire,
    AsyncDriver,
    Emit,
    Gate,
    InstanceLimits,
    Join,
    Program,
    Send,
    Sleep,
    Spawn,
    SyncDriver,
    limits_for,
)

log = logging.getLogger("servicenow_blocks")
T = TypeVar("T")

# A plain str is refused: its values were never checked, so a caller's input could inject ^OR / ^NQ terms.
QueryLike = Query | Raw | None
DisplayValue = bool | Literal["true", "false", "all"]
JOURNAL_FIELDS = frozenset({"work_notes", "comments"})
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# A gateway's 502/504 may come after the instance processed the request (429 and 503 mean it did not).
MAYBE_PROCESSED_STATUSES = frozenset({502, 504})
# Transport errors that prove the request never reached the instance complete: safe to send again.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteError, httpx.WriteTimeout)
QUOTA_MARKER = "Transaction cancelled: maximum execution time exceeded"


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts per request and the total time spent waiting between them."""

    max_attempts: int = 6
    max_wait_s: float = 120.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    # After a write whose answer was lost: look for its outcome at once, then again after each of these waits
    # (the instance may still be running the insert), and only then send it again.
    lookup_waits_s: tuple[float, ...] = (2.0,)

    def backoff(self, retry_number: int) -> float:
        """Exponential backoff with full jitter."""
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (retry_number - 1)))


@dataclass
class ClientSettings:
    """Everything a client needs besides HTTP plumbing; built by ServiceNowCredentials."""

    base_url: str
    auth: AuthStrategy
    page_size: int = 1000
    concurrency: int = 4
    max_concurrency: int = 8
    requests_per_second: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    logger: logging.Logger | logging.LoggerAdapter = log


@dataclass
class AttachmentResult:
    """An attachment on a record; ``uploaded`` is False when an identical file was already there."""

    metadata: dict[str, Any]
    uploaded: bool

    @property
    def sys_id(self) -> str:
        return self.metadata["sys_id"]


@dataclass
class BatchItem:
    """One request of a Batch API call."""

    method: str
    url: str
    body: Any = None
    id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class BatchResult:
    id: str
    status_code: int
    body: Any
    headers: dict[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


# --- authentication ---------------------------------------------------------------------------------
class AuthStrategy:
    """Supplies auth headers; may fetch or refresh tokens through the same request path."""

    def headers(self, core: _Core) -> Program[dict[str, str]]:
        return {}
        yield  # pragma: no cover - makes this a generator

    def refresh_after_401(self, core: _Core, rejected: Mapping[str, str]) -> Program[bool]:
        """Called once after a 401 (``rejected``: the headers sent): refresh credentials; True to retry."""
        return False
        yield  # pragma: no cover

    def describe(self) -> str:
        return type(self).__name__


class StaticHeaderAuth(AuthStrategy):
    def __init__(self, name: str, value: str, label: str):
        self._name = name
        self._value = value
        self._label = label

    def headers(self, core: _Core) -> Program[dict[str, str]]:
        return {self._name: self._value}
        yield  # pragma: no cover

    def describe(self) -> str:
        return self._label


def basic_auth(username: str, password: str) -> StaticHeaderAuth:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return StaticHeaderAuth("Authorization", f"Basic {token}", f"basic auth as {username}")


def api_key_auth(key: str) -> StaticHeaderAuth:
    return StaticHeaderAuth("x-sn-apikey", key, "an API key")


def bearer_auth(token: str) -> StaticHeaderAuth:
    return StaticHeaderAuth("Authorization", f"Bearer {token}", "a bearer token")


class OAuthAuth(AuthStrategy):
    """OAuth 2 against ``/oauth_token.do``: password (with refresh tokens) or client_credentials.

    Tokens are refreshed before they expire (``refresh_margin_s``) and once after a 401; one refresh runs
    at a time however many requests are waiting.
    """

    def __init__(
        self,
        grant: Literal["password", "client_credentials"],
        client_id: str,
        client_secret: str,
        username: str | None = None,
        password: str | None = None,
        refresh_margin_s: float = 60.0,
    ):
        self.grant = grant
        self._client_id = client_id
        self._client_secret = client_secret
        self._username = username
        self._password = password
        self._access: str | None = None
        self._refresh: str | None = None
        self._renew_at = 0.0
        self._margin = refresh_margin_s
        self._gate = Gate(1)
        self.token_requests = 0

    def describe(self) -> str:
        return f"OAuth {self.grant} grant (client {self._client_id})"

    def _fresh(self) -> bool:
        return self._access is not None and time.time() < self._renew_at

    def headers(self, core: _Core) -> Program[dict[str, str]]:
        if not self._fresh():
            yield from self._renew(core, rejected=None)
        return {"Authorization": f"Bearer {self._access}"}

    def refresh_after_401(self, core: _Core, rejected: Mapping[str, str]) -> Program[bool]:
        yield from self._renew(core, rejected=rejected.get("Authorization", ""))
        return True

    def _renew(self, core: _Core, *, rejected: str | None) -> Program[None]:
        """Get a token, unless one that is fresh (and not the ``rejected`` one) arrived while waiting."""
        yield Acquire(self._gate)
        try:
            if self._fresh() and (rejected is None or rejected != f"Bearer {self._access}"):
                return  # another request refreshed while this one waited
            if self.grant == "password" and self._refresh:
                try:
                    yield from self._token_request(
                        core, {"grant_type": "refresh_token", "refresh_token": self._refresh}
                    )
                    return
                except AuthenticationError:
                    self._refresh = None  # the refresh token expired or was revoked: log in again
            if self.grant == "password":
                form = {"grant_type": "password", "username": self._username or "", "password": self._password or ""}
            else:
                form = {"grant_type": "client_credentials"}
            yield from self._token_request(core, form)
        finally:
            self._gate.release()

    def _token_request(self, core: _Core, form: dict[str, str]) -> Program[None]:
        self.token_requests += 1
        body = {**form, "client_id": self._client_id, "client_secret": self._client_secret}
        response = yield from core.send(
            "POST", "/oauth_token.do", data=body, authenticated=False, idempotent=True, what="OAuth token request"
        )
        if response.status_code >= 500 or "html" in response.headers.get("content-type", ""):
            # A hibernating instance's HTML page, a gateway's error page: not a refused grant.
            decode(response, "POST", "/oauth_token.do")
        data = _json_or_none(response)
        if response.status_code != 200 or not isinstance(data, dict) or "access_token" not in data:
            reason = data.get("error_description") or data.get("error") if isinstance(data, dict) else None
            raise AuthenticationError(
                f"OAuth {form['grant_type']} grant was refused ({reason or 'no token in the answer'})",
                status=response.status_code,
                method="POST",
                path="/oauth_token.do",
                hint=(
                    "Check client_id and client_secret, the user's password, and for client_credentials that "
                    "glide.oauth.inbound.client.credential.grant_type.enabled is true on the instance"
                ),
            )
        lifetime = float(data.get("expires_in") or 1800)
        self._access = data["access_token"]
        self._refresh = data.get("refresh_token") or self._refresh
        # Renew refresh_margin_s before expiry, or at three quarters of a short lifetime.
        self._renew_at = time.time() + lifetime - min(self._margin, lifetime / 4)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


# --- the shared core ----------------------------------------------------------------------------------
def _bool(value: DisplayValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def check_query(query: Any, parameter: str = "query") -> QueryLike:
    """``query`` if it is a Query, a ``raw(...)`` or None; a TypeError naming ``parameter`` otherwise.

    A plain str is refused: ``f"number={user_input}"`` would let the input add ``^NQ`` or ``^OR`` terms.
    """
    if query is None or isinstance(query, Query | Raw):
        return query
    if isinstance(query, str):
        shown = query if len(query) <= 60 else query[:57] + "..."
        raise TypeError(
            f"{parameter} must be a Query or raw(...), not a plain str ({shown!r}): build it with "
            f'servicenow_blocks.Query() (e.g. Query().eq("number", value)) so that values are checked, or wrap '
            f'an encoded query you wrote yourself in servicenow_blocks.raw("...")'
        )
    raise TypeError(
        f"{parameter} must be a Query, raw(...) or None, not {type(query).__name__}: build it with "
        "servicenow_blocks.Query()"
    )


def _encoded(query: QueryLike, parameter: str = "query") -> str:
    query = check_query(query, parameter)
    if query is None:
        return ""
    return query.encoded


def stable_query(query: QueryLike) -> tuple[str, bool]:
    """The encoded query with ORDERBYsys_id as the last sort key; and whether keyset paging is possible."""
    query = check_query(query)
    q = query if isinstance(query, Query) else Query.from_raw(query) if query is not None else Query()
    orders = q.order_fields()
    if not any(name == "sys_id" for name, _ in orders):
        q = q.order_by("sys_id")
    keyset_ok = (not orders or orders == [("sys_id", False)]) and "^NQ" not in q.encoded
    return q.encoded, keyset_ok


def _plain(value: Any) -> Any:
    """A field's value as stored: ``{"display_value": ..., "value": ...}`` (display_value="all") -> value."""
    return value.get("value") if isinstance(value, dict) else value


def _path(*segments: str) -> str:
    return "/" + "/".join(quote(s, safe="") for s in segments)


class _Core:
    """The request path and every operation, as programs; the faces below only drive them."""

    def __init__(self, settings: ClientSettings):
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.auth = settings.auth
        self.log = settings.logger
        self.limits: InstanceLimits = limits_for(self.base_url, settings.max_concurrency, settings.requests_per_second)
        claim = self.limits.claim(settings.max_concurrency, settings.requests_per_second)
        # Let go of the claim on close(), or when the client is dropped without closing.
        self.release_limits = weakref.finalize(self, self.limits.release_claim, claim)
        self.requests_sent = 0

    # --- the one request path ----------------------------------------------------------------------
    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        authenticated: bool = True,
        what: str | None = None,
    ) -> Program[httpx.Response]:
        """Send with auth, limits and retries; return the final response (error answers are not raised here).

        A non-idempotent request whose outcome is unknown (the connection broke after it was sent, or a
        gateway answered 502/504) raises AmbiguousWriteError instead of being sent again. A response whose
        request may already have been applied by an earlier attempt carries ``extensions["maybe_applied"]``.
        """
        policy = self.settings.retry
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS") or (
                method == "PATCH" and not (isinstance(json, dict) and JOURNAL_FIELDS & set(json))
            )
        label = what or f"{method} {path}"
        options: dict[str, Any] = {
            "params": {k: v for k, v in (params or {}).items() if v is not None},
            "json": json,
            "content": content,
            "data": data,
        }
        started = time.monotonic()
        waited = 0.0
        attempt = 0
        refreshed = False
        maybe_applied = False
        while True:
            attempt += 1
            request_headers = {"Accept": "application/json", **(headers or {})}
            if authenticated:
                request_headers.update((yield from self.auth.headers(self)))
            delay = self.limits.rate.reserve()
            if delay > 0:
                yield Sleep(delay)
            yield Acquire(self.limits.gate)
            try:
                self.requests_sent += 1
                response: httpx.Response = yield Send(
                    method, self.base_url + path, {**options, "headers": request_headers}
                )
                failure: Exception | None = None
            except httpx.TransportError as exc:
                response, failure = None, exc  # type: ignore[assignment]
            finally:
                self.limits.gate.release()

            if failure is not None:
                error = _transport_error(failure, method, path)
                if isinstance(error, TLSVerificationError):
                    raise error
                if not isinstance(failure, NOT_SENT_ERRORS):
                    if not idempotent:
                        raise AmbiguousWriteError(
                            f"{label}: the connection failed after the request was sent ({type(failure).__name__}); "
                            "it may or may not have been applied",
                            method=method,
                            path=path,
                        ) from failure
                    maybe_applied = True
                wait = policy.backoff(attempt)
                reason = type(failure).__name__
                retry_error: ServiceNowError = error
            else:
                status = response.status_code
                if status == 401 and authenticated and not refreshed:
                    refreshed = True
                    if (yield from self.auth.refresh_after_401(self, request_headers)):
                        attempt -= 1
                        continue
                if status not in RETRYABLE_STATUSES:
                    if maybe_applied:
                        response.extensions["maybe_applied"] = True
                    return response
                if status in MAYBE_PROCESSED_STATUSES:
                    if not idempotent:
                        raise AmbiguousWriteError(
                            f"{label}: HTTP {status} from a gateway; the request may or may not have been applied",
                            status=status,
                            method=method,
                            path=path,
                            transaction_id=response.headers.get("x-transaction-id"),
                        )
                    maybe_applied = True
                wait = _server_wait(response) if status in (429, 503) else None
                if wait is None:
                    wait = policy.backoff(attempt)
                reason = f"HTTP {status}"
                retry_error = _error_from_response(response, method, path)
                if status == 429 and wait > policy.max_wait_s - waited:
                    raise RateLimitedError(
                        f"{label}: rate limited; the instance asks to wait {wait:.0f} s, more than the "
                        f"{policy.max_wait_s - waited:.0f} s left in the retry budget",
                        retry_after=wait,
                        status=429,
                        method=method,
                        path=path,
                        transaction_id=response.headers.get("x-transaction-id"),
                    )
            if attempt >= policy.max_attempts or waited + wait > policy.max_wait_s:
                elapsed = time.monotonic() - started
                self.log.warning("%s: giving up after %d attempts in %.1f s (%s)", label, attempt, elapsed, reason)
                retry_error.extend(f" (gave up after {attempt} attempts in {elapsed:.1f} s)")
                raise retry_error
            waited += wait
            self.log.warning(
                "%s: %s; retrying in %.2f s (attempt %d of %d, %.0f s of retry budget left)",
                label,
                reason,
                wait,
                attempt + 1,
                policy.max_attempts,
                policy.max_wait_s - waited,
            )
            yield Sleep(wait)

    def call(self, method: str, path: str, **kw: Any) -> Program[Any]:
        """Send and decode: the parsed JSON body, or a typed error."""
        response = yield from self.send(method, path, **kw)
        return decode(response, method, path)

    # --- Table API ---------------------------------------------------------------------------------
    def _read_params(
        self, fields: Iterable[str] | None, display_value: DisplayValue, exclude_reference_link: bool
    ) -> dict[str, str]:
        params = {
            "sysparm_display_value": _bool(display_value),
            "sysparm_exclude_reference_link": _bool(exclude_reference_link),
        }
        if fields:
            params["sysparm_fields"] = ",".join(fields)
        return params

    def get(
        self,
        table: str,
        sys_id: str,
        *,
        fields: Iterable[str] | None = None,
        display_value: DisplayValue = False,
        exclude_reference_link: bool = True,
    ) -> Program[dict[str, Any]]:
        data = yield from self.call(
            "GET",
            _path("api", "now", "table", table, sys_id),
            params=self._read_params(fields, display_value, exclude_reference_link),
        )
        return data["result"]

    def iter_records(
        self,
        table: str,
        query: QueryLike = None,
        *,
        fields: Iterable[str] | None = None,
        limit: int | None = None,
        page_size: int | None = None,
        concurrency: int | None = None,
        paging: Literal["offset", "keyset"] = "offset",
        display_value: DisplayValue = False,
        exclude_reference_link: bool = True,
        on_total: Callable[[int], None] | None = None,
    ) -> Program[int]:
        """Emit matching rows in order; return how many were emitted.

        The first page asks for the total (``X-Total-Count``); later pages send ``sysparm_no_count``, up to
        ``concurrency`` of them at once. ``paging="keyset"`` pages on ``sys_id>last`` instead of offsets
        (one page at a time; ``sys_id`` is added to ``fields``); it needs the default order.
        """
        if limit is not None and limit < 0:
            raise ConfigurationError("limit must not be negative", hint="Pass limit=None for every row")
        page_size = page_size or self.settings.page_size
        if page_size < 1:
            raise ConfigurationError(
                "page_size must be at least 1", hint="Pass page_size=None for the credentials block's page_size"
            )
        concurrency = max(1, concurrency or self.settings.concurrency)
        fields = list(fields) if fields else None
        encoded, keyset_ok = stable_query(query)
        if paging == "keyset" and not keyset_ok:
            raise ConfigurationError(
                "keyset paging needs the rows ordered by sys_id only",
                hint='Drop the ORDERBY terms (and ^NQ blocks) from the query, or use paging="offset"',
            )
        path = _path("api", "now", "table", table)
        if paging == "keyset" and fields and "sys_id" not in fields:
            fields.append("sys_id")
        base = self._read_params(fields, display_value, exclude_reference_link)
        if limit == 0:
            return 0
        single_page = limit is not None and limit <= page_size
        first_size = min(page_size, limit) if limit is not None else page_size
        params = {
            **base,
            "sysparm_query": encoded,
            "sysparm_limit": str(first_size),
            "sysparm_offset": "0",
            "sysparm_suppress_pagination_header": "true",
        }
        if single_page:
            params["sysparm_no_count"] = "true"  # one page answers it all: no COUNT needed
        response = yield from self.send("GET", path, params=params)
        rows = decode(response, "GET", path)["result"]
        header = response.headers.get("x-total-count")
        total = int(header) if header is not None else None
        wanted = total if limit is None else (limit if total is None else min(limit, total))
        if total is not None and on_total:
            on_total(wanted if wanted is not None else total)
        rows = rows[:wanted] if wanted is not None else rows
        emitted = len(rows)
        yield Emit(rows)
        if total is None:  # no count asked for, or none sent: a short page is the last one
            if len(rows) < first_size or (wanted is not None and emitted >= wanted):
                return emitted
        elif emitted >= wanted or not rows:
            return emitted
        elif len(rows) < first_size:
            page_size = len(rows)  # the instance caps rows per answer below what was asked: page at its size

        if paging == "keyset":
            conditions = encoded.removesuffix("ORDERBYsys_id").rstrip("^")
            last = _plain(rows[-1]["sys_id"])
            while wanted is None or emitted < wanted:
                size = page_size if wanted is None else min(page_size, wanted - emitted)
                after = f"sys_id>{last}^ORDERBYsys_id"
                page = yield from self._page(path, base, f"{conditions}^{after}" if conditions else after, size, 0)
                yield Emit(page)
                emitted += len(page)
                if not page or (wanted is None and len(page) < size):
                    break
                last = _plain(page[-1]["sys_id"])
            return emitted

        if total is None:
            # No total (the instance sent no X-Total-Count): page one at a time until a short page.
            offset = emitted
            while wanted is None or emitted < wanted:
                size = page_size if wanted is None else min(page_size, wanted - emitted)
                page = yield from self._page(path, base, encoded, size, offset)
                yield Emit(page)
                emitted += len(page)
                offset += len(page)
                if len(page) < size:
                    break
            return emitted

        # Known total: fetch the remaining pages through a bounded window of concurrent requests, in order.
        offsets = deque(range(emitted, wanted, page_size))
        window: deque[Any] = deque()
        while offsets or window:
            while offsets and len(window) < concurrency:
                offset = offsets.popleft()
                size = min(page_size, wanted - offset)
                window.append((yield Spawn(self._page(path, base, encoded, size, offset))))
            page = yield Join(window.popleft())
            yield Emit(page)
            emitted += len(page)
        return emitted

    def _page(self, path: str, base: dict[str, str], encoded: str, size: int, offset: int) -> Program[list[dict]]:
        params = {
            **base,
            "sysparm_query": encoded,
            "sysparm_limit": str(size),
            "sysparm_offset": str(offset),
            "sysparm_no_count": "true",
            "sysparm_suppress_pagination_header": "true",
        }
        data = yield from self.call("GET", path, params=params)
        return data["result"]

    def get_records(self, table: str, query: QueryLike = None, **kw: Any) -> Program[list[dict[str, Any]]]:
        """Every matching row as a list (``iter_records`` options apply)."""
        rows: list[dict[str, Any]] = []
        yield from _collect(self.iter_records(table, query, **kw), rows.extend)
        return rows

    def first(self, table: str, query: QueryLike = None, **kw: Any) -> Program[dict[str, Any] | None]:
        rows = yield from self.get_records(table, query, limit=1, **kw)
        return rows[0] if rows else None

    def create(
        self,
        table: str,
        values: Mapping[str, Any],
        *,
        fields: Iterable[str] | None = None,
        correlation: QueryLike = None,
        display_value: DisplayValue = False,
        exclude_reference_link: bool = True,
    ) -> Program[dict[str, Any]]:
        """POST a record.

        With ``correlation`` (a Query that finds this record, e.g. on correlation_id), a write whose answer
        was lost (the connection broke after sending, a read timeout, a gateway's 502/504) is looked up before
        it is sent again: at once and, while nothing is found, again after each of the retry policy's
        ``lookup_waits_s`` (the instance may still be running the insert); it is re-sent only when every
        look found nothing. Without ``correlation`` such a write raises AmbiguousWriteError.

        Residual risk: looking cannot prove a negative. An insert that the instance is still running after
        the last look (slower than the timeout plus the waits) is created twice. Where a duplicate is
        unacceptable, also make the correlation field unique on the instance.
        """
        check_query(correlation, "correlation")
        path = _path("api", "now", "table", table)
        params = self._read_params(fields, display_value, exclude_reference_link)
        try:
            data = yield from self.call("POST", path, params=params, json=dict(values), idempotent=False)
            return data["result"]
        except AmbiguousWriteError as error:
            if correlation is None:
                raise
            self.log.warning("%s; looking it up by correlation (%s) before sending again", error, _encoded(correlation))

        def look() -> Program[dict[str, Any] | None]:
            return (
                yield from self.first(
                    table,
                    correlation,
                    fields=fields,
                    display_value=display_value,
                    exclude_reference_link=exclude_reference_link,
                )
            )

        found = yield from self._look_before_resending(f"POST {path}", "record matching the correlation", look)
        if found is not None:
            return found
        data = yield from self.call("POST", path, params=params, json=dict(values), idempotent=False)
        return data["result"]

    def _look_before_resending(self, label: str, what: str, look: Callable[[], Program[T | None]]) -> Program[T | None]:
        """After a write whose answer was lost: look for its outcome; while absent, wait and look again.
        None when every look found nothing (the caller then sends the write again)."""
        waits = self.settings.retry.lookup_waits_s
        looks = len(waits) + 1
        for number in range(1, looks + 1):
            found = yield from look()
            if found is not None:
                self.log.warning(
                    "%s: the answer was lost, but look %d of %d found the %s: not sending again",
                    *(label, number, looks, what),
                )
                return found
            if number < looks:
                wait = waits[number - 1]
                self.log.warning(
                    "%s: look %d of %d found no %s; the instance may still be applying the write: "
                    "looking again in %.1f s",
                    *(label, number, looks, what, wait),
                )
                yield Sleep(wait)
        self.log.warning("%s: the answer was lost and %d looks found no %s; sending again", label, looks, what)
        return None

    def update(
        self,
        table: str,
        sys_id: str,
        values: Mapping[str, Any],
        *,
        fields: Iterable[str] | None = None,
        display_value: DisplayValue = False,
        exclude_reference_link: bool = True,
    ) -> Program[dict[str, Any]]:
        """PATCH a record. A PATCH that appends work_notes or comments is treated like a POST for retries."""
        data = yield from self.call(
            "PATCH",
            _path("api", "now", "table", table, sys_id),
            params=self._read_params(fields, display_value, exclude_reference_link),
            json=dict(values),
        )
        return data["result"]

    def delete(self, table: str, sys_id: str) -> Program[None]:
        yield from self._delete(_path("api", "now", "table", table, sys_id))

    def _delete(self, path: str) -> Program[None]:
        response = yield from self.send("DELETE", path)
        if response.status_code == 404 and response.extensions.get("maybe_applied"):
            return  # an earlier attempt deleted it and its answer was lost
        if response.status_code != 204:
            decode(response, "DELETE", path)

    # --- Aggregate API ------------------------------------------------------------------------------------
    def count(self, table: str, query: QueryLike = None) -> Program[int]:
        data = yield from self.call(
            "GET",
            _path("api", "now", "stats", table),
            params={"sysparm_query": _encoded(query), "sysparm_count": "true"},
        )
        return int(data["result"]["stats"]["count"])

    def group_by(
        self,
        table: str,
        group_by: Iterable[str],
        query: QueryLike = None,
        *,
        having: str | None = None,
        display_value: DisplayValue = False,
    ) -> Program[list[dict[str, Any]]]:
        """Counts per group: ``[{"count": 3, "assignment_group": "<value>"}, ...]``."""
        data = yield from self.call(
            "GET",
            _path("api", "now", "stats", table),
            params={
                "sysparm_query": _encoded(query),
                "sysparm_count": "true",
                "sysparm_group_by": ",".join(group_by),
                "sysparm_having": having,
                "sysparm_display_value": _bool(display_value),
            },
        )
        result = data["result"]
        groups = result if isinstance(result, list) else [result]
        out = []
        for group in groups:
            row: dict[str, Any] = {"count": int(group["stats"]["count"])}
            for item in group.get("groupby_fields", []):
                row[item["field"]] = item.get("display_value") or item["value"] if display_value else item["value"]
            out.append(row)
        return out

    # --- Attachment API ----------------------------------------------------------------------------------
    def list_attachments(self, table: str, sys_id: str, file_name: str | None = None) -> Program[list[dict[str, Any]]]:
        query = Query().eq("table_name", table).eq("table_sys_id", sys_id)
        if file_name is not None:
            query = query.eq("file_name", file_name)
        data = yield from self.call(
            "GET", "/api/now/attachment", params={"sysparm_query": query.order_by("sys_created_on").encoded}
        )
        return data["result"]

    def attach(
        self,
        table: str,
        sys_id: str,
        file_name: str,
        content: bytes,
        *,
        content_type: str = "application/octet-stream",
        skip_if_identical: bool = True,
    ) -> Program[AttachmentResult]:
        """Upload a file; skip it when the record already has the same name with the same SHA-256.

        An upload whose answer was lost is looked for by its SHA-256 (as ``create`` looks by correlation,
        with the same waits and the same residual risk) before it is sent again."""
        digest = hashlib.sha256(content).hexdigest()

        def same_file() -> Program[dict[str, Any] | None]:
            existing = yield from self.list_attachments(table, sys_id, file_name)
            return next((item for item in existing if item.get("hash") == digest), None)

        if skip_if_identical:
            found = yield from same_file()
            if found is not None:
                return AttachmentResult(found, uploaded=False)
        upload: dict[str, Any] = {
            "params": {"table_name": table, "table_sys_id": sys_id, "file_name": file_name},
            "content": content,
            "headers": {"Content-Type": content_type},
            "idempotent": False,
        }
        try:
            data = yield from self.call("POST", "/api/now/attachment/file", **upload)
        except AmbiguousWriteError as error:
            # The content hash is a correlation key: look before uploading again.
            self.log.warning("%s; looking for the file on the record before sending it again", error)
            found = yield from self._look_before_resending(
                "POST /api/now/attachment/file", "file with the same name and SHA-256", same_file
            )
            if found is not None:
                return AttachmentResult(found, uploaded=True)
            data = yield from self.call("POST", "/api/now/attachment/file", **upload)
        return AttachmentResult(data["result"], uploaded=True)

    def download_attachment(self, attachment_sys_id: str) -> Program[bytes]:
        path = _path("api", "now", "attachment", attachment_sys_id, "file")
        response = yield from self.send("GET", path, headers={"Accept": "*/*"})
        if response.status_code >= 400:
            decode(response, "GET", path)
        return response.content

    def delete_attachment(self, attachment_sys_id: str) -> Program[None]:
        yield from self._delete(_path("api", "now", "attachment", attachment_sys_id))

    # --- Batch API -----------------------------------------------------------------------------------------
    def batch(self, items: list[BatchItem], *, resubmit: int = 2) -> Program[list[BatchResult]]:
        """Run requests in one Batch API call; unserviced items are re-submitted up to ``resubmit`` times."""
        pending = {item.id or str(index): item for index, item in enumerate(items)}
        results: dict[str, BatchResult] = {}
        for _ in range(resubmit + 1):
            if not pending:
                break
            rest_requests = []
            for item_id, item in pending.items():
                entry: dict[str, Any] = {
                    "id": item_id,
                    "method": item.method.upper(),
                    "url": item.url,
                    "headers": [
                        {"name": k, "value": v}
                        for k, v in {
                            "Content-Type": "application/json",
                            "Accept": "application/json",
                            **item.headers,
                        }.items()
                    ],
                    "exclude_response_headers": False,
                }
                if item.body is not None:
                    entry["body"] = base64.b64encode(orjson.dumps(item.body)).decode()
                rest_requests.append(entry)
            data = yield from self.call(
                "POST",
                "/api/now/v1/batch",
                json={"batch_request_id": str(int(time.time() * 1000)), "rest_requests": rest_requests},
                idempotent=all(i.method.upper() in ("GET", "DELETE", "PUT") for i in pending.values()),
            )
            for served in data.get("serviced_requests", []):
                raw = base64.b64decode(served.get("body") or b"")
                try:
                    body = orjson.loads(raw) if raw else None
                except orjson.JSONDecodeError:
                    body = raw
                headers = {h["name"]: h["value"] for h in served.get("headers", [])}
                results[served["id"]] = BatchResult(served["id"], int(served["status_code"]), body, headers)
                pending.pop(served["id"], None)
            unserviced = set(data.get("unserviced_requests", []))
            pending = {k: v for k, v in pending.items() if k in unserviced}
        if pending:
            raise RetryBudgetExceededError(
                f"Batch API left {len(pending)} requests unserviced after {resubmit + 1} submissions",
                hint="Send fewer or smaller requests per batch",
            )
        return [results[item.id or str(index)] for index, item in enumerate(items)]

    # --- CMDB ----------------------------------------------------------------------------------------------
    def cmdb_instance(self, class_name: str, sys_id: str) -> Program[dict[str, Any]]:
        data = yield from self.call("GET", _path("api", "now", "cmdb", "instance", class_name, sys_id))
        return data["result"]

    def identify_reconcile(
        self,
        items: list[dict[str, Any]],
        *,
        relations: list[dict[str, Any]] | None = None,
        data_source: str = "ServiceNow",
        dry_run: bool = False,
    ) -> Program[dict[str, Any]]:
        """Create or update CIs through the Identification and Reconciliation engine."""
        path = "/api/now/identifyreconcile/query" if dry_run else "/api/now/identifyreconcile"
        data = yield from self.call(
            "POST",
            path,
            params={"sysparm_data_source": data_source},
            json={"items": items, "relations": relations or []},
            idempotent=True,  # identification makes a repeat an update, not a duplicate
        )
        return data["result"]

    def request_json(self, method: str, path: str, **kw: Any) -> Program[Any]:
        """Any other REST API path, through the same retries and errors."""
        return (yield from self.call(method.upper(), path, **kw))


def _collect(program: Program[T], sink: Callable[[list[dict[str, Any]]], Any]) -> Program[T]:
    """Run a sub-program, handing its emitted rows to ``sink`` and every other effect (and its outcome,
    value or error) through to the driver."""
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                effect = program.throw(error) if error is not None else program.send(value)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            if isinstance(effect, Emit):
                sink(effect.rows)
                continue
            try:
                value = yield effect
            except Exception as exc:
                error = exc
    finally:
        program.close()


# --- decoding ------------------------------------------------------------------------------------------
def _server_wait(response: httpx.Response) -> float | None:
    retry_after = response.headers.get("retry-after")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(retry_after).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    reset = response.headers.get("x-ratelimit-reset")
    if reset:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            return None
    return None


def _error_from_response(response: httpx.Response, method: str, path: str) -> ServiceNowError:
    try:
        decode(response, method, path)
    except ServiceNowError as error:
        return error
    return ServiceNowError(
        f"unexpected HTTP {response.status_code}",
        status=response.status_code,
        method=method,
        path=path,
        transaction_id=response.headers.get("x-transaction-id"),
        hint="Retry later; if it persists, look the transaction up in the instance's system logs",
    )


def _transport_error(exc: Exception, method: str, path: str) -> ServiceNowError:
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return TLSVerificationError(f"TLS certificate verification failed: {text}", method=method, path=path)
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ConnectionFailedError(
            f"could not connect to the instance ({type(exc).__name__}: {text})", method=method, path=path
        )
    if isinstance(exc, httpx.TimeoutException):
        return ConnectionFailedError(
            f"the instance did not answer in time ({type(exc).__name__})",
            method=method,
            path=path,
            hint="Raise timeout on the credentials block, or ask for fewer rows per page (page_size) or fewer fields",
        )
    return ConnectionFailedError(f"connection failed ({type(exc).__name__}: {text})", method=method, path=path)


def decode(response: httpx.Response, method: str, path: str) -> Any:
    """The JSON body of a successful answer, or the typed error it means."""
    content_type = response.headers.get("content-type", "")
    transaction_id = response.headers.get("x-transaction-id")
    title = ""
    if "html" in content_type:
        text = response.text
        if "<title>" in text:
            title = text.split("<title>", 1)[1].split("</title>", 1)[0].strip()
        if response.status_code < 400 or "Hibernat" in text:
            raise InstanceUnavailableError(
                f"the instance answered with an HTML page ({title or 'no title'}) instead of JSON",
                status=response.status_code,
                method=method,
                path=path,
            )
    data = _json_or_none(response) if response.content else None
    if response.status_code >= 400:
        # A gateway's HTML error page: its title ("503 Service Unavailable") without the repeated status.
        message = title.removeprefix(str(response.status_code)).strip() or f"HTTP {response.status_code}"
        detail = None
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            message = data["error"].get("message") or message
            detail = data["error"].get("detail")
        raise error_for_status(
            response.status_code,
            message,
            detail,
            transaction_id=transaction_id,
            method=method,
            path=path,
            retry_after=_server_wait(response) if response.status_code == 429 else None,
        )
    if data is None:
        if QUOTA_MARKER in response.text:
            raise TransactionCancelledError(QUOTA_MARKER, status=response.status_code, method=method, path=path)
        raise ServiceNowError(
            "the instance answered with a body that is not JSON",
            status=response.status_code,
            method=method,
            path=path,
            transaction_id=transaction_id,
            hint=(
                "Check that instance is the instance's root URL (no path after it) and that no proxy or "
                "login page stands in between; if it persists, look the transaction up in the system logs"
            ),
        )
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        message = data["error"].get("message") or ""
        if QUOTA_MARKER in message:
            raise TransactionCancelledError(
                message, status=response.status_code, method=method, path=path, transaction_id=transaction_id
            )
    return data


# --- the two faces -----------------------------------------------------------------------------------
_OPERATIONS = (
    "get", "get_records", "first", "create", "update", "delete", "count", "group_by", "list_attachments",
    "attach", "download_attachment", "delete_attachment", "batch", "cmdb_instance", "identify_reconcile",
    "request_json",
)  # fmt: skip


class _Face:
    _core: _Core

    @property
    def base_url(self) -> str:
        return self._core.base_url

    @property
    def requests_sent(self) -> int:
        return self._core.requests_sent


class ServiceNowClient(_Face):
    """Synchronous client. Build it from ``ServiceNowCredentials.get_client()``; close it (or use ``with``)."""

    def __init__(self, settings: ClientSettings, http: httpx.Client):
        self._core = _Core(settings)
        self._http = http
        self._driver = SyncDriver(http, max_workers=32)  # threads start on demand; pages in flight are bounded

    def __enter__(self) -> ServiceNowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._core.release_limits()
        self._driver.close()
        self._http.close()

    def iter_records(self, table: str, query: QueryLike = None, **kw: Any) -> Iterator[dict[str, Any]]:
        """Stream matching rows in constant memory (see ``_Core.iter_records`` for the options)."""
        check_query(query)  # now, not at the first row
        return self._driver.iterate(self._core.iter_records(table, query, **kw))


class AsyncServiceNowClient(_Face):
    """Asynchronous client with the same operations as ``ServiceNowClient``, awaited."""

    def __init__(self, settings: ClientSettings, http: httpx.AsyncClient):
        self._core = _Core(settings)
        self._http = http
        self._driver = AsyncDriver(http)

    async def __aenter__(self) -> AsyncServiceNowClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._core.release_limits()
        await self._http.aclose()

    def aiter_records(self, table: str, query: QueryLike = None, **kw: Any) -> AsyncIterator[dict[str, Any]]:
        """Stream matching rows in constant memory (see ``_Core.iter_records`` for the options)."""
        check_query(query)  # now, not at the first row
        return self._driver.iterate(self._core.iter_records(table, query, **kw))


def _sync_operation(name: str) -> Callable[..., Any]:
    program_factory = getattr(_Core, name)

    def operation(self: ServiceNowClient, *args: Any, **kwargs: Any) -> Any:
        return self._driver.run(program_factory(self._core, *args, **kwargs))

    operation.__name__ = name
    operation.__doc__ = program_factory.__doc__
    return operation


def _async_operation(name: str) -> Callable[..., Any]:
    program_factory = getattr(_Core, name)

    async def operation(self: AsyncServiceNowClient, *args: Any, **kwargs: Any) -> Any:
        return await self._driver.run(program_factory(self._core, *args, **kwargs))

    operation.__name__ = name
    operation.__doc__ = program_factory.__doc__
    return operation


for _name in _OPERATIONS:
    setattr(ServiceNowClient, _name, _sync_operation(_name))
    setattr(AsyncServiceNowClient, _name, _async_operation(_name))
