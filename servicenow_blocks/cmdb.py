"""CMDB helpers: relationship traversal over ``cmdb_rel_ci``, tier -> severity, owner -> assignment group.

Relationships are ``cmdb_rel_ci`` rows (parent, child, type -> ``cmdb_rel_type``); there is no
``cmdb_ci_appl_relationship`` table. Traversal is typed (relationship type names), bounded in depth,
safe against cycles, and fetches one level per request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .choices import BUSINESS_CRITICALITY_FIELD, BusinessCriticality
from .client import AsyncServiceNowClient
from .query import Query

CI_FIELDS = (
    "sys_id", "name", "sys_class_name", "ip_address", "fqdn", "host_name", "operational_status",
    "install_status", "environment", "support_group", "managed_by_group", "object_id",
)  # fmt: skip


@dataclass(frozen=True)
class RelatedCI:
    """A CI reached by traversal: its record, its depth, and the relationship type that led to it."""

    record: dict[str, Any]
    depth: int
    via: str

    @property
    def sys_id(self) -> str:
        return self.record["sys_id"]

    @property
    def name(self) -> str:
        return self.record.get("name", "")

    @property
    def class_name(self) -> str:
        return self.record.get("sys_class_name", "")

    @property
    def address(self) -> str:
        """How an executor reaches it: FQDN, else IP, else host name, else CI name."""
        for key in ("fqdn", "ip_address", "host_name", "name"):
            if self.record.get(key):
                return self.record[key]
        return self.sys_id


@dataclass
class Traversal:
    found: list[RelatedCI] = field(default_factory=list)
    requests: int = 0


async def related_cis(
    client: AsyncServiceNowClient,
    start: str | Sequence[str],
    *,
    rel_types: Iterable[str] = ("Runs on::Runs",),
    direction: Literal["down", "up"] = "down",
    classes: Iterable[str] | None = None,
    max_depth: int = 3,
    fields: Iterable[str] = CI_FIELDS,
) -> Traversal:
    """CIs related to ``start`` through ``rel_types``, breadth first, each once.

    ``down`` follows parent -> child (an application "Runs on" its servers); ``up`` follows child ->
    parent. ``classes`` keeps only CIs of those classes (or classes extending them) in the result, while
    traversal passes through every class.
    """
    frontier = [start] if isinstance(start, str) else list(start)
    seen = set(frontier)
    result = Traversal()
    rel_names = list(rel_types)
    wanted = set(classes) if classes else None
    near, far = ("parent", "child") if direction == "down" else ("child", "parent")
    class_tree: dict[str, set[str]] = {}
    for depth in range(1, max_depth + 1):
        if not frontier:
            break
        query = Query().in_(near, frontier).in_("type.name", rel_names)
        rel_fields = [far, "type.name", *(f"{far}.{f}" for f in fields)]
        rows = await client.get_records("cmdb_rel_ci", query, fields=rel_fields)
        result.requests += 1
        next_frontier: list[str] = []
        for row in rows:
            target = row.get(far)
            if not target or target in seen:
                continue
            seen.add(target)
            next_frontier.append(target)
            record = {f: row.get(f"{far}.{f}", "") for f in fields}
            record["sys_id"] = target
            ci = RelatedCI(record, depth, row.get("type.name", ""))
            if wanted is None or await _is_a(client, ci.class_name, wanted, class_tree, result):
                result.found.append(ci)
        frontier = next_frontier
    return result


async def _is_a(
    client: AsyncServiceNowClient, class_name: str, wanted: set[str], cache: dict[str, set[str]], result: Traversal
) -> bool:
    """Whether a class is one of ``wanted`` or extends one (ancestry read from sys_db_object, cached)."""
    if class_name in wanted:
        return True
    if class_name not in cache:
        ancestors: set[str] = set()
        current = class_name
        for _ in range(10):
            rows = await client.get_records(
                "sys_db_object", Query().eq("name", current), fields=["name", "super_class.name"], limit=1
            )
            result.requests += 1
            parent = rows[0].get("super_class.name") if rows else ""
            if not parent:
                break
            ancestors.add(parent)
            current = parent
        cache[class_name] = ancestors
    return bool(cache[class_name] & wanted)


def criticality_rank(value: str | None) -> int:
    """1 (most critical) .. 4; unknown or empty ranks 4."""
    try:
        return BusinessCriticality(value).tier  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return 4


async def services_of(client: AsyncServiceNowClient, ci_sys_ids: Sequence[str], max_depth: int = 3) -> list[dict[str, Any]]:
    """Services that (transitively) depend on these CIs, with their tier and owning group."""
    traversal = await related_cis(
        client,
        list(ci_sys_ids),
        rel_types=("Depends on::Used by", "Runs on::Runs", "Hosted on::Hosts", "Virtualized by::Virtualizes"),
        direction="up",
        classes=("cmdb_ci_service",),
        max_depth=max_depth,
        fields=("sys_id", "name", "sys_class_name", BUSINESS_CRITICALITY_FIELD, "support_group", "managed_by_group"),
    )
    return [ci.record for ci in traversal.found]
