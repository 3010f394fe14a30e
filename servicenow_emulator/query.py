"""The encoded-query engine: parse ``sysparm_query`` and translate it to SQL.

Grammar (reference §1.3): conditions ``<field><OPERATOR><value>`` joined by ``^`` (AND), ``^OR`` (OR with
the previous condition, binding tighter than AND) and ``^NQ`` (a new query ORed with the previous block);
``ORDERBY``/``ORDERBYDESC`` terms sort. ``^^`` is a literal caret inside a value. Filtering, counting and
paging happen in SQLite; no table is loaded into Python.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from .dictionary import SECRET_TYPES, Dictionary, FieldDef
from .store import quote
from .timeutil import RELATIVE_UNITS, evaluate_js, parse_glide, relative_moment

log = logging.getLogger("servicenow_emulator.query")

# Longest first, so that ``NOT LIKE`` wins over ``LIKE`` and ``>=`` over ``>``.
OPERATORS = sorted(
    [
        "=", "!=", ">", ">=", "<", "<=", "IN", "NOT IN", "LIKE", "NOT LIKE", "STARTSWITH", "ENDSWITH",
        "ISEMPTY", "ISNOTEMPTY", "EMPTYSTRING", "ANYTHING", "BETWEEN", "SAMEAS", "NSAMEAS", "ON", "NOTON",
        "DATEPART", "RELATIVEGT", "RELATIVELT", "RELATIVEGE", "RELATIVELE", "RELATIVEEE", "MORETHAN",
        "LESSTHAN", "GT_FIELD", "LT_FIELD", "GT_OR_EQUALS_FIELD", "LT_OR_EQUALS_FIELD", "DYNAMIC",
        "IN_HIERARCHY", "INSTANCEOF", "VALCHANGES", "CHANGESFROM", "CHANGESTO",
    ],
    key=len,
    reverse=True,
)  # fmt: skip
_FIELD_RE = re.compile(r"[a-z0-9_.]+")
# A dot-walk of up to 9 references (10 names); longer paths are invalid fields (ignored, like unknown ones).
MAX_PATH_SEGMENTS = 10
# IN lists longer than this travel as one JSON array parameter.
_MANY = 200
_SYS_ID_RE = re.compile(r"^[0-9a-f]{32}$")

# Dynamic filter options (sys_filter_option_dynamic) that clients use.
DYNAMIC_ME = "90d1921e5f510100a9ad2572f2b477fe"
DYNAMIC_MY_GROUPS = "d6435e965f510100a9ad2572f2b47744"


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: str


@dataclass
class ParsedQuery:
    """NQ blocks -> AND groups -> OR alternatives, plus sort terms."""

    blocks: list[list[list[Condition]]] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)
    # Terms that could not be read at all (no operator): treated like invalid fields.
    malformed: list[str] = field(default_factory=list)


def split_terms(encoded: str) -> list[str]:
    """Split on ``^`` with ``^^`` as an escaped literal caret."""
    terms: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(encoded):
        ch = encoded[i]
        if ch == "^":
            if i + 1 < len(encoded) and encoded[i + 1] == "^":
                current.append("^")
                i += 2
                continue
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    terms.append("".join(current))
    return terms


def parse_condition(term: str) -> Condition | None:
    m = _FIELD_RE.match(term)
    if not m:
        return None
    name = m.group(0)
    rest = term[m.end() :]
    for op in OPERATORS:
        if rest.startswith(op):
            return Condition(name, op, rest[len(op) :])
    return None


def parse(encoded: str) -> ParsedQuery:
    parsed = ParsedQuery()
    block: list[list[Condition]] = []
    for raw_term in split_terms(encoded or ""):
        term = raw_term.strip("\n")
        if not term or term == "EQ":
            continue
        if term.startswith("ORDERBYDESC"):
            parsed.order.append((term[len("ORDERBYDESC") :], True))
            continue
        if term.startswith("ORDERBY"):
            parsed.order.append((term[len("ORDERBY") :], False))
            continue
        if term.startswith("GROUPBY") or term.startswith("RLQUERY") or term == "ENDRLQUERY":
            continue
        is_or = False
        if term.startswith("NQ"):
            if block:
                parsed.blocks.append(block)
            block = []
            term = term[2:]
        elif term.startswith("OR") and block:
            is_or = True
            term = term[2:]
        cond = parse_condition(term)
        if cond is None:
            parsed.malformed.append(term)
            # Keep the group shape: a malformed term is an invalid condition.
            cond = Condition("", "INVALID", term)
        if is_or:
            block[-1].append(cond)
        else:
            block.append([cond])
    if block:
        parsed.blocks.append(block)
    return parsed


@dataclass
class QueryContext:
    """What a query needs besides its text: the table, the session and the instance setting."""

    dictionary: Dictionary
    table: str
    user_sys_id: str = ""
    user_name: str = ""
    user_groups: tuple[str, ...] = ()
    tz: str = "UTC"
    invalid_returns_no_rows: bool = False


@dataclass
class Compiled:
    where: str
    params: list[Any]
    order: list[str]
    order_params: list[Any]
    invalid: list[str]


class _Invalid(Exception):
    """A condition on an unknown field, or one the emulator cannot evaluate."""


class SqlBuilder:
    """Translates parsed queries and field paths into SQL over the hierarchy tables."""

    def __init__(self, ctx: QueryContext):
        self.ctx = ctx
        self.dictionary = ctx.dictionary
        self._alias = 0

    def _next_alias(self) -> str:
        self._alias += 1
        return f"s{self._alias}"

    # --- field paths ---------------------------------------------------------------------------
    def path(self, path: str, base_alias: str = "t", table: str | None = None) -> tuple[str, FieldDef, str]:
        """SQL expression, field definition and owning table for a (possibly dot-walked) field."""
        table = table or self.ctx.table
        segments = path.split(".")
        if len(segments) > MAX_PATH_SEGMENTS:
            raise _Invalid(path)  # each hop nests a subquery; SQLite's parser has a depth limit
        expr = ""
        ref_expr = ""
        for index, segment in enumerate(segments):
            f = self.dictionary.field(table, segment)
            if f is None or f.type in ("journal", "journal_input", "journal_list"):
                raise _Invalid(path)
            if index == 0:
                expr = f"{base_alias}.{quote(segment)}"
            else:
                alias = self._next_alias()
                root = self.dictionary.root(table)
                expr = f"(SELECT {alias}.{quote(segment)} FROM {quote(root)} {alias} WHERE {alias}.sys_id = {ref_expr})"
            if index < len(segments) - 1:
                if f.type != "reference" or not f.reference:
                    raise _Invalid(path)
                ref_expr = expr
                table = f.reference
        return expr, f, table

    def display_expr(self, ref_expr: str, target: str) -> str:
        """The display value of the record a reference expression points at."""
        display = self.dictionary.display_field(target) or "sys_id"
        alias = self._next_alias()
        root = self.dictionary.root(target)
        return f"(SELECT {alias}.{quote(display)} FROM {quote(root)} {alias} WHERE {alias}.sys_id = {ref_expr})"

    # --- values --------------------------------------------------------------------------------
    def typed(self, f: FieldDef, value: str) -> Any:
        """Coerce a query value to the field's storage type; raise _NoMatch when it can never match.

        A value it cannot read at all raises (JsValueError, OverflowError...): ``condition`` makes that term
        invalid."""
        if value.startswith("javascript:"):
            value = evaluate_js(value, tz=self.ctx.tz, user_sys_id=self.ctx.user_sys_id, user_name=self.ctx.user_name)
        kind = f.kind
        if kind == "num":
            label_value = f.choice_value_for_label(value) if f.choices else None
            text = (label_value if label_value is not None else value).strip()
            try:
                number = int(text)
            except ValueError:
                try:
                    real = float(text)
                except ValueError:
                    raise _NoMatch from None
                if math.isnan(real):
                    raise _NoMatch from None
                # 1e400 is beyond every stored number: the largest finite REAL compares the same way (and,
                # unlike inf, survives the JSON parameter of long IN lists).
                return max(-sys.float_info.max, min(real, sys.float_info.max))
            return bindable(number)
        if kind == "bool":
            lowered = value.lower()
            if lowered in ("true", "1", "yes"):
                return 1
            if lowered in ("false", "0", "no"):
                return 0
            raise _NoMatch
        if kind == "date":
            if not value:
                return value
            # Literals are internal (UTC) values; javascript: helpers have already returned UTC.
            normalised = parse_glide(value, date_only=f.type == "glide_date", tz="UTC")
            return normalised if normalised is not None else value
        return value

    # --- conditions ------------------------------------------------------------------------------
    def condition(self, cond: Condition) -> tuple[str, list[Any]]:
        if cond.op == "INVALID" or cond.op in ("VALCHANGES", "CHANGESFROM", "CHANGESTO"):
            raise _Invalid(cond.value or cond.field)
        expr, f, _ = self.path(cond.field)
        if f.type in SECRET_TYPES and cond.op not in ("ISEMPTY", "ISNOTEMPTY", "ANYTHING"):
            # Secrets are stored one-way: no value a client sends can match them (and none may leak).
            return "0", []
        try:
            sql, params = self._condition(expr, f, cond)
            return sql, [bindable(p) for p in params]
        except _NoMatch:
            return "0", []
        except _Invalid:
            raise
        except Exception as exc:
            # Reference §1.4: an invalid part of a query is ignored (or, under
            # glide.invalid_query.returns_no_rows, returns no rows), never an HTTP error. A value the term
            # cannot be read with (a bad number, a date outside years 1-9999, a helper that cannot be
            # evaluated) makes the term invalid, whichever operator and value parser hit it.
            log.debug("invalid query term %s%s%s: %r", cond.field, cond.op, cond.value, exc)
            raise _Invalid(cond.field) from exc

    def _text_expr(self, expr: str, f: FieldDef) -> str:
        """References match LIKE/STARTSWITH on their display value, as the UI offers."""
        if f.type == "reference" and f.reference:
            return self.display_expr(expr, f.reference)
        return expr

    def _condition(self, expr: str, f: FieldDef, cond: Condition) -> tuple[str, list[Any]]:
        op, value = cond.op, cond.value
        kind = f.kind
        nocase = " COLLATE NOCASE" if kind == "str" else ""
        empty = f"({expr} IS NULL OR {expr} = '')"
        if op == "ANYTHING":
            return "1", []
        if op == "ISEMPTY":
            return empty, []
        if op == "ISNOTEMPTY":
            return f"NOT {empty}", []
        if op == "EMPTYSTRING":
            return f"{expr} = ''", []
        if op in ("=", "!="):
            if value == "":
                return (empty, []) if op == "=" else (f"NOT {empty}", [])
            if kind == "ref" and not _SYS_ID_RE.match(value) and f.reference and not value.startswith("javascript:"):
                target = self.display_expr(expr, f.reference)
                sql = f"{target} = ? COLLATE NOCASE"
            elif kind == "bool":
                typed = self.typed(f, value)
                sql = f"COALESCE({expr}, 0) = ?"
                return (sql, [typed]) if op == "=" else (f"NOT ({sql})", [typed])
            else:
                sql = f"{expr} = ?{nocase}"
            typed = self.typed(f, value)
            if op == "=":
                return sql, [typed]
            # ServiceNow's != also returns rows where the field is empty.
            return f"({expr} IS NULL OR NOT ({sql}))", [typed]
        if op in (">", ">=", "<", "<="):
            return f"{expr} {op} ?", [self.typed(f, value)]
        if op in ("IN", "NOT IN"):
            items = [item for item in value.split(",")]
            typed_items: list[Any] = []
            for item in items:
                try:
                    typed_items.append(self.typed(f, item))
                except _NoMatch:
                    continue
            if not typed_items:
                return ("0", []) if op == "IN" else ("1", [])
            params: list[Any] = typed_items
            if len(typed_items) > _MANY:
                # One JSON parameter instead of thousands (SQLite caps the number of variables).
                marks, params = "SELECT value FROM json_each(?)", [json.dumps(typed_items)]
            else:
                marks = ", ".join("?" for _ in typed_items)
            sql = f"{expr} COLLATE NOCASE IN ({marks})" if nocase else f"{expr} IN ({marks})"
            if op == "IN":
                return sql, params
            return f"({expr} IS NULL OR NOT ({sql}))", params
        if op in ("LIKE", "NOT LIKE", "STARTSWITH", "ENDSWITH"):
            text = self._text_expr(expr, f)
            escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = {
                "LIKE": f"%{escaped}%",
                "NOT LIKE": f"%{escaped}%",
                "STARTSWITH": f"{escaped}%",
                "ENDSWITH": f"%{escaped}",
            }[op]
            sql = f"{text} LIKE ? ESCAPE '\\'"
            if op == "NOT LIKE":
                return f"({text} IS NULL OR NOT ({sql}))", [pattern]
            return sql, [pattern]
        if op == "BETWEEN":
            low, sep, high = value.partition("@")
            if not sep:
                raise _Invalid(cond.field)
            return f"({expr} >= ? AND {expr} <= ?)", [self.typed(f, low), self.typed(f, high)]
        if op in ("ON", "NOTON"):
            parts = value.split("@")
            if len(parts) != 3:
                raise _Invalid(cond.field)
            low, high = self.typed(f, parts[1]), self.typed(f, parts[2])
            sql = f"({expr} >= ? AND {expr} <= ?)"
            return (sql, [low, high]) if op == "ON" else (f"({expr} IS NULL OR NOT {sql})", [low, high])
        if op in ("SAMEAS", "NSAMEAS", "GT_FIELD", "LT_FIELD", "GT_OR_EQUALS_FIELD", "LT_OR_EQUALS_FIELD"):
            other, _, _ = self.path(value)
            sql_op = {
                "SAMEAS": "IS",
                "NSAMEAS": "IS NOT",
                "GT_FIELD": ">",
                "LT_FIELD": "<",
                "GT_OR_EQUALS_FIELD": ">=",
                "LT_OR_EQUALS_FIELD": "<=",
            }[op]
            return f"{expr} {sql_op} {other}", []
        if op.startswith("RELATIVE"):
            # fieldRELATIVEGT@hour@ago@1
            parts = value.split("@")
            if len(parts) != 4 or parts[1] not in RELATIVE_UNITS:
                raise _Invalid(cond.field)
            moment = relative_moment(parts[1], parts[2], int(parts[3]))
            if op == "RELATIVEEE":
                return f"substr({expr}, 1, 10) = substr(?, 1, 10)", [moment]
            sql_op = {"RELATIVEGT": ">", "RELATIVELT": "<", "RELATIVEGE": ">=", "RELATIVELE": "<="}[op]
            return f"{expr} {sql_op} ?", [moment]
        if op in ("MORETHAN", "LESSTHAN"):
            # updatedMORETHANcreated@hour@after@1: more than 1 hour after created.
            parts = value.split("@")
            if len(parts) != 4:
                raise _Invalid(cond.field)
            other, _, _ = self.path(parts[0])
            if parts[1] not in RELATIVE_UNITS:
                raise _Invalid(cond.field)
            days = RELATIVE_UNITS[parts[1]].total_seconds() / 86400 * int(parts[3])
            diff = f"(julianday({expr}) - julianday({other}))"
            if parts[2] == "before":
                diff = f"(julianday({other}) - julianday({expr}))"
            return (f"{diff} > ?" if op == "MORETHAN" else f"{diff} < ?"), [days]
        if op == "DATEPART":
            return self._datepart(expr, value, cond)
        if op == "DYNAMIC":
            if value == DYNAMIC_ME:
                return f"{expr} = ?", [self.ctx.user_sys_id]
            if value == DYNAMIC_MY_GROUPS:
                groups = list(self.ctx.user_groups) or [""]
                return f"{expr} IN ({', '.join('?' for _ in groups)})", groups
            raise _Invalid(cond.field)
        if op == "INSTANCEOF":
            if value not in self.dictionary.tables:
                return "0", []
            classes = self.dictionary.descendants(value)
            return f"{expr} IN ({', '.join('?' for _ in classes)})", classes
        if op == "IN_HIERARCHY":
            if not f.reference or "parent" not in self.dictionary.fields(f.reference):
                raise _Invalid(cond.field)
            root = quote(self.dictionary.root(f.reference))
            cte = (
                f"{expr} IN (WITH RECURSIVE h(id) AS "
                f"(SELECT ? UNION SELECT c.sys_id FROM {root} c JOIN h ON c.parent = h.id) SELECT id FROM h)"
            )
            return cte, [value]
        raise _Invalid(cond.field)

    def _datepart(self, expr: str, value: str, cond: Condition) -> tuple[str, list[Any]]:
        m = re.search(r"gs\.datePart\(\s*'(\w+)'\s*,\s*'([^']*)'\s*,\s*'(\w+)'\s*\)", value)
        if not m:
            raise _Invalid(cond.field)
        unit, wanted, comparison = m.group(1).lower(), m.group(2).lower(), m.group(3).upper()
        days = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
        months = [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ]
        formats = {
            "dayofweek": "%w",
            "month": "%m",
            "year": "%Y",
            "hour": "%H",
            "minute": "%M",
            "dayofmonth": "%d",
            "week": "%W",
        }
        if unit == "quarter":
            part = f"((CAST(strftime('%m', {expr}) AS INTEGER) + 2) / 3)"
        elif unit in formats:
            part = f"CAST(strftime('{formats[unit]}', {expr}) AS INTEGER)"
        else:
            raise _Invalid(cond.field)
        if unit == "dayofweek" and wanted in days:
            number = days.index(wanted)
        elif unit == "month" and wanted in months:
            number = months.index(wanted) + 1
        else:
            number = int(wanted)
        sql_op = {"EE": "=", "GT": ">", "LT": "<", "GE": ">=", "LE": "<=", "NE": "!="}.get(comparison)
        if sql_op is None:
            raise _Invalid(cond.field)
        return f"{part} {sql_op} ?", [number]

    # --- whole queries ---------------------------------------------------------------------------
    def _equality_set(self, group: list[Condition]) -> tuple[str, list[Any]] | None:
        """``f=a^ORf=b^ORf=c`` as ``f IN (a, b, c)``: the same rows, but linear for SQLite's planner, whose
        OR optimisation is quadratic in the number of terms (clients chain thousands of them)."""
        if len(group) < 2 or any(c.op != "=" or c.field != group[0].field or c.value == "" for c in group):
            return None
        try:
            expr, f, _ = self.path(group[0].field)
        except _Invalid:
            return None
        if f.kind not in ("num", "str", "date", "ref") or f.type in SECRET_TYPES:
            return None
        if f.kind == "ref" and not all(_SYS_ID_RE.match(c.value) for c in group):
            return None  # display-value matches take the general path
        values: list[Any] = []
        for cond in group:
            try:
                values.append(self.typed(f, cond.value))
            except _NoMatch:
                continue
            except Exception:
                return None  # the general path decides what an unreadable value means
        if not values:
            return "0", []
        if len(values) > _MANY:
            marks, params = "SELECT value FROM json_each(?)", [json.dumps(values)]
        else:
            marks, params = ", ".join("?" for _ in values), values
        return (f"{expr} COLLATE NOCASE IN ({marks})" if f.kind == "str" else f"{expr} IN ({marks})"), params

    def compile(self, parsed: ParsedQuery) -> Compiled:
        invalid: list[str] = []
        block_sql: list[str] = []
        params: list[Any] = []
        for block in parsed.blocks:
            group_sql: list[str] = []
            for group in block:
                alternatives: list[str] = []
                merged = self._equality_set(group)
                if merged is not None:
                    group_sql.append(merged[0])
                    params.extend(merged[1])
                    continue
                for cond in group:
                    try:
                        sql, p = self.condition(cond)
                    except _Invalid:
                        invalid.append(cond.field or cond.value)
                        continue
                    alternatives.append(sql)
                    params.extend(p)
                if alternatives:
                    group_sql.append(_join(alternatives, "OR"))
            block_sql.append(_join(group_sql, "AND") if group_sql else "1")
        where = _join(block_sql, "OR") if block_sql else "1"
        if invalid and self.ctx.invalid_returns_no_rows:
            where, params = "0", []
        order: list[str] = []
        order_params: list[Any] = []
        for name, descending in parsed.order:
            try:
                expr, f, _ = self.path(name)
            except _Invalid:
                invalid.append(name)
                continue
            if f.type in SECRET_TYPES:
                continue
            if f.type == "reference" and f.reference:
                expr = self.display_expr(expr, f.reference)
            collate = " COLLATE NOCASE" if f.kind == "str" else ""
            order.append(f"{expr}{collate} {'DESC' if descending else 'ASC'}")
        return Compiled(where=where, params=params, order=order, order_params=order_params, invalid=invalid)


def _join(terms: list[str], op: str) -> str:
    """``(a op b op ...)`` as a balanced tree, so that thousands of terms stay within SQLite's depth limit."""
    if len(terms) <= 8:
        return "(" + f" {op} ".join(terms) + ")"
    middle = len(terms) // 2
    return f"({_join(terms[:middle], op)} {op} {_join(terms[middle:], op)})"


def bindable(value: Any) -> Any:
    """A parameter SQLite can bind: an integer beyond 64 bits becomes a REAL, which still compares
    numerically (the largest finite one when it is beyond a double too)."""
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return math.copysign(sys.float_info.max, value) if abs(value) > sys.float_info.max else float(value)
    return value


class _NoMatch(Exception):
    """A value that can never match the field (e.g. ``priority=abc``)."""


def class_filter(dictionary: Dictionary, table: str, alias: str = "t") -> tuple[str, list[str]]:
    """Restrict a hierarchy table to ``table`` and the classes extending it."""
    root = dictionary.root(table)
    if table == root and not dictionary.table(root).extensible:
        return "1", []
    if table == root:
        return "1", []
    classes = dictionary.descendants(table)
    return f"{alias}.sys_class_name IN ({', '.join('?' for _ in classes)})", classes
