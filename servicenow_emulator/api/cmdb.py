"""The CMDB Instance API (reference §5.4): CIs of a class with their attributes and relations.

``GET /api/now/[v1/]cmdb/instance/{className}`` lists ``{sys_id, name}`` (``sysparm_query``, ``sysparm_limit``
default 10000, ``sysparm_offset``). ``GET .../{sys_id}`` returns ``attributes`` (every field of the CI's class; scalars
as strings, references as ``{display_value, link, value}`` with Table API links, as the documentation's samples show)
plus ``outbound_relations`` (the CI is the ``cmdb_rel_ci`` parent) and ``inbound_relations`` (the CI is the child),
whose ``target`` links use the CMDB Instance API path. ``POST .../{className}`` creates a CI through the IRE
identification engine shared with ``ire.py`` (serial number, then object id, then name, within the class's
identification hierarchy), so posting the same CI twice updates it (a CI of an ancestor class is upgraded to the
posted class; one of a more specific or unrelated class keeps its class); ``PUT``/``PATCH .../{sys_id}`` update
attributes; ``POST .../{sys_id}/relation`` adds relations and ``DELETE .../{sys_id}/relation/{rel_sys_id}`` removes
one. Every write needs ``source``, an active choice value of ``cmdb_ci.discovery_source``, which wins over any
``discovery_source`` attribute; writes set ``last_discovered`` (and ``first_discovered`` on insert).

Behaviour choices on UNCONFIRMED points: the two POSTs answer 201 (the documentation lists only 200 among its
generic codes); DELETE of a relation answers 204 with no body; a relation element naming a type or target that does not
exist is a 400 naming it, checked before anything is written; a relation that already exists is not duplicated;
a class that does not exist or does not extend ``cmdb_ci`` is ``400 Invalid table``; the API needs the itil role
(or admin) and answers 403 "Failed API level ACL Validation" otherwise, while writes also pass the table ACLs
(read-only users get the ACL 403).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from .. import acl
from ..errors import PlatformError, bad_request, record_not_found
from ..platform import Session
from ..query import SqlBuilder, class_filter, parse
from ..render import Renderer, select_rows
from ..store import quote
from ..timeutil import glide_now
from .common import (
    base_url,
    empty_response,
    emulator_of,
    int_param,
    json_response,
    param,
    read_json_body,
    record_body,
    resource,
    session_of,
)
from .ire import (
    check_version,
    cmdb_api_rule,
    commit_ci,
    decide,
    discovery_sources,
    find_relation,
    identify,
    is_cmdb_class,
    relationship_type,
    require_api_roles,
    writable_values,
)
from .table import DEFAULT_LIMIT, query_context

if TYPE_CHECKING:
    from ..emulator import Emulator

CMDB_ROLES = acl.ITIL_ROLES


# --- checks ------------------------------------------------------------------------------------------------------
def _class_name(request: Request) -> str:
    emulator = emulator_of(request)
    check_version(request)
    require_api_roles(session_of(request), CMDB_ROLES)
    name = request.path_params["class_name"]
    if not is_cmdb_class(emulator.dictionary, name):
        detail = f"Table {name} does not exist" if name not in emulator.dictionary else f"{name} is not a CMDB class"
        raise PlatformError(400, f"Invalid table {name}", detail)
    return name


def _existing_ci(emulator: Emulator, class_name: str, sys_id: str) -> dict[str, Any]:
    record = emulator.store.get(class_name, sys_id)
    if record is None:
        raise record_not_found()
    return record


def _source(emulator: Emulator, body: dict[str, Any]) -> str:
    source = body.get("source")
    if source in (None, ""):
        raise bad_request(
            "Missing mandatory field: source",
            "The request body must name its source, a choice value of the discovery_source field of cmdb_ci",
        )
    if not isinstance(source, str) or source not in discovery_sources(emulator):
        raise bad_request(
            f"Invalid source: {source}",
            f"source '{source}' is not a choice value of the discovery_source field of cmdb_ci",
        )
    return source


def _attributes(body: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    attributes = body.get("attributes")
    if attributes is None and not required:
        return {}
    if not isinstance(attributes, dict):
        raise bad_request("Invalid attributes", "attributes must be an object of field name/value pairs")
    return attributes


def _relations(emulator: Emulator, body: dict[str, Any], key: str) -> list[tuple[str, str]]:
    """Validated (type sys_id, target sys_id) pairs of one relations list of the body."""
    entries = body.get(key)
    if entries is None:
        return []
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list):
        raise bad_request(f"Invalid {key}", f"{key} must be an array of {{type, target}} objects")
    pairs = []
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("type") or not entry.get("target"):
            raise bad_request(f"Invalid {key}", f"Each element of {key} needs a type and a target (sys_ids)")
        type_id, target = str(entry["type"]), str(entry["target"])
        if relationship_type(emulator, sys_id=type_id) is None:
            raise bad_request(
                f"Invalid relation type: {type_id}", f"{key}: type '{type_id}' is not a cmdb_rel_type sys_id"
            )
        if emulator.store.get("cmdb_ci", target) is None:
            raise bad_request(f"Invalid relation target: {target}", f"{key}: target '{target}' is not a CI sys_id")
        pairs.append((type_id, target))
    return pairs


# --- rendering -----------------------------------------------------------------------------------------------------
def ci_result(request: Request, sys_id: str) -> dict[str, Any]:
    """The GET shape: attributes plus outbound and inbound relations."""
    emulator = emulator_of(request)
    record = emulator.store.get("cmdb_ci", sys_id)
    if record is None:
        raise record_not_found()
    concrete = record.get("sys_class_name") or "cmdb_ci"
    if concrete not in emulator.dictionary:
        concrete = "cmdb_ci"
    renderer = Renderer(
        emulator.dictionary,
        emulator.store,
        base_url=base_url(request),
        display_value="all",
        tz=session_of(request).tz,
    )
    plan = renderer.plan(concrete, None, query_context(request, concrete))
    rows = select_rows(emulator.store, concrete, plan, "t.sys_id = ?", [sys_id], [], 1, 0)
    rendered = plan.render(rows[0])
    attributes: dict[str, Any] = {}
    for column in plan.columns:
        value = rendered[column.key]
        if column.field.type == "reference" and column.field.reference:
            attributes[column.key] = value if isinstance(value, dict) and value.get("value") else ""
        elif isinstance(value, dict):
            attributes[column.key] = value.get("value", "")
        else:
            attributes[column.key] = value
    return {
        "outbound_relations": _relations_of(request, sys_id, outbound=True),
        "attributes": attributes,
        "inbound_relations": _relations_of(request, sys_id, outbound=False),
    }


def _relations_of(request: Request, sys_id: str, *, outbound: bool) -> list[dict[str, Any]]:
    emulator = emulator_of(request)
    own, other = ("parent", "child") if outbound else ("child", "parent")
    rows = emulator.store.execute(
        f'SELECT r.sys_id, r."type", rt.name, r.{quote(other)}, c.name FROM cmdb_rel_ci r '
        f'LEFT JOIN cmdb_rel_type rt ON rt.sys_id = r."type" '
        f"LEFT JOIN {quote(emulator.dictionary.root('cmdb_ci'))} c ON c.sys_id = r.{quote(other)} "
        f"WHERE r.{quote(own)} = ? ORDER BY r.rowid",
        [sys_id],
    ).fetchall()
    base = base_url(request)
    out = []
    for rel_id, type_id, type_name, target_id, target_name in rows:
        out.append(
            {
                "sys_id": rel_id,
                "type": {
                    "display_value": type_name or "",
                    "link": f"{base}/api/now/table/cmdb_rel_type/{type_id or ''}",
                    "value": type_id or "",
                },
                "target": {
                    "display_value": target_name or "",
                    "link": f"{base}/api/now/cmdb/instance/cmdb_ci/{target_id or ''}",
                    "value": target_id or "",
                },
            }
        )
    return out


# --- writes --------------------------------------------------------------------------------------------------------
def _add_relations(
    emulator: Emulator,
    session: Session,
    sys_id: str,
    outbound: list[tuple[str, str]],
    inbound: list[tuple[str, str]],
) -> None:
    if outbound or inbound:
        acl.check_write(emulator.dictionary, session, "cmdb_rel_ci", "create")
    wanted = [(sys_id, target, type_id) for type_id, target in outbound]
    wanted += [(target, sys_id, type_id) for type_id, target in inbound]
    for parent, child, type_id in wanted:
        if find_relation(emulator, parent, child, type_id) is None:
            emulator.platform.insert("cmdb_rel_ci", {"parent": parent, "child": child, "type": type_id}, session)


def _touch(emulator: Emulator, session: Session, record: dict[str, Any], source: str, values: dict[str, Any]) -> None:
    """Update a CI's attributes as the given source (discovery dates, source when it has none)."""
    concrete = record.get("sys_class_name") or "cmdb_ci"
    data = writable_values(emulator, concrete, values)
    now = glide_now()
    data["last_discovered"] = now
    if not record.get("discovery_source"):
        data["discovery_source"] = source
    if not record.get("first_discovered"):
        data["first_discovered"] = now
    emulator.platform.update(concrete, record["sys_id"], data, session)


# --- endpoints -----------------------------------------------------------------------------------------------------
@resource()
async def list_instances(request: Request) -> Response:
    emulator = emulator_of(request)
    class_name = _class_name(request)
    limit = int_param(request, "sysparm_limit", DEFAULT_LIMIT)
    offset = int_param(request, "sysparm_offset", 0)
    ctx = query_context(request, class_name)
    compiled = SqlBuilder(ctx).compile(parse(param(request, "sysparm_query") or ""))
    cls_sql, cls_params = class_filter(emulator.dictionary, class_name)
    renderer = Renderer(emulator.dictionary, emulator.store, base_url=base_url(request), tz=session_of(request).tz)
    plan = renderer.plan(class_name, ["sys_id", "name"], ctx)
    rows = select_rows(
        emulator.store,
        class_name,
        plan,
        f"{cls_sql} AND ({compiled.where})",
        [*cls_params, *compiled.params],
        compiled.order,
        limit,
        offset,
    )
    return json_response({"result": [plan.render(row) for row in rows]})


@resource()
async def get_instance(request: Request) -> Response:
    emulator = emulator_of(request)
    class_name = _class_name(request)
    sys_id = request.path_params["sys_id"]
    _existing_ci(emulator, class_name, sys_id)
    return json_response({"result": ci_result(request, sys_id)})


@resource()
async def create_instance(request: Request) -> Response:
    emulator = emulator_of(request)
    session = session_of(request)
    class_name = _class_name(request)
    acl.check_write(emulator.dictionary, session, class_name, "create")
    body = record_body(await read_json_body(request))
    source = _source(emulator, body)
    attributes = _attributes(body)
    outbound = _relations(emulator, body, "outbound_relations")
    inbound = _relations(emulator, body, "inbound_relations")
    identification = identify(emulator, class_name, attributes, rule=cmdb_api_rule(emulator.dictionary, class_name))
    if identification.error:
        code, message = identification.error
        raise bad_request(f"Identification failed: {code}", message)
    # This API creates in the class it is given: an identified CI of a more specific or unrelated class keeps it.
    decision = decide(
        emulator,
        class_name,
        attributes,
        identification.match,
        {"updateWithoutDowngrade": True, "updateWithoutSwitch": True},
    )
    if decision.operation != "INSERT":
        acl.check_write(emulator.dictionary, session, class_name, "write")
    with emulator.store.transaction():
        sys_id = commit_ci(emulator, session, decision, attributes, identification.match, source, glide_now())
        _add_relations(emulator, session, sys_id, outbound, inbound)
    return json_response({"result": ci_result(request, sys_id)}, 201)


@resource()
async def update_instance(request: Request) -> Response:
    emulator = emulator_of(request)
    session = session_of(request)
    class_name = _class_name(request)
    record = _existing_ci(emulator, class_name, request.path_params["sys_id"])
    acl.check_write(emulator.dictionary, session, class_name, "write")
    body = record_body(await read_json_body(request))
    source = _source(emulator, body)
    attributes = _attributes(body, required=True)
    _touch(emulator, session, record, source, attributes)
    return json_response({"result": ci_result(request, record["sys_id"])})


@resource()
async def add_relations(request: Request) -> Response:
    emulator = emulator_of(request)
    session = session_of(request)
    class_name = _class_name(request)
    record = _existing_ci(emulator, class_name, request.path_params["sys_id"])
    acl.check_write(emulator.dictionary, session, "cmdb_rel_ci", "create")
    body = record_body(await read_json_body(request))
    source = _source(emulator, body)
    outbound = _relations(emulator, body, "outbound_relations")
    inbound = _relations(emulator, body, "inbound_relations")
    if not outbound and not inbound:
        raise bad_request("No relations", "Give outbound_relations and/or inbound_relations")
    with emulator.store.transaction():
        _add_relations(emulator, session, record["sys_id"], outbound, inbound)
        _touch(emulator, session, record, source, {})
    return json_response({"result": ci_result(request, record["sys_id"])}, 201)


@resource()
async def delete_relation(request: Request) -> Response:
    emulator = emulator_of(request)
    session = session_of(request)
    class_name = _class_name(request)
    record = _existing_ci(emulator, class_name, request.path_params["sys_id"])
    rel_id = request.path_params["rel_sys_id"]
    relation = emulator.store.get("cmdb_rel_ci", rel_id)
    if relation is None or record["sys_id"] not in (relation.get("parent"), relation.get("child")):
        raise record_not_found()
    acl.check_write(emulator.dictionary, session, "cmdb_rel_ci", "delete")
    emulator.platform.delete("cmdb_rel_ci", rel_id, session)
    return empty_response(204)


ROUTES = [
    (prefix + suffix, endpoint, methods)
    for prefix in ("/api/now/cmdb/instance", "/api/now/{version}/cmdb/instance")
    for suffix, endpoint, methods in (
        ("/{class_name}", list_instances, ["GET"]),
        ("/{class_name}", create_instance, ["POST"]),
        ("/{class_name}/{sys_id}", get_instance, ["GET"]),
        ("/{class_name}/{sys_id}", update_instance, ["PUT", "PATCH"]),
        ("/{class_name}/{sys_id}/relation", add_relations, ["POST"]),
        ("/{class_name}/{sys_id}/relation/{rel_sys_id}", delete_relation, ["DELETE"]),
    )
]
