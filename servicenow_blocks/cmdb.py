"""CMDB helpers: relationship traversal over ``cmdb_rel_ci``, tier -> severity, owner -> assignment group.

Relationships are ``cmdb_rel_ci`` rows (parent, child, type -> ``cmdb_rel_type``); there is no
``cmdb_ci_appl_relationship`` table. Traversal is typed (relationship type names), bounded in depth,
safe against cycles, and fetches one level per request.
"""

from __future__ import annotations

import itertools
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
        level: list[RelatedCI] = []
        for row in rows:
            target = row.get(far)
            if not target or target in seen:
                continue
            seen.add(target)
            next_frontier.append(target)
            record = {f: row.get(f"{far}.{f}", "") for f in fields}
            record["sys_id"] = target
            level.append(RelatedCI(record, depth, row.get("type.name", "")))
        if wanted is not None:
            await _load_ancestry(
                client, [ci.class_name for ci in level if ci.class_name not in wanted], class_tree, result
            )
        result.found.extend(ci for ci in level if wanted is None or _is_a(ci.class_name, wanted, class_tree))
        frontier = next_frontier
    return result


ANCESTRY_LEVELS = 8


async def _load_ancestry(
    client: AsyncServiceNowClient, class_names: Iterable[str], cache: dict[str, set[str]], result: Traversal
) -> None:
    """The ancestors of each class (from sys_db_object), all classes of a level in one request.

    One request reads ``ANCESTRY_LEVELS`` levels of ``super_class`` by dot-walking; a deeper class goes on
    from the last ancestor read.
    """
    walks = [".".join(["super_class"] * k + ["name"]) for k in range(1, ANCESTRY_LEVELS + 1)]
    todo = {name: name for name in class_names if name and name not in cache}  # class -> where to read on
    chains: dict[str, list[str]] = {name: [] for name in todo}
    while todo:
        rows = await client.get_records(
            "sys_db_object", Query().in_("name", sorted(set(todo.values()))), fields=["name", *walks]
        )
        result.requests += 1
        read = {row.get("name"): [row.get(w) or "" for w in walks] for row in rows}
        next_todo = {}
        for name, at in todo.items():
            chain = list(itertools.takewhile(bool, read.get(at, [])))
            chains[name].extend(chain)
            if len(chain) == ANCESTRY_LEVELS and chain[-1] not in chains[name][:-1]:
                next_todo[name] = chain[-1]
        todo = next_todo
    for name, chain in chains.items():
        cache[name] = set(chain)


def _is_a(class_name: str, wanted: set[str], cache: dict[str, set[str]]) -> bool:
    """Whether a class is one of ``wanted`` or extends one (ancestry loaded by ``_load_ancestry``)."""
    return class_name in wanted or bool(cache.get(class_name, set()) & wanted)


def criticality_rank(value: str | None) -> int:
    """1 (most critical) .. 4; unknown or empty ranks 4."""
    try:
        return BusinessCriticality(value).tier  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return 4


SERVICE_FIELDS = ("sys_id", "name", "sys_class_name", BUSINESS_CRITICALITY_FIELD, "support_group", "managed_by_group")


async def services_of(
    client: AsyncServiceNowClient, ci_sys_ids: Sequence[str], max_depth: int = 3
) -> list[dict[str, Any]]:
    """Services that (transitively) depend on these CIs, with their tier and owning group.

    The tier and the groups are fields of ``cmdb_ci_service``, which a dot-walk through ``cmdb_rel_ci``'s
    ``parent`` (a ``cmdb_ci`` reference) does not reach: the services found are read once more, from
    their own table, in one request.
    """
    traversal = await related_cis(
        client,
        list(ci_sys_ids),
        rel_types=("Depends on::Used by", "Runs on::Runs", "Hosted on::Hosts", "Virtualized by::Virtualizes"),
        direction="up",
        classes=("cmdb_ci_service",),
        max_depth=max_depth,
        fields=("sys_id", "name", "sys_class_name"),
    )
    if not traversal.found:
        return []
    rows = await client.get_records(
        "cmdb_ci_service", Query().in_("sys_id", [ci.sys_id for ci in traversal.found]), fields=SERVICE_FIELDS
    )
    by_id = {row["sys_id"]: row for row in rows}
    return [by_id.get(ci.sys_id, ci.record) for ci in traversal.found]
