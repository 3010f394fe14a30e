"""Typed errors for every way a ServiceNow call can fail. Each message says what to do about it.

Errors carry the HTTP status, ServiceNow's ``message`` and ``detail``, the transaction id
(``X-Transaction-ID``, which ServiceNow support asks for) and the method and path, never credentials.
"""

from __future__ import annotations

from typing import Any


class ServiceNowError(Exception):
    """Base class: a ServiceNow call failed."""

    hint = ""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        detail: str | None = None,
        transaction_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
        hint: str | None = None,
    ):
        self.message = message
        self.status = status
        self.detail = detail
        self.transaction_id = transaction_id
        self.method = method
        self.path = path
        if hint is not None:
            self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.method} {self.path}: " if self.method and self.path else ""
        status = f"HTTP {self.status} " if self.status else ""
        text = f"{where}{status}{self.message}"
        if self.detail and self.detail not in self.message:
            text += f" ({self.detail.strip()})"
        if self.transaction_id:
            text += f" [transaction {self.transaction_id}]"
        if self.hint:
            text += f". {self.hint}"
        return text

    def extend(self, text: str) -> None:
        """Add to the message (e.g. how many attempts were made before giving up)."""
        self.message += text
        self.args = (str(self),)

    def __reduce__(self) -> tuple[Any, ...]:
        # Prefect pickles task exceptions: keep the fields across processes.
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[ServiceNowError], message: str, state: dict[str, Any]) -> ServiceNowError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ConfigurationError(ServiceNowError, ValueError):
    """The credentials block or a call's arguments are invalid (named field, and the fix)."""


class ConnectionFailedError(ServiceNowError):
    """The instance could not be reached (DNS, refused connection, timeout, proxy)."""

    hint = "Check the instance URL, the network path (proxy / MID server) and that the instance is up"


class TLSVerificationError(ConnectionFailedError):
    """The instance's certificate was not trusted."""

    hint = "Set ca_bundle on the credentials block to the CA that signed the instance's certificate"


class AuthenticationError(ServiceNowError):
    """401: wrong or expired credentials."""

    hint = "Check the user name and password (or OAuth client, token or API key) on the credentials block"


class ForbiddenError(ServiceNowError):
    """403: the instance refused the operation."""

    hint = "The instance refused this operation for this user: check its roles, ACLs and business rules"


class ACLError(ForbiddenError):
    """403 ACL Exception: the user's roles do not allow this on this table."""

    hint = "Grant the integration user a role that may do this (e.g. itil for task tables) or use another user"


class DataPolicyError(ForbiddenError):
    """403 Data Policy Exception or a business-rule abort: mandatory fields missing, or a forbidden move."""

    hint = "Send the fields the message names in the same request (e.g. close_code and close_notes)"


class NotFoundError(ServiceNowError):
    """404: no such record, or an ACL hides it."""

    hint = "Check the sys_id and table; the record may also be hidden from this user by an ACL"


class InvalidTableError(ServiceNowError):
    """400 Invalid table."""

    hint = "Check the table name (e.g. change_request, incident, cmdb_ci_server)"


class BadRequestError(ServiceNowError):
    """400: the request was malformed or used an invalid parameter."""

    hint = "Check the API path, parameters and body: the message says what the instance could not accept"


class RateLimitedError(ServiceNowError):
    """429: a rate-limit rule stopped the request and the retry budget did not allow waiting."""

    hint = "Lower requests_per_second on the credentials block, or ask the instance admin to raise the rule"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any):
        self.retry_after = retry_after
        super().__init__(message, **kw)


class ServerError(ServiceNowError):
    """5xx after the retry budget was spent."""

    hint = "The instance is failing or overloaded; retry later, or check the instance's system logs"


class InstanceUnavailableError(ServiceNowError):
    """The instance answered with an HTML page (a hibernating developer instance, a maintenance page)."""

    hint = "Wake the instance (developer instances hibernate when idle) or check it in a browser"


class TransactionCancelledError(ServiceNowError):
    """The instance's transaction quota cancelled the request (maximum execution time exceeded)."""

    hint = "Ask for fewer rows per page (page_size) or fewer fields, or narrow the query"


class AmbiguousWriteError(ServiceNowError):
    """A non-idempotent write's outcome is unknown (the connection broke after the request was sent)."""

    hint = (
        "The record may or may not exist: look it up before writing again, or pass a correlation query "
        "so that the client can look before it re-sends"
    )


class RetryBudgetExceededError(ServiceNowError):
    """Retries stopped because the attempt or time budget ran out; ``last_error`` says why they were needed."""

    hint = (
        "Retry later; if it keeps happening, raise max_attempts or max_retry_wait on the credentials block, "
        "or ask for less per request"
    )

    def __init__(self, message: str, *, last_error: ServiceNowError | Exception | None = None, **kw: Any):
        self.last_error = last_error
        super().__init__(message, **kw)


def error_for_status(
    status: int,
    message: str,
    detail: str | None,
    *,
    transaction_id: str | None,
    method: str,
    path: str,
    retry_after: float | None = None,
) -> ServiceNowError:
    """Map a ServiceNow error answer to its typed error."""
    kw: dict[str, Any] = {
        "status": status,
        "detail": detail,
        "transaction_id": transaction_id,
        "method": method,
        "path": path,
    }
    text = f"{message} {detail or ''}"
    if status == 401:
        return AuthenticationError(message or "User Not Authenticated", **kw)
    if status == 403:
        if "Data Policy" in text or "mandatory" in text or "state transition" in text:
            return DataPolicyError(message, **kw)
        if "ACL" in text or "Insufficient rights" in text or "security constraints" in text:
            return ACLError(message, **kw)
        return ForbiddenError(message, **kw)
    if status == 404:
        return NotFoundError(message or "No Record found", **kw)
    if status == 400 and message.startswith("Invalid table"):
        return InvalidTableError(message, **kw)
    if status == 429:
        return RateLimitedError(message or "Rate limit exceeded", retry_after=retry_after, **kw)
    if status >= 500:
        return ServerError(message or "Server error", **kw)
    return BadRequestError(message or f"HTTP {status}", **kw)
