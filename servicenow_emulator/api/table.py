"""The Table API (reference §1): list, read, create, replace, update, delete, on every table."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from .. import acl
from ..errors import bad_request, no_records_v1, no_such_resource, record_not_found
from ..query import QueryContext, SqlBuilder, class_filter, parse
from ..render import Renderer, select_rows
from ..store import Store, quote
from .common import (
    base_url,
    bool_param,
    display_param,
    empty_response,
    emulator_of,
    fields_param,
    int_param,
    json_response,
    param,
    read_json_body,
    record_body,
    resource,
    session_of,
    wants_xml,
    xml_response,
)

DEFAULT_LIMIT = 10000
_SQL_LIMITS = (
    "too many SQL variables",
    "Expression tree is too large",
    "parser stack overflow",
    "too many",
    "pattern too complex",  # a LIKE value longer than SQLite's 50,000-byte pattern limit
)
_RESERVED_PARAMS = ("sysparm_", "x-sn-apikey", "api_version")


def _version(request: Request) -> str:
    version = request.path_params.get("version", "")
    if version and version not in ("v1", "v2"):
        raise no_such_resource()
    return version or "v2"


def query_context(request: Request, table: str) -> QueryContext:
    emulator = emulator_of(request)
    session = session_of(request)
    return QueryContext(
        dictionary=emulator.dictionary,
        table=table,
        user_sys_id=session.user_sys_id,
        user_name=session.user_name,
        user_groups=session.groups,
        tz=session.tz,
        invalid_returns_no_rows=emulator.settings.flag("glide.invalid_query.returns_no_rows"),
    )


def renderer(request: Request, *, link_style: str = "table") -> Renderer:
    emulator = emulator_of(request)
    return Renderer(
        emulator.dictionary,
        emulator.store,
        base_url=base_url(request),
        display_value=display_param(request),
        exclude_reference_link=bool_param(request, "sysparm_exclude_reference_link"),
        tz=session_of(request).tz,
        link_style=link_style,
    )


def encoded_query_from_request(request: Request, table: str) -> str:
    """``sysparm_query``, or the name=value shorthand when it is absent (the two do not combine)."""
    query = param(request, "sysparm_query")
    if query is not None:
        return query
    emulator = emulator_of(request)
    terms = []
    for name, value in request.query_params.multi_items():
        if name.startswith(_RESERVED_PARAMS):
            continue
        f = emulator.dictionary.field(table, name.split(".")[0])
        if f is None:
            # Unknown parameters are ignored (clients leak unrelated ones between requests).
            continue
        if f.choices and not any(value == v for v, _ in f.choices):
            value = f.choice_value_for_label(value) or value
        terms.append(f"{name}={value.replace('^', '^^')}")  # a value's caret is literal
    return "^".join(terms)


def fetch_rows(
    request: Request,
    table: str,
    encoded: str,
    *,
    fields: list[str] | None,
    limit: int | None,
    offset: int,
    count: bool,
    link_style: str = "table",
    extra_where: tuple[str, list[Any]] | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """Run a query and render its rows: the one read path shared by the list resources."""
    emulator = emulator_of(request)
    ctx = query_context(request, table)
    builder = SqlBuilder(ctx)
    compiled = builder.compile(parse(encoded))
    cls_sql, cls_params = class_filter(emulator.dictionary, table)
    where = f"{cls_sql} AND ({compiled.where})"
    params = [*cls_params, *compiled.params]
    if extra_where:
        where += f" AND ({extra_where[0]})"
        params += extra_where[1]
    total = None
    plan = renderer(request, link_style=link_style).plan(table, fields, ctx)
    with sql_limits():
        if count:
            emulator.stats.count_queries += 1
            total = count_rows(emulator.store, emulator.dictionary.root(table), where, params)
        rows = select_rows(emulator.store, table, plan, where, params, compiled.order, limit, offset)
    return [plan.render(row) for row in rows], total


@contextmanager
def sql_limits() -> Iterator[None]:
    """SQLite's own limits (variables, expression depth, LIKE pattern length) hit by a query: 400 *Invalid
    query*, a query no instance would run either."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if not any(limit_hit in str(exc) for limit_hit in _SQL_LIMITS):
            raise
        raise bad_request("Invalid query", "The encoded query is too large or too deeply nested") from None


def count_rows(store: Store, root: str, where: str, params: list[Any]) -> int:
    """``X-Total-Count``: the count(*) of a query, remembered until the next write (pages repeat it)."""
    key = ("count", root, where, tuple(params), store.version())
    total = store.memo_get(key)
    if total is None:
        total = store.execute(f"SELECT COUNT(*) FROM {quote(root)} t WHERE {where}", params).fetchone()[0]
        store.memo_put(key, total)
    return total


def link_header(request: Request, total: int | None, limit: int, offset: int, *, page_rows: int = 0) -> str:
    """first/prev/next/last, absolute, keeping the caller's other parameters (prev may go negative).

    ``next`` is left out on the last page (UNCONFIRMED; the reference's open question). Without a count
    (``sysparm_no_count``, ``total`` None) the last page is unknown: ``last`` is left out, and ``next`` is
    sent when this page came back full (``page_rows == limit``) (UNCONFIRMED).
    """
    base = f"{base_url(request)}{request.url.path}"
    others = [(k, v) for k, v in request.query_params.multi_items() if k not in ("sysparm_offset", "sysparm_limit")]

    def url(at: int) -> str:
        return f"{base}?{urlencode([*others, ('sysparm_limit', str(limit)), ('sysparm_offset', str(at))])}"

    # The platform sends prev even on the first page, where its offset is negative (observed on PDIs).
    links = [f'<{url(0)}>;rel="first"', f'<{url(offset - limit)}>;rel="prev"']
    more = offset + limit < total if total is not None else page_rows >= limit
    if limit and more:
        links.append(f'<{url(offset + limit)}>;rel="next"')
    if total is not None:
        last = max(0, (total - 1) // limit * limit) if limit else 0
        links.append(f'<{url(last)}>;rel="last"')
    return ",".join(links)


@resource()
async def list_records(request: Request) -> Response:
    emulator = emulator_of(request)
    table = request.path_params["table"]
    version = _version(request)
    emulator.platform.require_table(table)
    acl.check_list(emulator.dictionary, session_of(request), table)
    xml = wants_xml(request)
    limit = int_param(request, "sysparm_limit", DEFAULT_LIMIT)
    offset = int_param(request, "sysparm_offset", 0)
    no_count = bool_param(request, "sysparm_no_count")
    suppress_links = bool_param(request, "sysparm_suppress_pagination_header")
    rows, total = fetch_rows(
        request,
        table,
        encoded_query_from_request(request, table),
        fields=fields_param(request),
        limit=limit,
        offset=offset,
        count=not no_count,
    )
    per_row = emulator.faults.config.latency_per_row_ms
    if per_row and rows:
        await asyncio.sleep(per_row * len(rows) / 1000)
    if version == "v1" and not rows:
        raise no_records_v1()
    headers: dict[str, str] = {}
    if total is not None:
        headers["X-Total-Count"] = str(total)
    # sysparm_no_count drops X-Total-Count only; sysparm_suppress_pagination_header drops Link (§1.2).
    if not suppress_links:
        headers["Link"] = link_header(request, total, limit, offset, page_rows=len(rows))
    if xml:
        return xml_response({"result": rows}, headers=headers)
    return json_response({"result": rows}, headers=headers)


def read_one(request: Request, table: str, sys_id: str, *, link_style: str = "table") -> dict[str, Any] | None:
    rows, _ = fetch_rows(
        request,
        table,
        "",
        fields=fields_param(request),
        limit=1,
        offset=0,
        count=False,
        link_style=link_style,
        extra_where=("t.sys_id = ?", [sys_id]),
    )
    return rows[0] if rows else None


@resource()
async def get_record(request: Request) -> Response:
    emulator = emulator_of(request)
    table, sys_id = request.path_params["table"], request.path_params["sys_id"]
    _version(request)
    emulator.platform.require_table(table)
    acl.check_read_one(emulator.dictionary, session_of(request), table)
    xml = wants_xml(request)
    # Query, limit and offset are ignored here: clients leak them from earlier list requests.
    row = read_one(request, table, sys_id)
    if row is None:
        raise record_not_found()
    return xml_response({"result": row}) if xml else json_response({"result": row})


def _write_options(request: Request) -> tuple[bool, bool]:
    """Check a write's parameters and Accept before anything is written: (display_input, xml)."""
    renderer(request)  # sysparm_display_value and sysparm_exclude_reference_link
    return bool_param(request, "sysparm_input_display_value"), wants_xml(request)


def _write_response(
    request: Request, table: str, sys_id: str, status: int, headers: dict[str, str] | None = None, *, xml: bool = False
) -> Response:
    if request.headers.get("x-no-response-body", "").lower() == "true":
        return empty_response(status, headers)
    row = read_one(request, table, sys_id)
    if xml:
        return xml_response({"result": row}, status, headers)
    return json_response({"result": row}, status, headers)


@resource()
async def create_record(request: Request) -> Response:
    emulator = emulator_of(request)
    table = request.path_params["table"]
    _version(request)
    emulator.platform.require_table(table)
    acl.check_write(emulator.dictionary, session_of(request), table, "create")
    display_input, xml = _write_options(request)
    values = record_body(await read_json_body(request))
    record = emulator.platform.insert(table, values, session_of(request), display_input=display_input)
    location = f"{base_url(request)}/api/now/table/{table}/{record['sys_id']}"
    return _write_response(request, table, record["sys_id"], 201, {"Location": location}, xml=xml)


def _require_writable(request: Request, table: str, sys_id: str, operation: str) -> None:
    """404 when the record is missing or hidden from the user, else the write ACL's 403 when it applies."""
    emulator = emulator_of(request)
    session = session_of(request)
    if emulator.platform.get(table, sys_id) is None or not acl.allowed(emulator.dictionary, session, table, "read"):
        raise record_not_found()
    acl.check_write(emulator.dictionary, session, table, operation)


@resource()
async def update_record(request: Request) -> Response:
    emulator = emulator_of(request)
    table, sys_id = request.path_params["table"], request.path_params["sys_id"]
    _version(request)
    emulator.platform.require_table(table)
    session = session_of(request)
    _require_writable(request, table, sys_id, "write")
    display_input, xml = _write_options(request)
    values = record_body(await read_json_body(request))
    emulator.platform.update(table, sys_id, values, session, display_input=display_input)
    return _write_response(request, table, sys_id, 200, xml=xml)


@resource()
async def delete_record(request: Request) -> Response:
    emulator = emulator_of(request)
    table, sys_id = request.path_params["table"], request.path_params["sys_id"]
    _version(request)
    emulator.platform.require_table(table)
    session = session_of(request)
    _require_writable(request, table, sys_id, "delete")
    emulator.platform.delete(table, sys_id, session)
    return empty_response(204)


ROUTES = [
    ("/api/now/table/{table}", list_records, ["GET", "HEAD"]),
    ("/api/now/{version}/table/{table}", list_records, ["GET", "HEAD"]),
    ("/api/now/table/{table}", create_record, ["POST"]),
    ("/api/now/{version}/table/{table}", create_record, ["POST"]),
    ("/api/now/table/{table}/{sys_id}", get_record, ["GET", "HEAD"]),
    ("/api/now/{version}/table/{table}/{sys_id}", get_record, ["GET", "HEAD"]),
    ("/api/now/table/{table}/{sys_id}", update_record, ["PUT", "PATCH"]),
    ("/api/now/{version}/table/{table}/{sys_id}", update_record, ["PUT", "PATCH"]),
    ("/api/now/table/{table}/{sys_id}", delete_record, ["DELETE"]),
    ("/api/now/{version}/table/{table}/{sys_id}", delete_record, ["DELETE"]),
]
