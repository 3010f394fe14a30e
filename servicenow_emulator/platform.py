"""The record service: every write goes through here, so platform rules apply to every API alike.

A write is: coerce the input to storage types, run the ``before`` rules (which may change the record or
abort with a PlatformError), store it, then run the ``after`` rules (journal rows, outbound webhooks),
all inside one transaction so a rejected write leaves nothing behind.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .dictionary import JOURNAL_TYPES, Dictionary, FieldDef
from .errors import PlatformError, invalid_table, record_not_found
from .settings import Settings
from .store import Store
from .timeutil import glide_now, parse_glide

log = logging.getLogger("servicenow_emulator.platform")
_SYS_ID_RE = re.compile(r"^[0-9a-f]{32}$")
# System fields a client may set: on insert the record's identity and class, on update only the domain.
_INSERTABLE_SYSTEM_FIELDS = frozenset({"sys_id", "sys_domain", "sys_class_name"})
_UPDATABLE_SYSTEM_FIELDS = frozenset({"sys_domain"})


@dataclass(frozen=True)
class Session:
    """Who is asking: user, roles, groups and time zone."""

    user_sys_id: str
    user_name: str
    roles: frozenset[str] = frozenset()
    groups: tuple[str, ...] = ()
    tz: str = "UTC"
    display_name: str = ""

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


SYSTEM = Session(
    "6816f79cc0a8016401c5a33be04be441", "system", frozenset({"admin"}), display_name="System Administrator"
)


def new_sys_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Change:
    """One record write, as before/after rules see it (``current`` and ``previous`` hold raw values)."""

    platform: Platform
    table: str
    operation: str
    current: dict[str, Any]
    previous: dict[str, Any] | None
    session: Session
    journal: list[tuple[str, str]] = field(default_factory=list)
    changed_fields: set[str] = field(default_factory=set)

    def value(self, name: str) -> Any:
        return self.current.get(name)

    def old(self, name: str) -> Any:
        return None if self.previous is None else self.previous.get(name)

    def changes(self, name: str) -> bool:
        return (self.operation == "insert" and _present(self.current.get(name))) or (
            self.operation == "update" and _norm(self.current.get(name)) != _norm(self.old(name))
        )

    def changes_to(self, name: str, value: Any) -> bool:
        return self.changes(name) and _norm(self.current.get(name)) == _norm(value)

    def changes_from(self, name: str, value: Any) -> bool:
        return self.changes(name) and _norm(self.old(name)) == _norm(value)

    def is_a(self, ancestor: str) -> bool:
        return self.platform.dictionary.is_a(self.table, ancestor)


def _present(value: Any) -> bool:
    return value is not None and value != ""


def _differs(current: dict[str, Any], previous: dict[str, Any]) -> set[str]:
    """The fields whose value differs between two versions of a record."""
    return {k for k in current if _norm(current.get(k)) != _norm(previous.get(k))}


def _norm(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


Rule = Callable[[Change], None]


@dataclass
class RuleSet:
    """Rules by phase; each registers for the tables (and their children) it applies to."""

    before: list[tuple[tuple[str, ...], tuple[str, ...], Rule]] = field(default_factory=list)
    after: list[tuple[tuple[str, ...], tuple[str, ...], Rule]] = field(default_factory=list)

    def add(self, when: str, tables: Iterable[str], operations: Iterable[str], rule: Rule) -> None:
        getattr(self, when).append((tuple(tables), tuple(operations), rule))


class _Skip(Exception):
    """An input value the platform silently ignores (as ServiceNow does with invalid values)."""


_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def _number(text: str, storage: str) -> int | float | None:
    """A numeric input as stored (INTEGER or REAL), or None when it is not a finite, storable number."""
    text = text.strip()
    try:
        number: int | float = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            return None
        if not math.isfinite(number):
            return None
    if storage == "INTEGER":
        number = int(number)
        return number if _INT_MIN <= number <= _INT_MAX else None
    return float(number)


class Platform:
    """Coercion plus rules around the store."""

    def __init__(self, store: Store, dictionary: Dictionary, settings: Settings, rules: RuleSet):
        self.store = store
        self.dictionary = dictionary
        self.settings = settings
        self.rules = rules
        self.after_commit: list[Callable[[Change], None]] = []
        # Caches elsewhere (sessions, settings, rule lists) register here to hear about changes.
        self.identity_listeners: list[Callable[[], None]] = []
        self.config_listeners: list[Callable[[str], None]] = []

    def on_identity_change(self) -> None:
        for listener in self.identity_listeners:
            listener()

    def on_config_change(self, table: str) -> None:
        for listener in self.config_listeners:
            listener(table)

    # --- coercion -------------------------------------------------------------------------------
    def coerce(self, f: FieldDef, value: Any, *, display_input: bool, session: Session) -> Any:
        """API input (strings, numbers, booleans, null) -> storage value."""
        if value is None:
            return None
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, dict):
            # Clients sometimes echo {"value": ..., "display_value": ...} back; any other object is ignored.
            if "value" not in value and "display_value" not in value:
                raise _Skip
            inner = value.get("value", value.get("display_value"))
            return self.coerce(f, "" if inner is None else inner, display_input=display_input, session=session)
        elif isinstance(value, list):
            text = ",".join(str(v) for v in value)
        else:
            text = str(value)
        if text == "":
            return None
        if f.kind == "num":
            label_value = f.choice_value_for_label(text) if f.choices else None
            number = _number(label_value if label_value is not None else text, f.storage)
            if number is None:
                raise _Skip
            return number
        if f.type == "boolean":
            lowered = text.lower()
            if lowered in ("true", "1", "yes"):
                return 1
            if lowered in ("false", "0", "no"):
                return 0
            raise _Skip
        if f.kind == "date":
            if f.type == "glide_duration":
                return text
            parsed = parse_glide(text, date_only=f.type == "glide_date", tz=session.tz if display_input else "UTC")
            if parsed is None:
                raise _Skip
            return parsed
        if f.type == "reference" and f.reference:
            if _SYS_ID_RE.match(text):
                return text
            return self.resolve_reference(f.reference, text) or text
        if f.choices and display_input:
            return f.choice_value_for_label(text) or text
        return text

    def resolve_reference(self, target: str, display: str) -> str | None:
        display_field = self.dictionary.display_field(target)
        if not display_field:
            return None
        for row in self.store.find(target, {display_field: display}, limit=1):
            return row["sys_id"]
        return None

    def _apply(
        self,
        fields: dict[str, FieldDef],
        values: dict[str, Any],
        current: dict[str, Any],
        journal: list[tuple[str, str]],
        session: Session,
        display_input: bool,
        *,
        system_fields: frozenset[str],
        read_only: bool,
    ) -> None:
        """Coerce API input into ``current``; journal input goes to ``journal``. Unknown fields, system
        fields other than ``system_fields``, read-only fields (unless ``read_only``) and invalid values
        are ignored, as the platform does."""
        for name, raw in values.items():
            f = fields.get(name)
            if f is None or (name.startswith("sys_") and name not in system_fields):
                continue
            if f.read_only and not read_only and name not in system_fields:
                continue
            if f.type in JOURNAL_TYPES:
                if raw not in (None, ""):
                    journal.append((name, str(raw)))
                continue
            try:
                current[name] = self.coerce(f, raw, display_input=display_input, session=session)
            except _Skip:
                continue

    # --- reads ----------------------------------------------------------------------------------
    def get(self, table: str, sys_id: str) -> dict[str, Any] | None:
        self.require_table(table)
        return self.store.get(table, sys_id)

    def require_table(self, table: str) -> None:
        if table not in self.dictionary:
            raise invalid_table(table)

    # --- writes -------------------------------------------------------------------------------
    def insert(
        self,
        table: str,
        values: dict[str, Any],
        session: Session = SYSTEM,
        *,
        display_input: bool = False,
    ) -> dict[str, Any]:
        self.require_table(table)
        fields = self.dictionary.fields(table)
        now = glide_now()
        current: dict[str, Any] = {}
        journal: list[tuple[str, str]] = []
        for name, f in fields.items():
            if f.default is not None and f.kind != "journal":
                current[name] = self.coerce(f, f.default, display_input=False, session=SYSTEM)
        self._apply(
            fields,
            values,
            current,
            journal,
            session,
            display_input,
            system_fields=_INSERTABLE_SYSTEM_FIELDS,
            read_only=True,
        )
        sys_id = current.get("sys_id")
        if not (isinstance(sys_id, str) and _SYS_ID_RE.match(sys_id)) or self.store.get(
            self.dictionary.root(table), sys_id
        ):
            current["sys_id"] = new_sys_id()
        if "sys_class_name" in fields:
            requested = current.get("sys_class_name")
            if not (
                isinstance(requested, str) and requested in self.dictionary and self.dictionary.is_a(requested, table)
            ):
                current["sys_class_name"] = table
        else:
            current["sys_class_name"] = table
        concrete = current["sys_class_name"]
        current.update(
            sys_created_on=now,
            sys_created_by=session.user_name,
            sys_updated_on=now,
            sys_updated_by=session.user_name,
            sys_mod_count=0,
        )
        change = Change(self, concrete, "insert", current, None, session, journal)
        change.changed_fields = {k for k, v in current.items() if _present(v)}
        with self.store.transaction():
            self._run("before", change)
            self.store.insert(concrete, change.current)
            self._run("after", change)
        self._after_commit(change)
        return change.current

    def update(
        self,
        table: str,
        sys_id: str,
        values: dict[str, Any],
        session: Session = SYSTEM,
        *,
        display_input: bool = False,
    ) -> dict[str, Any]:
        self.require_table(table)
        previous = self.store.get(table, sys_id)
        if previous is None:
            raise record_not_found()
        concrete = previous.get("sys_class_name") or table
        if concrete not in self.dictionary:
            concrete = table
        fields = self.dictionary.fields(concrete)
        current = dict(previous)
        journal: list[tuple[str, str]] = []
        self._apply(
            fields,
            values,
            current,
            journal,
            session,
            display_input,
            system_fields=_UPDATABLE_SYSTEM_FIELDS,
            read_only=False,
        )
        change = Change(self, concrete, "update", current, previous, session, journal)
        with self.store.transaction():
            self._run("before", change)
            if _differs(change.current, previous) or change.journal:
                change.current["sys_updated_on"] = glide_now()
                change.current["sys_updated_by"] = session.user_name
                change.current["sys_mod_count"] = int(previous.get("sys_mod_count") or 0) + 1
                self.store.update(concrete, sys_id, change.current)
            # As after rules see it (GlideElement.changes()): the system fields just set count as changed.
            change.changed_fields = _differs(change.current, previous)
            self._run("after", change)
        self._after_commit(change)
        return change.current

    def delete(self, table: str, sys_id: str, session: Session = SYSTEM) -> dict[str, Any]:
        self.require_table(table)
        previous = self.store.get(table, sys_id)
        if previous is None:
            raise record_not_found()
        concrete = previous.get("sys_class_name") or table
        change = Change(self, concrete if concrete in self.dictionary else table, "delete", previous, previous, session)
        with self.store.transaction():
            self._run("before", change)
            self.store.delete(table, sys_id)
            self._run("after", change)
        self._after_commit(change)
        return previous

    # --- rules ------------------------------------------------------------------------------------
    def _run(self, when: str, change: Change) -> None:
        for tables, operations, rule in getattr(self.rules, when):
            if change.operation in operations and any(change.is_a(t) for t in tables):
                rule(change)

    def _after_commit(self, change: Change) -> None:
        # Inside an outer transaction (IRE, batch-like writes) hooks wait for its commit, and never
        # fire for writes that are rolled back.
        for hook in self.after_commit:
            self.store.on_commit(lambda hook=hook: _run_hook(hook, change))


def _run_hook(hook: Callable[[Change], None], change: Change) -> None:
    """An after-commit hook that fails is logged: the write has committed, so its answer is still a success."""
    try:
        hook(change)
    except Exception:
        log.exception(
            "after-commit hook failed for %s %s; the write stands", change.table, change.current.get("sys_id")
        )


__all__ = ["SYSTEM", "Change", "Platform", "PlatformError", "RuleSet", "Session", "new_sys_id"]
