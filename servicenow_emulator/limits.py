"""Inbound REST rate limiting (reference §3): rules in ``sys_rate_limit_rules``, counted per user per hour.

Precedence: a rule for the single user beats role rules, which beat rules for all users; among several
matching role rules the lowest limit applies. Unlike a real node, which commits counts every 30 s, counts
bite immediately. ``emulator.rate_limit.window_seconds`` shortens the hour for tests.

A rule's ``resource`` is ``*``, an API family (``table``), or a path, optionally after a method as the
platform names REST resources (``GET /now/v2/table/incident``; ``/api/now/table/incident`` works too). A
method prefix restricts the rule to that method, like ``http_method``. Paths match whole segments
(``incident`` is not ``incident_task``; a record's path is under its table's), and a path without a version
is the API's latest version (reference §1.1: "Without a version the latest is used"): v2 for the Table API,
v1 for the others. So a ``/now/v2/table/incident`` rule counts ``/api/now/table/incident`` too, and a
``/now/v1/...`` rule counts only v1 requests (UNCONFIRMED: the reference does not say how the platform
resolves versions for rate limits).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from .errors import PlatformError
from .platform import Session
from .settings import Settings
from .store import Store

API_NAMES = {
    "table": "Table API",
    "attachment": "Attachment API",
    "stats": "Aggregate API",
    "batch": "Batch API",
    "cmdb": "CMDB Instance API",
    "identifyreconcile": "Identification and Reconciliation API",
    "import": "Import Set API",
}


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
# The version an unversioned /api/now/<api>/... path means (the latest); APIs not listed have only v1.
LATEST_VERSIONS = {"table": "v2"}


def resource_key(path: str) -> tuple[str, ...]:
    """``/api/now[/vN]/<api>/...`` (or ``/now/...``, as rules name resources) as path segments with the
    version made explicit: ``/api/now/table/incident`` -> ``("now", "v2", "table", "incident")``."""
    parts = [p for p in path.split("/") if p]
    if parts and parts[0] == "api":
        parts = parts[1:]
    if len(parts) < 2 or parts[0] != "now":
        return tuple(parts)
    rest = parts[1:]
    if rest[0] in ("v1", "v2"):
        return ("now", *rest)
    return ("now", LATEST_VERSIONS.get(rest[0], "v1"), *rest)


@dataclass(frozen=True)
class RateRule:
    sys_id: str
    resource: str
    method: str
    type: str
    user: str
    role: str
    rate: int

    @property
    def _target(self) -> tuple[str | None, str]:
        """(method named in the resource or None, the rest): ``GET /now/v2/table/incident``."""
        text = (self.resource or "*").strip()
        head, sep, rest = text.partition(" ")
        if sep and head.upper() in HTTP_METHODS:
            return head.upper(), rest.strip()
        return None, text

    def matches(self, family: str, path: str, method: str) -> bool:
        if self.method not in ("ALL", "", method):
            return False
        named_method, resource = self._target
        if named_method is not None and named_method != method:
            return False
        if resource in ("*", family):
            return True
        if "/" not in resource:
            return False
        wanted = resource_key(resource)
        return resource_key(path)[: len(wanted)] == wanted


def api_family(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    # /api/now[/v1]/table/...
    if len(parts) >= 3 and parts[0] == "api" and parts[1] == "now":
        rest = parts[2:]
        if rest and rest[0] in ("v1", "v2"):
            rest = rest[1:]
        return rest[0] if rest else ""
    return ""


class RateLimiter:
    def __init__(self, store: Store, settings: Settings):
        self.store = store
        self.settings = settings
        self._rules: list[RateRule] | None = None
        self._counts: dict[tuple[str, str, int], int] = {}

    def invalidate(self) -> None:
        self._rules = None

    def reset_counts(self) -> None:
        self._counts.clear()

    def rules(self) -> list[RateRule]:
        if self._rules is None:
            rows = self.store.execute(
                "SELECT sys_id, resource, http_method, type, user, role, rate, active FROM sys_rate_limit_rules"
            ).fetchall()
            self._rules = [
                RateRule(
                    r[0], r[1] or "*", (r[2] or "ALL").upper(), r[3] or "all", r[4] or "", r[5] or "", int(r[6] or 0)
                )
                for r in rows
                if r[7] != 0
            ]
        return self._rules

    def _role_names(self, sys_ids: set[str]) -> dict[str, str]:
        if not sys_ids:
            return {}
        marks = ", ".join("?" for _ in sys_ids)
        rows = self.store.execute(f"SELECT sys_id, name FROM sys_user_role WHERE sys_id IN ({marks})", list(sys_ids))
        return dict(rows.fetchall())

    def applicable(self, session: Session, path: str, method: str) -> RateRule | None:
        family = api_family(path)
        matching = [r for r in self.rules() if r.matches(family, path, method)]
        if not matching:
            return None
        user_rules = [r for r in matching if r.type == "user" and r.user == session.user_sys_id]
        if user_rules:
            return min(user_rules, key=lambda r: r.rate)
        role_names = self._role_names({r.role for r in matching if r.type == "role"})
        role_rules = [r for r in matching if r.type == "role" and role_names.get(r.role) in session.roles]
        if role_rules:
            return min(role_rules, key=lambda r: r.rate)
        all_rules = [r for r in matching if r.type == "all"]
        return min(all_rules, key=lambda r: r.rate) if all_rules else None

    def check(self, session: Session, path: str, method: str) -> dict[str, str]:
        """Count the request; return the X-RateLimit-* headers, or raise the 429."""
        rule = self.applicable(session, path, method)
        if rule is None:
            return {}
        window = max(1, int(self.settings.number("emulator.rate_limit.window_seconds", 3600)))
        now = time.time()
        window_index = int(now // window)
        reset = (window_index + 1) * window
        key = (rule.sys_id, session.user_sys_id, window_index)
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        headers = {
            "X-RateLimit-Limit": str(rule.rate),
            "X-RateLimit-Reset": str(int(reset)),
            "X-RateLimit-Rule": rule.sys_id,
        }
        if count > rule.rate:
            retry_after = max(1, math.ceil(reset - now))
            api = API_NAMES.get(api_family(path), "REST API")
            raise PlatformError(
                429,
                "Rate limit exceeded",
                f"Rate limit of {rule.rate} requests per hour for {api} exceeded",
                headers={**headers, "Retry-After": str(retry_after)},
            )
        return headers
