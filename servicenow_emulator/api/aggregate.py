"""The Aggregate API (reference §5.1): ``GET /api/now/[v1/]stats/{table}``, computed in SQL.

Filtering is the Table API's (``sysparm_query`` or name=value pairs, through the query engine), over the hierarchy
root table with the class filter. Aggregates: ``sysparm_count`` (``true``; pysnow's ``True`` too),
``sysparm_avg_fields``, ``sysparm_min_fields``, ``sysparm_max_fields``, ``sysparm_sum_fields`` (comma lists, dot-walks
allowed); ``sysparm_group_by`` (several fields), ``sysparm_having`` (``aggregate^field^operator^value``, comma
separated, ANDed), ``sysparm_order_by`` (``field``, ``COUNT``, ``AVG^field``..., each optionally ``^DESC``).

Shapes: without grouping ``{"result": {"stats": {...}}}``; grouped ``{"result": [{"stats": {...}, "groupby_fields":
[{"field", "value"}]}]}``. Every number is a string; averages have four decimals (the documented sample).

Behaviour choices on UNCONFIRMED points:

* ``sysparm_display_value`` changes only the group-by values: ``true`` puts the display value (choice label,
  referenced record's display field, table label for ``sys_class_name``) in ``value``; ``all`` keeps the stored value
  in ``value`` and adds ``display_value``. Stats stay raw.
* Groups are ordered by the explicit ``sysparm_order_by`` terms, then by each group-by field (references by their
  display value, as the documented sample's order suggests), empty values first.
* Unknown fields in the aggregate, group-by, having and order-by parameters are ignored, as the Table API ignores
  unknown fields; ``avg``/``sum`` apply to numeric fields only. An aggregate over no rows is ``""`` (count ``"0"``).
* ``count`` in ``sysparm_having`` counts the group's rows (``COUNT(*)``), like GlideAggregate's ``addHaving``.
* A sum beyond 64-bit integers is computed in floating point (exact digits are lost, never an error).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .. import acl
from ..dictionary import FieldDef
from ..errors import no_such_resource
from ..query import SqlBuilder, _Invalid, class_filter, parse
from ..render import display_string, raw_string
from ..store import quote
from .common import bool_param, display_param, emulator_of, json_response, resource, session_of
from .table import encoded_query_from_request, query_context, sql_limits

AGGREGATES = ("avg", "min", "max", "sum")
_HAVING_OPERATORS = {"=": "=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


def _list_param(request: Request, name: str) -> list[str]:
    values: list[str] = []
    for raw in request.query_params.getlist(name):
        values.extend(part.strip() for part in raw.split(",") if part.strip())
    return values


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


@resource()
async def stats(request: Request) -> Response:
    emulator = emulator_of(request)
    dictionary = emulator.dictionary
    table = request.path_params["table"]
    version = request.path_params.get("version", "")
    if version and version not in ("v1", "v2"):
        raise no_such_resource()
    emulator.platform.require_table(table)
    session = session_of(request)
    acl.check_list(dictionary, session, table)
    display = display_param(request)
    count = bool_param(request, "sysparm_count")

    ctx = query_context(request, table)
    builder = SqlBuilder(ctx)
    compiled = builder.compile(parse(encoded_query_from_request(request, table)))
    cls_sql, cls_params = class_filter(dictionary, table)
    where = f"{cls_sql} AND ({compiled.where})"
    params: list[Any] = [*cls_params, *compiled.params]

    def path(name: str) -> tuple[str, FieldDef] | None:
        try:
            expr, f, _ = builder.path(name)
        except _Invalid:
            return None
        return expr, f

    # SELECT list: group-by columns, then the aggregates, each remembered with how to format it.
    select: list[str] = []
    groups: list[tuple[str, FieldDef, str, int, int | None]] = []  # name, field, expr, raw column, display column
    for name in _list_param(request, "sysparm_group_by"):
        found = path(name)
        if found is None or any(g[0] == name for g in groups):
            continue
        expr, f = found
        if f.type == "boolean":
            expr = f"COALESCE({expr}, 0)"
        select.append(expr)
        raw_col, disp_col = len(select) - 1, None
        if f.type == "reference" and f.reference:
            select.append(builder.display_expr(expr, f.reference))
            disp_col = len(select) - 1
        groups.append((name, f, expr, raw_col, disp_col))

    aggregates: list[tuple[str, str, FieldDef | None, int]] = []  # kind, field name, field, column
    if count:
        select.append("COUNT(*)")
        aggregates.append(("count", "", None, len(select) - 1))
    for kind in AGGREGATES:
        for name in _list_param(request, f"sysparm_{kind}_fields"):
            found = path(name)
            if found is None or any(a[0] == kind and a[1] == name for a in aggregates):
                continue
            expr, f = found
            if kind in ("avg", "sum") and f.kind != "num":
                continue
            select.append(f"{kind.upper()}({expr})")
            aggregates.append((kind, name, f, len(select) - 1))

    having_sql: list[str] = []
    having_params: list[Any] = []
    for clause in _list_param(request, "sysparm_having"):
        parts = clause.split("^")
        if len(parts) != 4 or parts[0].lower() not in ("count", *AGGREGATES) or parts[2] not in _HAVING_OPERATORS:
            continue
        kind, name, operator, value = parts[0].lower(), parts[1], parts[2], parts[3]
        try:
            number = float(value)
        except ValueError:
            continue
        if kind == "count":
            having_sql.append(f"COUNT(*) {_HAVING_OPERATORS[operator]} ?")
        else:
            found = path(name)
            if found is None:
                continue
            having_sql.append(f"{kind.upper()}({found[0]}) {_HAVING_OPERATORS[operator]} ?")
        having_params.append(number)

    order_sql: list[str] = []
    if groups:
        for term in _list_param(request, "sysparm_order_by"):
            parts = term.split("^")
            descending = len(parts) > 1 and parts[-1].upper() == "DESC"
            if descending:
                parts = parts[:-1]
            direction = "DESC" if descending else "ASC"
            head = parts[0].upper() if parts else ""
            if head == "COUNT":
                order_sql.append(f"COUNT(*) {direction}")
            elif head.lower() in AGGREGATES and len(parts) > 1:
                found = path(parts[1])
                if found:
                    order_sql.append(f"{head}({found[0]}) {direction}")
            elif parts:
                found = path(parts[0])
                if found:
                    expr, f = found
                    if f.type == "reference" and f.reference:
                        expr = builder.display_expr(expr, f.reference)
                    order_sql.append(f"{expr}{' COLLATE NOCASE' if f.kind == 'str' else ''} {direction}")
        for _, f, expr, _, disp_col in groups:
            if disp_col is not None:
                order_sql.append(f"{select[disp_col]} COLLATE NOCASE ASC")
            order_sql.append(f"{expr}{' COLLATE NOCASE' if f.kind == 'str' else ''} ASC")

    root = dictionary.root(table)
    sql = f"SELECT {', '.join(select) or 'COUNT(*)'} FROM {quote(root)} t WHERE {where}"
    if groups:
        sql += " GROUP BY " + ", ".join(g[2] for g in groups)
        if having_sql:
            sql += " HAVING " + " AND ".join(having_sql)
            params += having_params
        sql += " ORDER BY " + ", ".join(order_sql)
    with sql_limits():
        try:
            rows = emulator.store.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "integer overflow" not in str(exc):
                raise
            # A sum beyond 64-bit integers: SQLite's TOTAL() adds in floating point instead of failing.
            rows = emulator.store.execute(sql.replace("SUM(", "TOTAL("), params).fetchall()

    def stats_of(row: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind, name, f, column in aggregates:
            value = row[column]
            if kind == "count":
                out["count"] = str(value or 0)
            elif kind == "avg":
                out.setdefault("avg", {})[name] = "" if value is None else f"{float(value):.4f}"
            elif kind == "sum":
                out.setdefault("sum", {})[name] = _number(value)
            else:
                assert f is not None
                out.setdefault(kind, {})[name] = raw_string(f, value)
        return out

    if not groups:
        return json_response({"result": {"stats": stats_of(rows[0]) if rows else {}}})
    tables = dictionary.tables
    result = []
    for row in rows:
        fields_out = []
        for name, f, _, raw_col, disp_col in groups:
            raw = row[raw_col]
            value = raw_string(f, raw)
            if disp_col is not None:
                shown = "" if row[disp_col] is None else str(row[disp_col])
            elif f.type == "sys_class_name":
                shown = tables[raw].label if raw in tables else value
            else:
                shown = display_string(f, raw, session.tz)
            if display == "true":
                fields_out.append({"field": name, "value": shown})
            elif display == "all":
                fields_out.append({"field": name, "value": value, "display_value": shown})
            else:
                fields_out.append({"field": name, "value": value})
        result.append({"stats": stats_of(row), "groupby_fields": fields_out})
    return json_response({"result": result})


ROUTES = [
    ("/api/now/stats/{table}", stats, ["GET"]),
    ("/api/now/{version}/stats/{table}", stats, ["GET"]),
]
