"""Immutable, fluent builder for ServiceNow encoded queries (``sysparm_query``).

    q = (Query()
         .eq("type", ChangeType.STANDARD)
         .in_("state", [ChangeState.SCHEDULED, ChangeState.IMPLEMENT])
         .or_where("state", "=", "0")
         .is_empty("correlation_id")
         .order_by("number"))
    str(q) == "type=standard^stateIN-2,-1^ORstate=0^correlation_idISEMPTY^ORDERBYnumber"

Grammar (reference §1.3): ``^`` is AND, ``^OR`` ORs with the previous condition and binds tighter than
AND, ``^NQ`` starts a new block ORed with the previous blocks, ``ORDERBY``/``ORDERBYDESC`` terms sort.

Every value is formatted and checked so that no caller data can add terms: ``^`` (hence ``^OR``,
``^NQ``) and line breaks are rejected everywhere, a ``,`` inside an IN element and an ``@`` inside a
BETWEEN/ON part are rejected, and a plain string starting with ``javascript:`` is rejected (the instance
would run it as a script). ``raw(...)`` and ``js(...)`` are the explicit ways around those checks.

Condition methods add to the *last* block, as when writing the string left to right; ``&`` / ``and_``
is a logical AND with every block, and ``|`` / ``any_of`` joins blocks with ``^NQ``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any, Final, Literal

from .glide_time import format_glide_time

__all__ = [
    "JS",
    "OPERATORS",
    "Field",
    "Operator",
    "Query",
    "QueryError",
    "QueryValueError",
    "Raw",
    "beginning_of_today",
    "date_generate",
    "days_ago_end",
    "days_ago_start",
    "end_of_today",
    "field",
    "format_value",
    "hours_ago_start",
    "js",
    "minutes_ago_start",
    "raw",
]


class QueryError(ValueError):
    """A query cannot be built as asked (unknown operator, wrong value shape, ...)."""


class QueryValueError(QueryError):
    """A field name or value is unsafe or malformed for its operator."""


class Operator(StrEnum):
    """Encoded-query operators (reference §1.3), spelled exactly as the instance expects."""

    EQ = "="
    NE = "!="
    GT = ">"
    GTE = ">="
    LT = "<"
    LTE = "<="
    IN = "IN"
    NOT_IN = "NOT IN"
    LIKE = "LIKE"
    NOT_LIKE = "NOT LIKE"
    STARTSWITH = "STARTSWITH"
    ENDSWITH = "ENDSWITH"
    ISEMPTY = "ISEMPTY"
    ISNOTEMPTY = "ISNOTEMPTY"
    EMPTYSTRING = "EMPTYSTRING"
    ANYTHING = "ANYTHING"
    BETWEEN = "BETWEEN"
    SAMEAS = "SAMEAS"
    NSAMEAS = "NSAMEAS"
    ON = "ON"
    NOTON = "NOTON"
    DATEPART = "DATEPART"
    RELATIVEGT = "RELATIVEGT"
    RELATIVEGE = "RELATIVEGE"
    RELATIVELT = "RELATIVELT"
    RELATIVELE = "RELATIVELE"
    RELATIVEEE = "RELATIVEEE"
    MORETHAN = "MORETHAN"
    LESSTHAN = "LESSTHAN"
    GT_FIELD = "GT_FIELD"
    LT_FIELD = "LT_FIELD"
    GT_OR_EQUALS_FIELD = "GT_OR_EQUALS_FIELD"
    LT_OR_EQUALS_FIELD = "LT_OR_EQUALS_FIELD"
    DYNAMIC = "DYNAMIC"
    IN_HIERARCHY = "IN_HIERARCHY"
    INSTANCEOF = "INSTANCEOF"


_Kind = Literal["scalar", "list", "none", "between", "field", "table", "on", "datepart", "relative", "moreless"]

# What each operator's value looks like; drives formatting and validation.
_KINDS: Final[dict[Operator, _Kind]] = {
    **dict.fromkeys(
        (
            Operator.EQ,
            Operator.NE,
            Operator.GT,
            Operator.GTE,
            Operator.LT,
            Operator.LTE,
            Operator.LIKE,
            Operator.NOT_LIKE,
            Operator.STARTSWITH,
            Operator.ENDSWITH,
            Operator.DYNAMIC,
            Operator.IN_HIERARCHY,
        ),
        "scalar",
    ),
    Operator.IN: "list",
    Operator.NOT_IN: "list",
    **dict.fromkeys((Operator.ISEMPTY, Operator.ISNOTEMPTY, Operator.EMPTYSTRING, Operator.ANYTHING), "none"),
    Operator.BETWEEN: "between",
    **dict.fromkeys(
        (
            Operator.SAMEAS,
            Operator.NSAMEAS,
            Operator.GT_FIELD,
            Operator.LT_FIELD,
            Operator.GT_OR_EQUALS_FIELD,
            Operator.LT_OR_EQUALS_FIELD,
        ),
        "field",
    ),
    Operator.INSTANCEOF: "table",
    Operator.ON: "on",
    Operator.NOTON: "on",
    Operator.DATEPART: "datepart",
    **dict.fromkeys(
        (
            Operator.RELATIVEGT,
            Operator.RELATIVEGE,
            Operator.RELATIVELT,
            Operator.RELATIVELE,
            Operator.RELATIVEEE,
        ),
        "relative",
    ),
    Operator.MORETHAN: "moreless",
    Operator.LESSTHAN: "moreless",
}

#: Every operator string ``where()`` accepts.
OPERATORS: Final[tuple[str, ...]] = tuple(op.value for op in Operator)

_FIELD_RE = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
_TABLE_RE = re.compile(r"[A-Za-z0-9_]+")
# The UI's "Days" is encoded as ``dayofweek`` in relative conditions; instances do not recognise "day".
_RELATIVE_UNITS: Final = ("minute", "hour", "dayofweek", "week", "month", "quarter", "year")
_MORELESS_UNITS: Final = ("minute", "hour", "day", "week", "month", "quarter", "year")
_RELATIVE_RE = re.compile(rf"@({'|'.join(_RELATIVE_UNITS)})@(ago|ahead)@([0-9]+)")
_MORELESS_RE = re.compile(rf"([A-Za-z0-9_.]+)@({'|'.join(_MORELESS_UNITS)})@(before|after)@([0-9]+)")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME_RE = re.compile(r"[0-9]{2}:[0-9]{2}:[0-9]{2}")

_MISSING: Final[Any] = object()
_SEQUENCES: Final = list | tuple | set | frozenset
_INJECTION_HINT = "would inject encoded-query terms; use raw(...) if you really mean to pass an encoded query"


def _show(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_text(subject: str, text: str, original: object | None = None) -> str:
    """Reject ``^`` and line breaks: the only characters that can start a new term."""
    for bad, name in (("^", "'^'"), ("\n", "a newline (\\n)"), ("\r", "a carriage return (\\r)")):
        if bad in text:
            shown = _show(text if original is None else original)
            raise QueryValueError(f"{subject} {shown} contains {name}, which {_INJECTION_HINT}")
    return text


def _check_field(name: object, what: str = "field name") -> str:
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, got {type(name).__name__}: {_show(name)}")
    _check_text(what, name)
    if not _FIELD_RE.fullmatch(name):
        raise QueryValueError(
            f"invalid {what} {_show(name)}: use letters, digits and '_', dot-walking with '.' "
            "(e.g. 'assignment_group.name')"
        )
    return name


# ---------------------------------------------------------------------------------------------------
# value objects


@dataclass(frozen=True, slots=True)
class JS:
    """A ``javascript:`` value, evaluated by the instance (e.g. ``js("gs.daysAgoStart(1)")``)."""

    expression: str

    def __post_init__(self) -> None:
        if not isinstance(self.expression, str):
            raise TypeError(f"js() expression must be a str, got {type(self.expression).__name__}")
        expr = self.expression.removeprefix("javascript:")
        if not expr.strip():
            raise QueryValueError("js() expression is empty")
        _check_text("js() expression", expr)
        object.__setattr__(self, "expression", expr)

    def __str__(self) -> str:
        return f"javascript:{self.expression}"


@dataclass(frozen=True, slots=True)
class Field:
    """A reference to another field, the value of SAMEAS / NSAMEAS / *_FIELD comparisons."""

    name: str

    def __post_init__(self) -> None:
        _check_field(self.name)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Raw:
    """An encoded-query string taken as is: the one way to pass caller-written ``^``, ``^OR``, ``^NQ``."""

    encoded: str

    def __post_init__(self) -> None:
        if not isinstance(self.encoded, str):
            raise TypeError(f"raw() takes a str, got {type(self.encoded).__name__}")

    def __str__(self) -> str:
        return self.encoded


def js(expression: str) -> JS:
    """A server-evaluated ``javascript:`` value; the ``javascript:`` prefix is optional."""
    return JS(expression)


def field(name: str) -> Field:
    """A field reference for SAMEAS / NSAMEAS / GT_FIELD / LT_FIELD / *_OR_EQUALS_FIELD."""
    return Field(name)


def raw(encoded: str) -> Raw:
    """An unchecked encoded query, to AND into a Query (``q.and_(raw(...))``, ``q & raw(...)``)."""
    return Raw(encoded)


# ---------------------------------------------------------------------------------------------------
# date helpers (server-side GlideSystem functions, evaluated in the session user's time zone)


def _int_arg(name: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name}() takes an int, got {type(n).__name__}: {_show(n)}")
    return n


def days_ago_start(n: int) -> JS:
    """Midnight at the start of the day ``n`` days ago (``gs.daysAgoStart(n)``)."""
    return JS(f"gs.daysAgoStart({_int_arg('days_ago_start', n)})")


def days_ago_end(n: int) -> JS:
    """23:59:59 on the day ``n`` days ago (``gs.daysAgoEnd(n)``)."""
    return JS(f"gs.daysAgoEnd({_int_arg('days_ago_end', n)})")


def minutes_ago_start(n: int) -> JS:
    """The start of the minute ``n`` minutes ago (``gs.minutesAgoStart(n)``)."""
    return JS(f"gs.minutesAgoStart({_int_arg('minutes_ago_start', n)})")


def hours_ago_start(n: int) -> JS:
    """The start of the hour ``n`` hours ago (``gs.hoursAgoStart(n)``)."""
    return JS(f"gs.hoursAgoStart({_int_arg('hours_ago_start', n)})")


def beginning_of_today() -> JS:
    """``gs.beginningOfToday()``."""
    return JS("gs.beginningOfToday()")


def end_of_today() -> JS:
    """``gs.endOfToday()``."""
    return JS("gs.endOfToday()")


def date_generate(day: date | str, at: time | str = "00:00:00") -> JS:
    """``gs.dateGenerate('YYYY-MM-DD','HH:MM:SS')``; the instance reads both in the session time zone.

    ``at`` may also be ``"start"`` or ``"end"`` (start / end of that day). Arguments are validated
    strictly because they are pasted into a quoted JavaScript string.
    """
    if isinstance(day, datetime):
        raise TypeError("date_generate() takes a date and a time separately, not a datetime")
    day_text = day.isoformat() if isinstance(day, date) else day
    if not isinstance(day_text, str) or not _DATE_RE.fullmatch(day_text):
        raise QueryValueError(f"date_generate(): day must be a date or 'YYYY-MM-DD', got {_show(day)}")
    at_text = at.strftime("%H:%M:%S") if isinstance(at, time) else at
    if not isinstance(at_text, str) or not (_TIME_RE.fullmatch(at_text) or at_text in ("start", "end")):
        raise QueryValueError(f"date_generate(): time must be a time, 'HH:MM:SS', 'start' or 'end', got {_show(at)}")
    return JS(f"gs.dateGenerate('{day_text}','{at_text}')")


# ---------------------------------------------------------------------------------------------------
# value formatting


def format_value(value: object, *, field_name: str = "value") -> str:
    """Format one value the way the instance expects it, checked for injection.

    str as is; bool as ``true``/``false``; int, float, Decimal in plain notation; datetime as UTC
    ``YYYY-MM-DD HH:MM:SS`` (naive means UTC); date as ``YYYY-MM-DD``; Enum by ``.value``; JS as
    ``javascript:...``. None, containers and Query/Raw objects are refused.
    """
    subject = f"field {field_name!r}"
    text: str
    if value is _MISSING or value is None:
        raise QueryValueError(f"{subject}: a value is required (use is_empty() to match empty fields)")
    if isinstance(value, Raw | Query):
        raise QueryValueError(f"{subject}: an encoded query cannot be a value; AND it in with and_()")
    if isinstance(value, Field):
        raise QueryValueError(
            f"{subject}: field({value.name!r}) compares two fields and only goes with "
            "SAMEAS, NSAMEAS, GT_FIELD, LT_FIELD, GT_OR_EQUALS_FIELD or LT_OR_EQUALS_FIELD"
        )
    if isinstance(value, JS):
        text = str(value)
    elif isinstance(value, Enum):
        return format_value(value.value, field_name=field_name)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float | Decimal):
        finite = math.isfinite(value) if isinstance(value, float) else value.is_finite()
        if not finite:
            raise QueryValueError(f"{subject}: {_show(value)} is not a finite number")
        # Plain notation: the instance does not parse exponents such as 1e+20.
        text = format(Decimal(repr(value)) if isinstance(value, float) else value, "f")
    elif isinstance(value, datetime):
        text = format_glide_time(value)
    elif isinstance(value, date):
        text = value.isoformat()
    elif isinstance(value, str):
        text = value
        if text.lstrip().lower().startswith("javascript:"):
            # The instance evaluates such a value as a script; caller data must never get that far.
            raise QueryValueError(
                f"{subject}: {_show(value)} starts with 'javascript:', which the instance would run as "
                "a script; wrap trusted expressions in js(...) instead"
            )
    else:
        raise TypeError(
            f"{subject}: unsupported value type {type(value).__name__} ({_show(value)}); "
            "use str, int, float, bool, date, datetime, an Enum or js(...)"
        )
    return _check_text(f"{subject}: value", text, value)


def _scalar(name: str, op: Operator, value: object) -> str:
    if isinstance(value, _SEQUENCES):
        raise QueryValueError(f"field {name!r}: operator {op.value!r} takes one value, got {_show(value)}")
    text = format_value(value, field_name=name)
    if op in (Operator.GT, Operator.LT) and text.startswith("="):
        # "a<" + "=5" would read as "a<=5".
        raise QueryValueError(
            f"field {name!r}: value {_show(value)} for {op.value!r} starts with '=', which would turn "
            f"the operator into {op.value + '='!r}"
        )
    return text


def _list(name: str, op: Operator, value: object) -> str:
    if isinstance(value, JS):
        # A whole-list script such as javascript:getMyGroups() returns the comma list itself.
        return format_value(value, field_name=name)
    items = list(value) if isinstance(value, _SEQUENCES) else [value]
    parts = []
    for item in items:
        if isinstance(item, JS | _SEQUENCES):
            raise QueryValueError(
                f"field {name!r}: {op.value} elements must be plain values, got {_show(item)} "
                "(a js(...) value may stand for the whole list)"
            )
        text = format_value(item, field_name=name)
        if "," in text:
            raise QueryValueError(
                f"field {name!r}: {op.value} element {_show(item)} contains ',', which would split it "
                "into several values; pass the values as a list"
            )
        parts.append(text)
    if not parts:
        # An empty list would encode as "fieldIN", which instances may treat as no condition at all.
        raise QueryValueError(f"field {name!r}: {op.value} needs at least one value")
    if isinstance(value, set | frozenset):
        parts.sort()  # a stable string, hence stable equality and caching
    return ",".join(parts)


def _at_part(name: str, op: Operator, part: object) -> str:
    text = format_value(part, field_name=name)
    if "@" in text:
        raise QueryValueError(
            f"field {name!r}: {op.value} part {_show(part)} contains '@', the {op.value} part separator"
        )
    return text


def _between(name: str, op: Operator, value: object) -> str:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise QueryValueError(f"field {name!r}: BETWEEN takes a (low, high) pair, got {_show(value)}")
    return "@".join(_at_part(name, op, part) for part in value)


def _on(name: str, op: Operator, value: object) -> str:
    if isinstance(value, date) and not isinstance(value, datetime):
        day = value.isoformat()
        start = date_generate(value, "00:00:00")
        end = date_generate(value, "23:59:59")
        return f"{day}@{start}@{end}"
    if isinstance(value, list | tuple) and len(value) == 3:
        return "@".join(_at_part(name, op, part) for part in value)
    raise QueryValueError(
        f"field {name!r}: {op.value} takes a date or a (label, start, end) triple such as "
        f"('Today', beginning_of_today(), end_of_today()), got {_show(value)}"
    )


def _datepart(name: str, op: Operator, value: object) -> str:
    # No pre-encoded string form: it would let caller data smuggle in a javascript: part.
    if isinstance(value, list | tuple) and len(value) == 2:
        return "@".join(_at_part(name, op, part) for part in value)
    raise QueryValueError(
        f"field {name!r}: DATEPART takes (label, js(...)), e.g. "
        f"('Monday', js(\"gs.datePart('dayofweek','monday','EE')\")), got {_show(value)}"
    )


def _relative(name: str, op: Operator, value: object) -> str:
    if isinstance(value, list | tuple) and len(value) == 3:
        unit, direction, amount = value
        unit = "dayofweek" if unit == "day" else unit  # the encoding of the UI's "Days"
        text = f"@{unit}@{direction}@{amount}"
        ok = isinstance(amount, int) and not isinstance(amount, bool) and amount >= 0
    else:
        text = value if isinstance(value, str) else ""
        ok = True
    if not ok or not _RELATIVE_RE.fullmatch(text):
        raise QueryValueError(
            f"field {name!r}: {op.value} takes (unit, 'ago'|'ahead', n) with unit one of "
            f"{', '.join(_RELATIVE_UNITS)} ('day' means dayofweek) and n >= 0, or the encoded form "
            f"'@hour@ago@1'; got {_show(value)}"
        )
    return text


def _moreless(name: str, op: Operator, value: object) -> str:
    if isinstance(value, list | tuple) and len(value) == 4:
        other, unit, direction, amount = value
        other_name = _check_field(str(other) if isinstance(other, Field) else other, "compared field name")
        text = f"{other_name}@{unit}@{direction}@{amount}"
        ok = isinstance(amount, int) and not isinstance(amount, bool) and amount >= 0
    else:
        text = value if isinstance(value, str) else ""
        ok = True
    if not ok or not _MORELESS_RE.fullmatch(text) or not _FIELD_RE.fullmatch(text.split("@", 1)[0]):
        raise QueryValueError(
            f"field {name!r}: {op.value} takes (other_field, unit, 'before'|'after', n) with unit one of "
            f"{', '.join(_MORELESS_UNITS)} (or 'activity_due@day@before@1'), got {_show(value)}"
        )
    return text


def _field_ref(name: str, op: Operator, value: object) -> str:
    return _check_field(value.name if isinstance(value, Field) else value, f"{op.value} field name")


def _table(name: str, op: Operator, value: object) -> str:
    if not isinstance(value, str) or not _TABLE_RE.fullmatch(value):
        if isinstance(value, str):
            _check_text(f"field {name!r}: INSTANCEOF table name", value)
        raise QueryValueError(f"field {name!r}: INSTANCEOF takes a table name, got {_show(value)}")
    return value


def _operator(op: object) -> Operator:
    if isinstance(op, Operator):
        return op
    if isinstance(op, str):
        try:
            return Operator(op.strip().upper())
        except ValueError:
            pass
    raise QueryError(f"unknown operator {_show(op)}; valid operators: {', '.join(OPERATORS)}")


def _condition(name: object, op: object, value: object) -> str:
    field_name = _check_field(name)
    operator = _operator(op)
    kind = _KINDS[operator]
    if kind == "none":
        if value is not _MISSING and value is not None:
            raise QueryError(f"field {field_name!r}: operator {operator.value} takes no value, got {_show(value)}")
        return f"{field_name}{operator.value}"
    if value is _MISSING:
        raise QueryError(f"field {field_name!r}: operator {operator.value} needs a value")
    encode = {
        "scalar": _scalar,
        "list": _list,
        "between": _between,
        "field": _field_ref,
        "table": _table,
        "on": _on,
        "datepart": _datepart,
        "relative": _relative,
        "moreless": _moreless,
    }[kind]
    return f"{field_name}{operator.value}{encode(field_name, operator, value)}"


# ---------------------------------------------------------------------------------------------------
# raw parsing


_Blocks = tuple[tuple[str, ...], ...]
_Order = tuple[tuple[str, bool], ...]


def _parse(encoded: str) -> tuple[_Blocks, _Order]:
    """Split an encoded query into blocks of AND-terms (each term keeps its ^OR alternatives) and
    ORDERBY keys, so raw input composes with the builder and its sort keys still go last."""
    blocks: list[list[str]] = [[]]
    order: list[tuple[str, bool]] = []
    for i, term in enumerate(encoded.split("^")):
        if not term or term == "EQ":  # "^EQ" is the UI's end marker
            continue
        if term.startswith("ORDERBY"):
            desc = term.startswith("ORDERBYDESC")
            key = term.removeprefix("ORDERBYDESC" if desc else "ORDERBY")
            order.append((_check_field(key, "ORDERBY field name"), desc))
            continue
        if i > 0 and term.startswith("NQ"):
            blocks.append([])
            term = term[2:]
            if not term:
                continue
        elif i > 0 and term.startswith("OR"):
            if not blocks[-1]:
                raise QueryError(f"raw query {_show(encoded)}: '^OR' has no condition before it")
            blocks[-1][-1] += "^" + term
            continue
        blocks[-1].append(term)
    return tuple(tuple(b) for b in blocks if b), tuple(order)


def _distribute(left: _Blocks, right: _Blocks) -> _Blocks:
    """(a1 OR a2) AND (b1 OR b2) as ^NQ blocks: a1b1, a1b2, a2b1, a2b2."""
    left = tuple(b for b in left if b)
    right = tuple(b for b in right if b)
    if not left:
        return right
    if not right:
        return left
    return tuple(a + b for a in left for b in right)


# ---------------------------------------------------------------------------------------------------
# Query


def _rebuild(blocks: _Blocks, order: _Order) -> Query:
    return Query._new(blocks, order)


class Query:
    """An immutable encoded query; every method returns a new Query. ``str(q)`` is the encoding.

    Equality and hashing go by the encoded string. An empty Query encodes to ``""`` (matches all).
    """

    __slots__ = ("_blocks", "_encoded", "_order")
    _blocks: _Blocks
    _order: _Order
    _encoded: str

    def __init__(self) -> None:
        self._init((), ())

    def _init(self, blocks: _Blocks, order: _Order) -> None:
        conditions = "^NQ".join("^".join(block) for block in blocks if block)
        sort = "^".join(("ORDERBYDESC" if desc else "ORDERBY") + key for key, desc in order)
        object.__setattr__(self, "_blocks", blocks)
        object.__setattr__(self, "_order", order)
        object.__setattr__(self, "_encoded", "^".join(part for part in (conditions, sort) if part))

    @classmethod
    def _new(cls, blocks: _Blocks, order: _Order) -> Query:
        q = object.__new__(cls)
        q._init(blocks, order)
        return q

    @classmethod
    def from_raw(cls, encoded: str | Raw) -> Query:
        """A Query from an existing encoded string (unchecked; a trailing ``^EQ`` is dropped)."""
        text = encoded.encoded if isinstance(encoded, Raw) else Raw(encoded).encoded
        return cls._new(*_parse(text))

    @classmethod
    def any_of(cls, *queries: Query | Raw) -> Query:
        """``q1^NQq2^NQ...``: records matching any of the queries. Empty operands add no block."""
        blocks: _Blocks = ()
        order: _Order = ()
        for q in map(_as_query, queries):
            blocks += tuple(b for b in q._blocks if b)
            order += q._order
        return cls._new(blocks, order)

    # -- encoding / identity -------------------------------------------------------------------------

    @property
    def encoded(self) -> str:
        """The ``sysparm_query`` string."""
        return self._encoded

    def __str__(self) -> str:
        return self._encoded

    def __repr__(self) -> str:
        return f"Query.from_raw({self._encoded!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Query):
            return self._encoded == other._encoded
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._encoded)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Query is immutable; its methods return a new Query")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Query is immutable; its methods return a new Query")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._blocks, self._order))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        # Lets a flow parameter or config model declare `query: Query` and accept an encoded string.
        from pydantic_core import core_schema

        from_str = core_schema.no_info_after_validator_function(cls.from_raw, core_schema.str_schema())
        return core_schema.json_or_python_schema(
            json_schema=from_str,
            python_schema=core_schema.union_schema([core_schema.is_instance_schema(cls), from_str]),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    # -- composition ---------------------------------------------------------------------------------

    def _add_to_last_block(self, blocks: _Blocks, order: _Order = ()) -> Query:
        blocks = tuple(b for b in blocks if b)
        if not blocks:
            new_blocks = self._blocks
        elif not self._blocks:
            new_blocks = blocks
        else:
            # An empty last block is the one new_query() opened: the conditions simply fill it.
            *head, last = self._blocks
            new_blocks = (*head, *(_distribute((last,), blocks) if last else blocks))
        return Query._new(new_blocks, self._order + order)

    def where(self, field: str, op: Operator | str, value: Any = _MISSING) -> Query:
        """AND ``field op value`` into the current block. ``op`` is any of ``OPERATORS``."""
        return self._add_to_last_block(((_condition(field, op, value),),))

    def or_where(self, field: str, op: Operator | str, value: Any = _MISSING) -> Query:
        """``^OR field op value``: OR with the previous condition (binds tighter than AND)."""
        condition = _condition(field, op, value)
        if not self._blocks or not self._blocks[-1]:
            raise QueryError(f"or_where({field!r}, ...) needs a previous condition to OR with")
        *head, last = self._blocks
        new_last = (*last[:-1], f"{last[-1]}^OR{condition}")
        return Query._new((*head, new_last), self._order)

    def raw(self, encoded: str | Raw) -> Query:
        """AND an unchecked encoded query into the current block, as a unit.

        If it holds ``^NQ`` blocks, the current block is ANDed with each of them, so the result still
        means "current block AND (raw)". Its ORDERBY terms join this query's, at the end.
        """
        blocks, order = _parse(encoded.encoded if isinstance(encoded, Raw) else Raw(encoded).encoded)
        return self._add_to_last_block(blocks, order)

    def new_query(self, other: Query | Raw | None = None) -> Query:
        """``^NQ``: with ``other``, append its blocks; without, start a block for the next conditions."""
        if other is not None:
            return Query.any_of(self, other)
        if not self._blocks or not self._blocks[-1]:
            return self
        return Query._new((*self._blocks, ()), self._order)

    def and_(self, *others: Query | Raw) -> Query:
        """Logical AND with every block of each operand (distributes over ^NQ blocks)."""
        result = self
        for other in map(_as_query, others):
            result = Query._new(_distribute(result._blocks, other._blocks), result._order + other._order)
        return result

    def __and__(self, other: object) -> Query:
        if not isinstance(other, Query | Raw):
            return NotImplemented
        return self.and_(other)

    def __rand__(self, other: object) -> Query:
        if not isinstance(other, Raw):
            return NotImplemented
        return _as_query(other).and_(self)

    def __or__(self, other: object) -> Query:
        if not isinstance(other, Query | Raw):
            return NotImplemented
        return Query.any_of(self, other)

    def __ror__(self, other: object) -> Query:
        if not isinstance(other, Raw):
            return NotImplemented
        return Query.any_of(other, self)

    # -- ordering ------------------------------------------------------------------------------------

    def order_by(self, *fields: str) -> Query:
        """Sort ascending by each field, after any earlier sort keys."""
        return self._order_by(fields, desc=False)

    def order_by_desc(self, *fields: str) -> Query:
        """Sort descending by each field, after any earlier sort keys."""
        return self._order_by(fields, desc=True)

    def _order_by(self, fields: Iterable[str], desc: bool) -> Query:
        keys = tuple((_check_field(f, "ORDERBY field name"), desc) for f in fields)
        if not keys:
            raise QueryError("order_by() needs at least one field")
        return Query._new(self._blocks, self._order + keys)

    def has_order(self) -> bool:
        """True if any ORDERBY / ORDERBYDESC term is present."""
        return bool(self._order)

    def order_fields(self) -> list[tuple[str, bool]]:
        """The sort keys in order, as ``(field, descending)``."""
        return list(self._order)

    # -- conveniences --------------------------------------------------------------------------------

    def eq(self, field: str, value: Any) -> Query:
        """``field=value``."""
        return self.where(field, Operator.EQ, value)

    def ne(self, field: str, value: Any) -> Query:
        """``field!=value``."""
        return self.where(field, Operator.NE, value)

    def gt(self, field: str, value: Any) -> Query:
        """``field>value``."""
        return self.where(field, Operator.GT, value)

    def gte(self, field: str, value: Any) -> Query:
        """``field>=value``."""
        return self.where(field, Operator.GTE, value)

    def lt(self, field: str, value: Any) -> Query:
        """``field<value``."""
        return self.where(field, Operator.LT, value)

    def lte(self, field: str, value: Any) -> Query:
        """``field<=value``."""
        return self.where(field, Operator.LTE, value)

    def in_(self, field: str, values: Any) -> Query:
        """``fieldINa,b,c``."""
        return self.where(field, Operator.IN, values)

    def not_in(self, field: str, values: Any) -> Query:
        """``fieldNOT INa,b,c``."""
        return self.where(field, Operator.NOT_IN, values)

    def like(self, field: str, value: Any) -> Query:
        """``fieldLIKEvalue`` (contains)."""
        return self.where(field, Operator.LIKE, value)

    def not_like(self, field: str, value: Any) -> Query:
        """``fieldNOT LIKEvalue`` (does not contain)."""
        return self.where(field, Operator.NOT_LIKE, value)

    def starts_with(self, field: str, value: Any) -> Query:
        """``fieldSTARTSWITHvalue``."""
        return self.where(field, Operator.STARTSWITH, value)

    def ends_with(self, field: str, value: Any) -> Query:
        """``fieldENDSWITHvalue``."""
        return self.where(field, Operator.ENDSWITH, value)

    def is_empty(self, field: str) -> Query:
        """``fieldISEMPTY`` (null or empty)."""
        return self.where(field, Operator.ISEMPTY)

    def is_not_empty(self, field: str) -> Query:
        """``fieldISNOTEMPTY``."""
        return self.where(field, Operator.ISNOTEMPTY)

    def empty_string(self, field: str) -> Query:
        """``fieldEMPTYSTRING``."""
        return self.where(field, Operator.EMPTYSTRING)

    def anything(self, field: str) -> Query:
        """``fieldANYTHING`` (matches everything, null included)."""
        return self.where(field, Operator.ANYTHING)

    def between(self, field: str, low: Any, high: Any) -> Query:
        """``fieldBETWEENlow@high`` (inclusive)."""
        return self.where(field, Operator.BETWEEN, (low, high))

    def same_as(self, field: str, other: str | Field) -> Query:
        """``fieldSAMEASother``: both fields hold the same value."""
        return self.where(field, Operator.SAMEAS, other)

    def not_same_as(self, field: str, other: str | Field) -> Query:
        """``fieldNSAMEASother``."""
        return self.where(field, Operator.NSAMEAS, other)

    def on(self, field: str, day: date | str, start: Any = None, end: Any = None) -> Query:
        """``fieldON...``: a date (whole day in the session time zone) or a label with start/end,
        e.g. ``on("sla_due", "Today", beginning_of_today(), end_of_today())``."""
        if start is None and end is None:
            return self.where(field, Operator.ON, day)
        return self.where(field, Operator.ON, (day, start, end))

    def relative_gt(self, field: str, amount: int, unit: str, direction: Literal["ago", "ahead"] = "ago") -> Query:
        """``fieldRELATIVEGT@unit@direction@amount``: later than ``amount`` units ago/ahead.

        Units: minute, hour, day (encoded ``dayofweek``, as the instance expects), week, month,
        quarter, year. ``relative_gt("sys_updated_on", 1, "hour")`` = updated within the last hour.
        """
        return self.where(field, Operator.RELATIVEGT, (unit, direction, amount))

    def relative_lt(self, field: str, amount: int, unit: str, direction: Literal["ago", "ahead"] = "ago") -> Query:
        """``fieldRELATIVELT@unit@direction@amount``: earlier than ``amount`` units ago/ahead."""
        return self.where(field, Operator.RELATIVELT, (unit, direction, amount))

    def instance_of(self, table: str, field: str = "sys_class_name") -> Query:
        """``sys_class_nameINSTANCEOFtable``: records of ``table`` or any class extending it."""
        return self.where(field, Operator.INSTANCEOF, table)


def _as_query(value: object) -> Query:
    if isinstance(value, Query):
        return value
    if isinstance(value, Raw):
        return Query.from_raw(value)
    if isinstance(value, str):
        raise TypeError("a plain str is not a query; wrap a trusted encoded string in raw(...)")
    raise TypeError(f"expected a Query or raw(...), got {type(value).__name__}")
