"""The Identification and Reconciliation API (reference §5.5), and the identification engine the CMDB Instance
API (``cmdb.py``) shares.

Endpoints: ``POST /api/now/[v1/]identifyreconcile`` and ``.../enhanced`` commit; ``.../query`` and
``.../queryEnhanced`` are dry runs that identify and report the operation but write nothing.

Identification follows the base identification rules, one rule per class hierarchy (the nearest ancestor of the
payload class that has a rule), each rule being an ordered list of entries tried until one matches:

* Hardware Rule (``cmdb_ci_hardware`` and below, servers included): serial number from a ``cmdb_serial_number``
  lookup entry, then ``serial_number`` from the values, then ``name``; searched on ``cmdb_ci_hardware``.
* Virtual Machine Instance Rule (``cmdb_ci_vm_instance``): ``object_id``, then ``vm_inst_id``.
* Application, Service and Kubernetes cluster/namespace/node rules: ``name`` on the rule's table.
* Configuration Item Rule (everything else): ``name`` on ``cmdb_ci``.

An entry whose attributes are missing is SKIPPED; a search finding one CI is MATCHED, none NO_MATCH, several
MULTI_MATCH (an item error, MULTIPLE_DUPLICATE_RECORDS). Operations: INSERT; UPDATE / NO_CHANGE (whether any given
value differs); UPDATE_WITH_UPGRADE when the payload class descends from the matched CI's class (the CI's
``sys_class_name`` is switched); UPDATE_WITH_DOWNGRADE and UPDATE_WITH_SWITCH for an ancestor or unrelated payload
class. The item ``settings`` ``updateWithoutUpgrade`` / ``updateWithoutDowngrade`` / ``updateWithoutSwitch`` keep the
class (reported in ``info`` as SKIPPED_CLASS_*), as documented. Writes set ``discovery_source`` (on insert, or when
the CI has none), ``first_discovered`` (on insert, or when empty) and ``last_discovered`` (every time, NO_CHANGE
included, as discovery does).

Behaviour choices on points the public material leaves open (UNCONFIRMED):

* No ``sysparm_data_source``: the documentation's default is "insert the payload into the incomplete payloads table";
  the emulator keeps no such table and answers what integrators report from real instances: every item fails with
  ``INVALID_INPUT_DATA`` (inside a 200) and nothing is written. The body's ``sys_object_source_info.source_name`` does
  not stand in for the parameter (reported as ignored in the field). A data source that is not an active
  ``cmdb_ci.discovery_source`` choice (``sys_choice`` rows) fails the same way.
* Per-item errors (unknown class, missing identifying attributes, duplicates, unknown relationship type, bad data
  source) come back inside a 200 with ``errorCount`` > 0, ``sysId`` and ``identifierEntrySysId`` ``"Unknown"`` and
  operation ``NO_CHANGE``; the remaining items are still committed (the documentation says the non-enhanced script
  API does not allow partial commits; the emulator commits the clean items on both endpoints). The commit itself is
  one store transaction: if a platform rule rejects any write, nothing of the request is kept and the rule's error
  envelope is returned.
* Two items identifying the same CI (or inserting the same identity): the plain endpoints fail both with
  ``DUPLICATE_PAYLOAD_RECORDS``; the enhanced endpoints merge them (deduplicate_payloads, on by default) into one
  result item listing every input index. Other enhanced options (partial payloads, summaries) are accepted and
  ignored; a malformed ``options`` value gives the documented 500 "Chunk [..] is not a valid entry".
* Relations to or from an item with errors are ABANDONED; a relation whose parent, child and type already exist is
  NO_CHANGE. Lookup and related items are reported in ``relatedItems`` but not stored (there is no
  ``cmdb_serial_number`` table; a lookup serial number is written to the CI's ``serial_number`` when the values
  carry none).
* Roles: itil, asset (or admin) for every endpoint, 403 "Failed API level ACL Validation" otherwise; the committing
  endpoints also need CI write access (``snc_read_only`` users get the ACL 403), the dry runs do not.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .. import acl
from ..dictionary import JOURNAL_TYPES, Dictionary
from ..errors import PlatformError, bad_request, no_such_resource
from ..platform import SYSTEM, Session, new_sys_id
from ..store import quote
from ..timeutil import glide_now
from .common import emulator_of, json_response, param, read_json_body, resource, session_of

if TYPE_CHECKING:
    from ..emulator import Emulator

IRE_ROLES = acl.ITIL_ROLES | {"asset"}
UNKNOWN = "Unknown"
# Attributes the engine manages itself: payload values for them are ignored.
_MANAGED = frozenset({"discovery_source", "first_discovered", "last_discovered", "sys_class_name", "sys_id"})


# --- shared helpers (also used by the CMDB Instance API) ---------------------------------------------------------
def require_api_roles(session: Session, roles: frozenset[str] | set[str]) -> None:
    """The REST API's own role check (before any table ACL)."""
    if session.is_admin or session.roles & roles:
        return
    raise PlatformError(403, "User Not Authorized", "Failed API level ACL Validation")


def check_version(request: Request) -> None:
    version = request.path_params.get("version", "")
    if version and version not in ("v1", "v2"):
        raise no_such_resource()


def is_cmdb_class(dictionary: Dictionary, name: str) -> bool:
    return bool(name) and name in dictionary and dictionary.is_a(name, "cmdb_ci")


def discovery_sources(emulator: Emulator) -> set[str]:
    """The active choice values of cmdb_ci.discovery_source (sys_choice rows, so admins can add sources)."""
    rows = emulator.store.execute(
        "SELECT value FROM sys_choice WHERE name = 'cmdb_ci' AND element = 'discovery_source' "
        "AND COALESCE(inactive, 0) = 0"
    ).fetchall()
    return {row[0] for row in rows if row[0]}


def relationship_type(emulator: Emulator, *, sys_id: str | None = None, name: str | None = None) -> dict | None:
    where = {"sys_id": sys_id} if sys_id is not None else {"name": name}
    rows = emulator.store.find("cmdb_rel_type", where, limit=1)
    return rows[0] if rows else None


def find_relation(emulator: Emulator, parent: str, child: str, type_id: str) -> str | None:
    row = emulator.store.execute(
        'SELECT sys_id FROM cmdb_rel_ci WHERE parent = ? AND child = ? AND "type" = ? ORDER BY rowid LIMIT 1',
        [parent, child, type_id],
    ).fetchone()
    return row[0] if row else None


def _norm(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _text(value: Any) -> str:
    """A payload value as the string identification compares ('' when absent)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        value = value.get("value", "")
    return str(value).strip()


# --- identification rules -------------------------------------------------------------------------------------
def _entry_id(rule: str, attributes: tuple[str, ...]) -> str:
    return hashlib.md5(f"{rule}:{','.join(attributes)}".encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One identifier entry: attributes that must all be present, searched on a table."""

    attributes: tuple[str, ...]
    sys_id: str
    lookup: bool = False  # the serial number comes from a cmdb_serial_number lookup item

    @property
    def reported_attributes(self) -> list[str]:
        return ["serial_number", "serial_number_type"] if self.lookup else list(self.attributes)


@dataclass(frozen=True)
class Rule:
    name: str
    table: str
    entries: tuple[Entry, ...]


def _rule(name: str, table: str, *entries: tuple[str, ...]) -> Rule:
    return Rule(name, table, tuple(Entry(attrs, _entry_id(name, attrs)) for attrs in entries))


RULES: dict[str, Rule] = {
    "cmdb_ci_hardware": Rule(
        "Hardware Rule",
        "cmdb_ci_hardware",
        (
            Entry(("serial_number",), _entry_id("Hardware Rule", ("lookup:serial_number",)), lookup=True),
            Entry(("serial_number",), _entry_id("Hardware Rule", ("serial_number",))),
            # The base system's Hardware Rule name entry (the documentation's sample response shows it).
            Entry(("name",), "556eb250c3400200d8d4bea192d3ae92"),
        ),
    ),
    "cmdb_ci_vm_instance": _rule(
        "Virtual Machine Instance Rule", "cmdb_ci_vm_instance", ("object_id",), ("vm_inst_id",)
    ),
    "cmdb_ci_appl": _rule("Application Rule", "cmdb_ci_appl", ("name",)),
    "cmdb_ci_service": _rule("Service Rule", "cmdb_ci_service", ("name",)),
    "cmdb_ci_kubernetes_cluster": _rule("Kubernetes Cluster Rule", "cmdb_ci_kubernetes_cluster", ("name",)),
    "cmdb_ci_kubernetes_namespace": _rule("Kubernetes Namespace Rule", "cmdb_ci_kubernetes_namespace", ("name",)),
    "cmdb_ci_kubernetes_node": _rule("Kubernetes Node Rule", "cmdb_ci_kubernetes_node", ("name",)),
    "cmdb_ci": _rule("Configuration Item Rule", "cmdb_ci", ("name",)),
}


def rule_for(dictionary: Dictionary, class_name: str) -> Rule:
    for ancestor in dictionary.ancestors(class_name):
        if ancestor in RULES:
            return RULES[ancestor]
    return RULES["cmdb_ci"]


def cmdb_api_rule(dictionary: Dictionary, class_name: str) -> Rule:
    """The CMDB Instance API's simple identification: serial number, then object id, then name."""
    table = rule_for(dictionary, class_name).table
    return _rule("CMDB Instance API Rule", table, ("serial_number",), ("object_id",), ("name",))


@dataclass
class Identification:
    rule: Rule
    attempts: list[dict[str, Any]] = field(default_factory=list)
    match: dict[str, Any] | None = None
    entry_sys_id: str = UNKNOWN
    # What makes two payload items "the same CI" (for duplicate detection within one request).
    key: tuple[str, ...] | None = None
    key_attributes: tuple[str, ...] = ()
    error: tuple[str, str] | None = None


def _search(emulator: Emulator, table: str, attribute: str, value: str) -> list[dict[str, Any]]:
    dictionary = emulator.dictionary
    classes = dictionary.descendants(table)
    marks = ", ".join("?" for _ in classes)
    cursor = emulator.store.execute(
        f"SELECT * FROM {quote(dictionary.root(table))} WHERE sys_class_name IN ({marks}) "
        f"AND {quote(attribute)} = ? COLLATE NOCASE ORDER BY rowid LIMIT 2",
        [*classes, value],
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def lookup_serial(lookup: Any) -> str:
    """The serial number of the first valid cmdb_serial_number lookup item ('' when none)."""
    for entry in lookup if isinstance(lookup, list) else []:
        if not isinstance(entry, dict) or entry.get("className") != "cmdb_serial_number":
            continue
        values = entry.get("values") if isinstance(entry.get("values"), dict) else {}
        if _text(values.get("valid", "true")).lower() == "false":
            continue
        serial = _text(values.get("serial_number"))
        if serial:
            return serial
    return ""


def identify(
    emulator: Emulator, class_name: str, values: dict[str, Any], *, lookup: Any = None, rule: Rule | None = None
) -> Identification:
    """Run a class's identifier entries in order until one matches."""
    rule = rule or rule_for(emulator.dictionary, class_name)
    result = Identification(rule)
    serial_from_lookup = lookup_serial(lookup)
    tried_any = False
    for entry in rule.entries:
        search_on = "cmdb_serial_number" if entry.lookup else rule.table
        attempt = {
            "identifierName": rule.name,
            "attemptResult": "SKIPPED",
            "attributes": entry.reported_attributes,
            "searchOnTable": search_on,
            "hybridEntryCiAttributes": [],
        }
        result.attempts.append(attempt)
        wanted = (
            [serial_from_lookup] if entry.lookup else [_text(values.get(attribute)) for attribute in entry.attributes]
        )
        if not all(wanted):
            continue
        # Every entry has a single attribute.
        found = _search(emulator, rule.table, entry.attributes[0], wanted[0])
        if not tried_any:
            tried_any = True
            result.entry_sys_id = entry.sys_id
            result.key = ("new", rule.table, *entry.attributes, *(v.lower() for v in wanted))
            result.key_attributes = entry.attributes
        if len(found) > 1:
            attempt["attemptResult"] = "MULTI_MATCH"
            result.entry_sys_id = UNKNOWN
            result.error = (
                "MULTIPLE_DUPLICATE_RECORDS",
                f"Found duplicate records in table [{rule.table}] using fields [{','.join(entry.attributes)}]",
            )
            return result
        if found:
            attempt["attemptResult"] = "MATCHED"
            result.match = found[0]
            result.entry_sys_id = entry.sys_id
            result.key = ("match", found[0]["sys_id"])
            result.key_attributes = entry.attributes
            return result
        attempt["attemptResult"] = "NO_MATCH"
    if not tried_any:
        result.entry_sys_id = UNKNOWN
        payload = orjson.dumps({"className": class_name, "values": values}, default=str).decode()
        result.error = (
            "MISSING_MATCHING_ATTRIBUTES",
            "In payload missing minimum set of input values for criterion (matching) attributes from identify rule "
            f"for table [{rule.table}]. Add these input values in payload item '{payload}'",
        )
    return result


# --- reconciliation ---------------------------------------------------------------------------------------------
@dataclass
class Decision:
    operation: str
    target_class: str
    sys_id: str
    info: list[dict[str, str]] = field(default_factory=list)


def writable_values(emulator: Emulator, class_name: str, values: dict[str, Any]) -> dict[str, Any]:
    """Payload values the target class has and a client may write (unknown and system fields are dropped)."""
    fields = emulator.dictionary.fields(class_name)
    out = {}
    for name, raw in values.items():
        f = fields.get(name)
        if f is None or name in _MANAGED or name.startswith("sys_") or f.read_only or f.type in JOURNAL_TYPES:
            continue
        out[name] = raw
    return out


def changed_fields(emulator: Emulator, class_name: str, values: dict[str, Any], existing: dict[str, Any]) -> list[str]:
    fields = emulator.dictionary.fields(class_name)
    changed = []
    for name, raw in writable_values(emulator, class_name, values).items():
        try:
            new = emulator.platform.coerce(fields[name], raw, display_input=False, session=SYSTEM)
        except Exception:
            continue
        if _norm(new) != _norm(existing.get(name)):
            changed.append(name)
    return changed


def decide(
    emulator: Emulator,
    class_name: str,
    values: dict[str, Any],
    match: dict[str, Any] | None,
    settings: dict[str, Any] | None = None,
    new_id: str | None = None,
) -> Decision:
    """INSERT, UPDATE, NO_CHANGE or a reclassifying update, from the identification result."""
    if match is None:
        return Decision("INSERT", class_name, new_id or new_sys_id())
    dictionary = emulator.dictionary
    settings = settings if isinstance(settings, dict) else {}
    existing_class = match.get("sys_class_name") or "cmdb_ci"
    target, operation, info = existing_class, None, []
    if class_name != existing_class:
        if dictionary.is_a(class_name, existing_class):
            kind, flag, code = "UPDATE_WITH_UPGRADE", "updateWithoutUpgrade", "SKIPPED_CLASS_UPGRADE"
        elif dictionary.is_a(existing_class, class_name):
            kind, flag, code = "UPDATE_WITH_DOWNGRADE", "updateWithoutDowngrade", "SKIPPED_CLASS_DOWNGRADE"
        else:
            kind, flag, code = "UPDATE_WITH_SWITCH", "updateWithoutSwitch", "SKIPPED_CLASS_SWITCH"
        if _text(settings.get(flag)).lower() == "true":
            info.append(
                {
                    "code": code,
                    "message": f"Reclassification from [{existing_class}] to [{class_name}] skipped: {flag} is set",
                    "ruleSysId": "",
                }
            )
        else:
            target, operation = class_name, kind
    if operation is None:
        operation = "UPDATE" if changed_fields(emulator, target, values, match) else "NO_CHANGE"
    return Decision(operation, target, match["sys_id"], info)


def switch_class(emulator: Emulator, sys_id: str, old: str, new: str) -> None:
    """Reclassify a CI in place: the row keeps its sys_id; columns the new class lacks are cleared."""
    dictionary = emulator.dictionary
    cleared = {name: None for name in set(dictionary.fields(old)) - set(dictionary.fields(new))}
    emulator.store.update(new, sys_id, {**cleared, "sys_class_name": new})


def commit_ci(
    emulator: Emulator,
    session: Session,
    decision: Decision,
    values: dict[str, Any],
    match: dict[str, Any] | None,
    source: str,
    now: str,
) -> str:
    """Write one identified CI through the platform (so rules apply); returns its sys_id."""
    platform = emulator.platform
    target = decision.target_class
    data = writable_values(emulator, target, values)
    data["last_discovered"] = now
    if decision.operation == "INSERT" or match is None:
        data.update(sys_id=decision.sys_id, sys_class_name=target, discovery_source=source, first_discovered=now)
        return platform.insert(target, data, session)["sys_id"]
    existing_class = match.get("sys_class_name") or target
    if target != existing_class:
        switch_class(emulator, decision.sys_id, existing_class, target)
    if not match.get("discovery_source"):
        data["discovery_source"] = source
    if not match.get("first_discovered"):
        data["first_discovered"] = now
    platform.update(target, decision.sys_id, data, session)
    return decision.sys_id


# --- the API ----------------------------------------------------------------------------------------------------
@dataclass
class ItemPlan:
    index: int
    raw: Any
    class_name: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    internal_id: str | None = None
    indices: list[int] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    ident: Identification | None = None
    decision: Decision | None = None
    merged_into: ItemPlan | None = None
    identified: bool = False
    new_id: str = ""

    def fail(self, code: str, message: str) -> None:
        self.errors.append({"error": code, "message": message})


def _options(request: Request) -> dict[str, bool]:
    raw = param(request, "options")
    options = {"partial_payloads": True, "partial_commits": True, "deduplicate_payloads": True}
    if raw is None:
        return options
    for chunk in raw.split(","):
        name, sep, value = chunk.partition(":")
        if not sep or value.strip().lower() not in ("true", "false") or not name.strip():
            raise PlatformError(500, f"Chunk [{chunk}] is not a valid entry", f"Chunk [{chunk}] is not a valid entry")
        options[name.strip()] = value.strip().lower() == "true"
    return options


def _index(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _item_json(plan: ItemPlan, dry_run: bool) -> dict[str, Any]:
    ident, decision = plan.ident, plan.decision
    failed = bool(plan.errors) or decision is None
    if failed:
        sys_id, operation, entry = UNKNOWN, "NO_CHANGE", UNKNOWN
    else:
        operation = decision.operation
        sys_id = UNKNOWN if dry_run and operation == "INSERT" else decision.sys_id
        entry = ident.entry_sys_id if ident else UNKNOWN
    lookup = plan.raw.get("lookup") if isinstance(plan.raw, dict) and isinstance(plan.raw.get("lookup"), list) else []
    related = [
        {
            "markers": [],
            "inputIndices": [{"mainIndex": plan.index, "subIndex": sub}],
            "mergedPayloadIds": [],
            "className": entry_.get("className", "") if isinstance(entry_, dict) else "",
        }
        for sub, entry_ in enumerate(lookup)
    ]
    out: dict[str, Any] = {
        "className": decision.target_class if decision and not failed else plan.class_name,
        "operation": operation,
        "sysId": sys_id,
        "identifierEntrySysId": entry,
        "identificationAttempts": ident.attempts if ident else [],
        "inputIndices": plan.indices,
        "errorCount": len(plan.errors),
        "errors": plan.errors,
        "markers": [],
        "mergedPayloadIds": [],
        "relatedItems": related,
        "additionalRelatedItems": [],
    }
    if lookup:
        out["relatedSysIds"] = [None] * len(lookup)
    if decision and decision.info and not failed:
        out["info"] = decision.info
    return out


async def _identify_reconcile(request: Request, *, enhanced: bool, dry_run: bool) -> Response:
    emulator = emulator_of(request)
    session = session_of(request)
    check_version(request)
    require_api_roles(session, IRE_ROLES)
    if not dry_run:
        acl.check_write(emulator.dictionary, session, "cmdb_ci", "create")
    options = _options(request) if enhanced else {}
    deduplicate = enhanced and (options.get("partial_payloads", True) or options.get("deduplicate_payloads", True))
    data = await read_json_body(request)
    if not isinstance(data, dict):
        raise bad_request("Invalid payload", "The request body must be a JSON object with an 'items' array")
    items = data.get("items")
    if not isinstance(items, list):
        raise bad_request("Invalid payload", "The request body must contain an 'items' array")
    relations = data.get("relations") or []
    reference_items = data.get("referenceItems") or []
    if not isinstance(relations, list) or not isinstance(reference_items, list):
        raise bad_request("Invalid payload", "'relations' and 'referenceItems' must be arrays")

    dictionary = emulator.dictionary
    source = param(request, "sysparm_data_source")
    source_error = None
    if source is None:
        source_error = (
            "INVALID_INPUT_DATA",
            "Invalid payload: no discovery source. Pass sysparm_data_source with a choice value of the "
            "discovery_source field of cmdb_ci",
        )
    elif source not in discovery_sources(emulator):
        source_error = (
            "INVALID_INPUT_DATA",
            f"Invalid payload: invalid data_source [{source}]; it must be a choice value of the discovery_source "
            "field of cmdb_ci",
        )

    plans: list[ItemPlan] = []
    by_internal_id: dict[str, ItemPlan] = {}
    for index, raw in enumerate(items):
        plan = ItemPlan(index, raw, indices=[index])
        plans.append(plan)
        if not isinstance(raw, dict):
            plan.fail("INVALID_INPUT_DATA", f"Invalid payload: item {index} is not an object")
            continue
        plan.class_name = str(raw.get("className") or "")
        values = raw.get("values", {})
        plan.values = dict(values) if isinstance(values, dict) else {}
        if raw.get("internal_id") not in (None, ""):
            plan.internal_id = str(raw["internal_id"])
            by_internal_id.setdefault(plan.internal_id, plan)
        if source_error:
            plan.fail(*source_error)
        if not plan.class_name:
            plan.fail("INVALID_INPUT_DATA", f"Invalid payload: item {index} has no className")
        elif not is_cmdb_class(dictionary, plan.class_name):
            plan.fail("INVALID_INPUT_DATA", f"Invalid payload: className [{plan.class_name}] is not a valid CMDB class")
        elif not isinstance(values, dict):
            plan.fail("INVALID_INPUT_DATA", f"Invalid payload: values of item {index} is not an object")
        if not plan.errors and "serial_number" not in plan.values:
            serial = lookup_serial(raw.get("lookup"))
            if serial and dictionary.field(plan.class_name, "serial_number"):
                plan.values["serial_number"] = serial

    # referenceItems: the referencedBy item's field takes the referenced item's sys_id, before identification.
    depends: dict[int, list[tuple[ItemPlan, str]]] = {}
    for ref in reference_items:
        if not isinstance(ref, dict):
            continue
        by = by_internal_id.get(str(ref.get("referencedBy")))
        target = by_internal_id.get(str(ref.get("referenced")))
        field_name = str(ref.get("referenceField") or "")
        if by is None or by.errors:
            continue
        if target is None or not field_name or not dictionary.field(by.class_name, field_name):
            by.fail(
                "INVALID_INPUT_DATA",
                f"Invalid payload: reference item {ref!r} does not name payload items and a field of [{by.class_name}]",
            )
            continue
        depends.setdefault(by.index, []).append((target, field_name))

    identified_keys: dict[tuple[str, ...], ItemPlan] = {}
    pending = [p for p in plans if not p.errors]
    while pending:
        progressed = False
        for plan in list(pending):
            needs = depends.get(plan.index, [])
            if any(not t.identified and not t.errors for t, _ in needs):
                continue
            pending.remove(plan)
            progressed = True
            plan.identified = True
            for target, field_name in needs:
                if target.errors or target.ident is None:
                    plan.fail(
                        "ABANDONED",
                        f"Abandoning processing payload item '{plan.index}', since it depends on payload item "
                        f"'{target.index}' that has errors",
                    )
                else:
                    owner = target.merged_into or target
                    plan.values[field_name] = owner.ident.match["sys_id"] if owner.ident.match else owner.new_id
            if plan.errors:
                continue
            plan.ident = identify(emulator, plan.class_name, plan.values, lookup=plan.raw.get("lookup"))
            plan.new_id = new_sys_id()
            if plan.ident.error:
                plan.fail(*plan.ident.error)
                continue
            key = plan.ident.key
            first = identified_keys.get(key) if key else None
            if first is None:
                if key:
                    identified_keys[key] = plan
                continue
            if deduplicate:
                first.values.update(plan.values)
                first.indices.extend(plan.indices)
                plan.merged_into = first
            else:
                message = (
                    f"Found duplicate items in the payload (index {first.index} and {plan.index}), using className "
                    f"[{plan.class_name}] and fields [{','.join(plan.ident.key_attributes)}]."
                )
                for duplicate in (first, plan):
                    if not any(e["error"] == "DUPLICATE_PAYLOAD_RECORDS" for e in duplicate.errors):
                        duplicate.fail("DUPLICATE_PAYLOAD_RECORDS", message)
        if not progressed:
            for plan in pending:
                plan.identified = True
                plan.fail("INVALID_INPUT_DATA", "Invalid payload: referenceItems form a cycle")
            break

    for plan in plans:
        if plan.errors or plan.merged_into is not None or plan.ident is None:
            continue
        settings = plan.raw.get("settings") if isinstance(plan.raw, dict) else None
        plan.decision = decide(emulator, plan.class_name, plan.values, plan.ident.match, settings, plan.new_id or None)

    def owner(reference: Any, by_index: bool) -> tuple[ItemPlan | None, str]:
        if by_index:
            index = _index(reference)
            if index is None or not 0 <= index < len(plans):
                return None, f"item index [{reference}] is not in the payload"
            plan = plans[index]
        else:
            plan = by_internal_id.get(str(reference))
            if plan is None:
                return None, f"internal_id [{reference}] is not a payload item"
        return plan.merged_into or plan, ""

    relation_results: list[dict[str, Any]] = []
    relation_writes: list[tuple[ItemPlan, ItemPlan, str, dict[str, Any]]] = []
    seen_relations: set[tuple[int, int, str]] = set()
    for k, rel in enumerate(relations):
        result: dict[str, Any] = {
            "className": "cmdb_rel_ci",
            "operation": "NO_CHANGE",
            "markers": [],
            "inputIndices": [k],
            "mergedPayloadIds": [],
            "errorCount": 0,
            "errors": [],
        }
        relation_results.append(result)
        errors = result["errors"]
        if not isinstance(rel, dict):
            errors.append({"error": "INVALID_INPUT_DATA", "message": f"Invalid payload: relation {k} is not an object"})
        else:
            by_index = "parent" in rel or "child" in rel
            parent, parent_problem = owner(rel.get("parent") if by_index else rel.get("parent_id"), by_index)
            child, child_problem = owner(rel.get("child") if by_index else rel.get("child_id"), by_index)
            type_name = str(rel.get("type") or "")
            rel_type = relationship_type(emulator, name=type_name) if type_name else None
            for problem in (parent_problem, child_problem):
                if problem:
                    errors.append(
                        {"error": "INVALID_INPUT_DATA", "message": f"Invalid payload: relation {k}: {problem}"}
                    )
            if rel_type is None:
                errors.append(
                    {
                        "error": "INVALID_INPUT_DATA",
                        "message": f"Invalid payload: no such relationship type [{type_name}] in cmdb_rel_type",
                    }
                )
            if not errors:
                assert parent is not None and child is not None and rel_type is not None
                broken = [p for p in (parent, child) if p.errors or p.decision is None]
                if broken:
                    errors.append(
                        {
                            "error": "ABANDONED",
                            "message": f"Abandoning processing relation {k}, since payload item "
                            f"'{broken[0].index}' has errors",
                        }
                    )
                else:
                    triple = (parent.index, child.index, rel_type["sys_id"])
                    exists = (
                        parent.decision.operation != "INSERT"
                        and child.decision.operation != "INSERT"
                        and find_relation(emulator, parent.decision.sys_id, child.decision.sys_id, rel_type["sys_id"])
                    )
                    if not exists and triple not in seen_relations:
                        result["operation"] = "INSERT"
                        relation_writes.append((parent, child, rel_type["sys_id"], result))
                    seen_relations.add(triple)
        result["errorCount"] = len(errors)

    if not dry_run:
        now = glide_now()
        with emulator.store.transaction():
            for plan in plans:
                if plan.errors or plan.decision is None:
                    continue
                commit_ci(emulator, session, plan.decision, plan.values, plan.ident.match, source or "", now)
            for parent, child, type_id, _ in relation_writes:
                emulator.platform.insert(
                    "cmdb_rel_ci",
                    {"parent": parent.decision.sys_id, "child": child.decision.sys_id, "type": type_id},
                    session,
                )

    result_items = [_item_json(p, dry_run) for p in plans if p.merged_into is None]
    return json_response(
        {
            "result": {
                "items": result_items,
                "additionalCommittedItems": [],
                "relations": relation_results,
                "additionalCommittedRelations": [],
            }
        }
    )


@resource()
async def identify_reconcile(request: Request) -> Response:
    return await _identify_reconcile(request, enhanced=False, dry_run=False)


@resource()
async def identify_reconcile_enhanced(request: Request) -> Response:
    return await _identify_reconcile(request, enhanced=True, dry_run=False)


@resource()
async def identify_query(request: Request) -> Response:
    return await _identify_reconcile(request, enhanced=False, dry_run=True)


@resource()
async def identify_query_enhanced(request: Request) -> Response:
    return await _identify_reconcile(request, enhanced=True, dry_run=True)


ROUTES = [
    (prefix + suffix, endpoint, ["POST"])
    for prefix in ("/api/now/identifyreconcile", "/api/now/{version}/identifyreconcile")
    for suffix, endpoint in (
        ("", identify_reconcile),
        ("/enhanced", identify_reconcile_enhanced),
        ("/query", identify_query),
        ("/queryEnhanced", identify_query_enhanced),
    )
]
