"""Record rendering: raw stored values -> the Table API's JSON shapes (reference §1.5).

Every scalar is a string. References take one of six shapes depending on ``sysparm_display_value`` and
``sysparm_exclude_reference_link``. With ``display_value=all`` every field is ``{display_value, value}``.
A plan is built once per request and applied to each row, so that large pages stay cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .dictionary import GLOBAL_DOMAIN, JOURNAL_TYPES, SECRET_TYPES, Dictionary, FieldDef
from .query import QueryContext, SqlBuilder, _Invalid
from .store import Store, quote
from .timeutil import to_display

Formatter = Callable[[Any, Any], Any]


def raw_string(f: FieldDef, value: Any) -> str:
    if value is None:
        return ""
    if f.type in SECRET_TYPES:
        return ""
    if f.type == "boolean":
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


# Date-time types whose display value is in the session time zone (dates and durations are not).
LOCAL_TIME_TYPES = frozenset({"glide_date_time", "due_date"})


def display_string(f: FieldDef, value: Any, tz: str) -> str:
    if value is None or f.type in SECRET_TYPES:
        return ""
    if f.choices:
        text = raw_string(f, value)
        return f.choice_label(text) or text
    if f.type == "boolean":
        return "true" if value else "false"
    if f.type in ("integer", "longint") and isinstance(value, int):
        return f"{value:,}"
    if f.type in LOCAL_TIME_TYPES:
        return to_display(str(value), tz)
    return raw_string(f, value)


def raw_function(f: FieldDef) -> Callable[[Any], str]:
    """``raw_string`` specialised for one field (the per-row hot path of large pages)."""
    if f.type in SECRET_TYPES:
        return lambda _raw: ""
    if f.type == "boolean":
        return lambda raw: "" if raw is None else ("true" if raw else "false")
    if f.storage == "TEXT":
        return lambda raw: "" if raw is None else raw if isinstance(raw, str) else raw_string(f, raw)
    if f.storage == "INTEGER":
        return lambda raw: "" if raw is None else str(raw) if isinstance(raw, int) else raw_string(f, raw)
    return lambda raw: raw_string(f, raw)


def display_function(f: FieldDef, tz: str) -> Callable[[Any], str]:
    """``display_string`` specialised for one field; it is ``raw_function(f)`` itself when they agree."""
    raw = raw_function(f)
    if f.type in SECRET_TYPES or f.type == "boolean":
        return raw
    if f.choices:
        labels = {value: label for value, label in reversed(f.choices)}  # the first label of a value wins

        def choice(value: Any) -> str:
            text = raw(value)
            return labels.get(text) or text

        return choice
    if f.type in ("integer", "longint"):
        return lambda value: "" if value is None else f"{value:,}" if isinstance(value, int) else raw(value)
    if f.type in LOCAL_TIME_TYPES and tz not in ("UTC", "GMT", ""):
        return lambda value: "" if value is None else to_display(str(value), tz)
    return raw


@dataclass
class Column:
    key: str
    field: FieldDef
    select: list[str]
    format: Formatter
    journal: bool = False


class RenderPlan:
    """The SELECT list and per-field formatters for one request."""

    def __init__(self, columns: list[Column]):
        self.columns = columns
        self.select_sql = ", ".join(expr for c in columns for expr in c.select) or "t.sys_id"
        self._widths = [len(c.select) for c in columns]
        self.journal_columns = [c for c in columns if c.journal]
        # (key, formatter, index of the value, whether the next column is its display value); columns
        # without a SELECT (constants) read index 0 and ignore it.
        self._steps: list[tuple[str, Formatter, int, bool]] = []
        index = 0
        for column, width in zip(columns, self._widths, strict=True):
            self._steps.append((column.key, column.format, index if width else 0, width == 2))
            index += width

    def render(self, row: Sequence[Any]) -> dict[str, Any]:
        return {key: fmt(row[i], row[i + 1]) if paired else fmt(row[i], None) for key, fmt, i, paired in self._steps}


class Renderer:
    """Builds render plans for a table, a field list and the display settings of a request."""

    def __init__(
        self,
        dictionary: Dictionary,
        store: Store,
        *,
        base_url: str,
        display_value: str = "false",
        exclude_reference_link: bool = False,
        tz: str = "UTC",
        link_style: str = "table",
    ):
        self.dictionary = dictionary
        self.store = store
        self.base_url = base_url.rstrip("/")
        self.display_value = display_value
        self.exclude_link = exclude_reference_link
        self.tz = tz
        self.link_style = link_style

    def default_fields(self, table: str) -> list[str]:
        return [*self.dictionary.fields(table), "sys_tags"]

    def plan(self, table: str, fields: list[str] | None, ctx: QueryContext) -> RenderPlan:
        builder = SqlBuilder(ctx)
        columns: list[Column] = []
        names = fields if fields else self.default_fields(table)
        seen: set[str] = set()
        for name in names:
            name = name.strip()
            if not name or name in seen:
                continue
            seen.add(name)
            if name == "sys_tags":
                columns.append(Column("sys_tags", FieldDef("sys_tags"), [], self._constant("")))
                continue
            if "." not in name:
                f = self.dictionary.field(table, name)
                if f is None:
                    continue  # unknown fields are silently ignored
                if f.type in JOURNAL_TYPES:
                    columns.append(Column(name, f, ["t.sys_id"], self._journal(f, table), journal=True))
                    continue
            try:
                expr, f, _ = builder.path(name)
            except _Invalid:
                continue
            select = [expr]
            if f.type == "reference" and f.reference and self.display_value != "false":
                select.append(builder.display_expr(expr, f.reference))
            columns.append(Column(name, f, select, self._formatter(f)))
        return RenderPlan(columns)

    def _constant(self, value: str) -> Formatter:
        if self.display_value == "all":
            return lambda _raw, _disp: {"display_value": value, "value": value}
        return lambda _raw, _disp: value

    def _formatter(self, f: FieldDef) -> Formatter:
        mode = self.display_value
        if f.type == "reference" and f.reference:
            return self._reference(f)
        if f.type == "sys_class_name" and mode != "false":
            tables = self.dictionary.tables

            def class_label(raw: Any) -> str:
                return tables[raw].label if raw in tables else raw_string(f, raw)

            if mode == "true":
                return lambda raw, _disp: class_label(raw)
            return lambda raw, _disp: {"display_value": class_label(raw), "value": raw_string(f, raw)}
        raw = raw_function(f)
        if mode == "false":
            return lambda value, _disp: raw(value)
        display = display_function(f, self.tz)
        if mode == "true":
            return lambda value, _disp: display(value)
        if display is raw:

            def same(value: Any, _disp: Any) -> dict[str, str]:
                text = raw(value)
                return {"display_value": text, "value": text}

            return same
        return lambda value, _disp: {"display_value": display(value), "value": raw(value)}

    def _link(self, target: str, sys_id: str) -> str:
        if self.link_style == "cmdb":
            return f"{self.base_url}/api/now/cmdb/instance/{target}/{sys_id}"
        return f"{self.base_url}/api/now/table/{target}/{sys_id}"

    def _reference(self, f: FieldDef) -> Formatter:
        target = f.reference or ""
        mode, exclude = self.display_value, self.exclude_link
        link = self._link

        def fmt(raw: Any, disp: Any) -> Any:
            value = "" if raw is None else str(raw)
            shown = "" if disp is None else str(disp)
            if disp is None and value == GLOBAL_DOMAIN:
                shown = GLOBAL_DOMAIN  # the global domain is not a row, but displays as "global"
            if mode == "false":
                if exclude or not value:
                    return value
                return {"link": link(target, value), "value": value}
            if mode == "true":
                if exclude or not value:
                    return shown
                return {"display_value": shown, "link": link(target, value)}
            if exclude or not value:
                return {"display_value": shown, "value": value}
            return {"display_value": shown, "link": link(target, value), "value": value}

        return fmt

    def _journal(self, f: FieldDef, table: str) -> Formatter:
        mode = self.display_value
        if mode == "false":
            return lambda _raw, _disp: ""
        elements = ["comments", "work_notes"] if f.type == "journal_list" else [f.name]

        def fmt(sys_id: Any, _disp: Any) -> Any:
            history = self.journal_history(str(sys_id), elements)
            return history if mode == "true" else {"display_value": history, "value": ""}

        return fmt

    def journal_history(self, sys_id: str, elements: list[str]) -> str:
        """Entries newest first, each headed ``<date> - <user display name> (<field label>)``."""
        marks = ", ".join("?" for _ in elements)
        rows = self.store.execute(
            f"SELECT j.sys_created_on, j.sys_created_by, j.element, j.value, u.name FROM sys_journal_field j "
            f"LEFT JOIN sys_user u ON u.user_name = j.sys_created_by "
            f"WHERE j.element_id = ? AND j.element IN ({marks}) ORDER BY j.sys_created_on DESC, j.rowid DESC",
            [sys_id, *elements],
        ).fetchall()
        labels = {"work_notes": "Work notes", "comments": "Additional comments"}
        parts = []
        for created_on, created_by, element, value, user_display in rows:
            header = (
                f"{to_display(created_on, self.tz)} - {user_display or created_by} ({labels.get(element, element)})"
            )
            parts.append(f"{header}\n{value}\n")
        return "\n".join(parts)


# Sort orders whose last row identifies where the next page starts: (key column, comparison).
_KEYSET_ORDERS: dict[tuple[str, ...], tuple[str, str]] = {
    (): ("t.rowid", ">"),
    ('t."sys_id" ASC',): ('t."sys_id"', ">"),  # pysnc always sends ORDERBYsys_id
    ('t."sys_id" DESC',): ('t."sys_id"', "<"),
}


def select_rows(
    store: Store,
    table: str,
    plan: RenderPlan,
    where: str,
    params: list[Any],
    order: list[str],
    limit: int | None,
    offset: int,
) -> list[Any]:
    """The rows of one page, each a tuple in ``plan``'s column order (possibly with one extra trailing value).

    Clients page with ``sysparm_offset``. An OFFSET makes SQLite step over every earlier row, so listing
    N rows page by page costs O(N^2). When the order has a unique key (the default order, or sys_id),
    the last key of each page is remembered, and the next page's request, if nothing was written in
    between, seeks to it instead: the same rows, in O(page).
    """
    root = store.dictionary.root(table)
    keyset = _KEYSET_ORDERS.get(tuple(order)) if limit is not None and limit > 1 else None
    order_sql = " ORDER BY " + ", ".join([*order, "t.rowid"])
    if keyset is None:
        sql = f"SELECT {plan.select_sql} FROM {quote(root)} t WHERE {where}{order_sql}"
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        elif offset:
            sql += f" LIMIT -1 OFFSET {int(offset)}"
        return store.execute(sql, params).fetchall()
    key_sql, comparison = keyset
    version = store.version()
    signature = ("page", root, where, tuple(params), tuple(order), version)
    start = store.memo_get((*signature, offset)) if offset else None
    sql = f"SELECT {plan.select_sql}, {key_sql} FROM {quote(root)} t WHERE ({where})"
    if start is None:
        sql += f"{order_sql} LIMIT {int(limit)} OFFSET {int(offset)}"
        rows = store.execute(sql, params).fetchall()
    else:
        sql += f" AND {key_sql} {comparison} ?{order_sql} LIMIT {int(limit)}"
        rows = store.execute(sql, [*params, start]).fetchall()
    if len(rows) == limit:
        store.memo_put((*signature, offset + len(rows)), rows[-1][-1])
    return rows
