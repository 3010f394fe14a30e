"""SQLite storage: one physical table per hierarchy root, holding the union of the hierarchy's columns.

The store knows tables and columns, nothing of HTTP or platform rules. Values are stored typed
(integers as INTEGER, booleans as 0/1, dates as ``YYYY-MM-DD HH:MM:SS`` text in UTC), so that SQL
comparisons and ordering follow each field's type.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .dictionary import DICTIONARY, Dictionary

# Columns queried often enough to deserve an index, per hierarchy root.
_INDEXES: dict[str, list[str]] = {
    "task": ["sys_class_name", "number", "correlation_id", "state", "sys_updated_on", "approval"],
    "cmdb_ci": ["sys_class_name", "name", "object_id", "serial_number", "correlation_id"],
    "cmdb_rel_ci": ["parent", "child"],
    "sys_journal_field": ["element_id"],
    "sys_attachment": ["table_sys_id", "table_name"],
    "sys_user": ["user_name"],
    "sys_user_group": ["name"],
    "sys_user_grmember": ["user", "group"],
    "sys_user_has_role": ["user"],
    "sys_choice": ["name"],
    "question_answer": ["table_sys_id"],
    "sys_outbound_http_log": ["source_record"],
    "sys_properties": ["name"],
}


# Entries kept by the read caches (page cursors, counts); each is a few dozen bytes.
_MEMO_SIZE = 4096


def quote(identifier: str) -> str:
    """Quote an SQL identifier (column names such as ``order`` and ``type`` are keywords)."""
    return '"' + identifier.replace('"', '""') + '"'


class Store:
    """A thread-safe SQLite store. ``path`` is a file or ``:memory:``."""

    def __init__(self, path: str = ":memory:", dictionary: Dictionary = DICTIONARY):
        self.path = path
        self.dictionary = dictionary
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.lock = threading.RLock()
        self._in_tx = 0
        self._on_commit: list[Callable[[], None]] = []
        self._memo: OrderedDict[Hashable, Any] = OrderedDict()
        if path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=OFF")
        self.conn.execute("PRAGMA cache_size=-65536")
        self.columns: dict[str, list[str]] = {}
        self.create_schema()

    # --- schema -----------------------------------------------------------------------------------
    def create_schema(self) -> None:
        roots = sorted({self.dictionary.root(name) for name in self.dictionary.tables})
        with self.transaction():
            for root in roots:
                columns = self.dictionary.hierarchy_columns(root)
                existing = {row[1] for row in self.conn.execute(f"PRAGMA table_info({quote(root)})")}
                if not existing:
                    defs = []
                    for name, f in columns.items():
                        if name == "sys_id":
                            defs.append('"sys_id" TEXT NOT NULL UNIQUE')
                        else:
                            defs.append(f"{quote(name)} {f.storage}")
                    self.conn.execute(f"CREATE TABLE {quote(root)} ({', '.join(defs)})")
                else:
                    for name, f in columns.items():
                        if name not in existing:
                            self.conn.execute(f"ALTER TABLE {quote(root)} ADD COLUMN {quote(name)} {f.storage}")
                for col in _INDEXES.get(root, []):
                    self.conn.execute(
                        f"CREATE INDEX IF NOT EXISTS {quote(f'ix_{root}_{col}')} ON {quote(root)} ({quote(col)})"
                    )
                self.columns[root] = list(columns)
            # Internal tables: attachment content, number counters, emulator state.
            self.conn.execute("CREATE TABLE IF NOT EXISTS _attachment_content (sys_id TEXT PRIMARY KEY, content BLOB)")
            self.conn.execute("CREATE TABLE IF NOT EXISTS _number_counter (prefix TEXT PRIMARY KEY, next INTEGER)")

    # --- transactions -------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An atomic unit: everything inside commits together or not at all (nestable)."""
        with self.lock:
            outer = self._in_tx == 0
            if outer:
                self.conn.execute("BEGIN IMMEDIATE")
                self._on_commit = []
            self._in_tx += 1
            try:
                yield self.conn
            except BaseException:
                self._in_tx -= 1
                if outer:
                    self.conn.execute("ROLLBACK")
                    self._on_commit = []
                raise
            else:
                self._in_tx -= 1
                if outer:
                    self.conn.execute("COMMIT")
                    callbacks, self._on_commit = self._on_commit, []
                    for callback in callbacks:
                        callback()

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the outermost transaction commits (now, outside one); never on rollback."""
        if self._in_tx:
            self._on_commit.append(callback)
        else:
            callback()

    # --- rows ---------------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self.lock:
            return self.conn.execute(sql, params)

    # --- read caches ----------------------------------------------------------------------------
    def version(self) -> int:
        """A number that changes whenever any row is written, by any path: the key of the read caches."""
        with self.lock:
            return self.conn.total_changes

    def memo_get(self, key: Hashable) -> Any:
        """A value remembered for ``key`` (keys include :meth:`version`, so stale entries never match)."""
        with self.lock:
            value = self._memo.get(key)
            if value is not None:
                self._memo.move_to_end(key)
            return value

    def memo_put(self, key: Hashable, value: Any) -> None:
        with self.lock:
            self._memo[key] = value
            self._memo.move_to_end(key)
            while len(self._memo) > _MEMO_SIZE:
                self._memo.popitem(last=False)

    def analyze(self) -> None:
        """Refresh the planner's statistics (after bulk loads), so that it picks the right index."""
        with self.lock:
            self.conn.execute("ANALYZE")

    def insert(self, table: str, values: dict[str, Any]) -> None:
        root = self.dictionary.root(table)
        cols = [c for c in values if c in self.columns[root]]
        sql = f"INSERT INTO {quote(root)} ({', '.join(quote(c) for c in cols)}) VALUES ({', '.join('?' for _ in cols)})"
        self.execute(sql, [values[c] for c in cols])

    def insert_many(self, table: str, columns: list[str], rows: Sequence[Sequence[Any]]) -> None:
        """Bulk insert for seeding; bypasses platform rules on purpose."""
        root = self.dictionary.root(table)
        sql = (
            f"INSERT INTO {quote(root)} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})"
        )
        with self.transaction():
            self.conn.executemany(sql, rows)

    def update(self, table: str, sys_id: str, values: dict[str, Any]) -> None:
        root = self.dictionary.root(table)
        cols = [c for c in values if c in self.columns[root] and c != "sys_id"]
        if not cols:
            return
        sql = f"UPDATE {quote(root)} SET {', '.join(f'{quote(c)} = ?' for c in cols)} WHERE sys_id = ?"
        self.execute(sql, [*(values[c] for c in cols), sys_id])

    def delete(self, table: str, sys_id: str) -> None:
        self.execute(f"DELETE FROM {quote(self.dictionary.root(table))} WHERE sys_id = ?", [sys_id])

    def get(self, table: str, sys_id: str) -> dict[str, Any] | None:
        """One row of ``table`` (or of a class extending it) as a column -> raw value dict."""
        root = self.dictionary.root(table)
        cursor = self.execute(f"SELECT * FROM {quote(root)} WHERE sys_id = ?", [sys_id])
        row = cursor.fetchone()
        if row is None:
            return None
        record = dict(zip([d[0] for d in cursor.description], row, strict=True))
        if table != root and record.get("sys_class_name") not in self.dictionary.descendants(table):
            return None
        return record

    def find(self, table: str, where: dict[str, Any], limit: int | None = None) -> list[dict[str, Any]]:
        """Rows matching exact column values (an internal helper for platform rules)."""
        root = self.dictionary.root(table)
        clauses = [f"{quote(k)} IS ?" for k in where]
        params = list(where.values())
        if table != root:
            classes = self.dictionary.descendants(table)
            clauses.append(f"sys_class_name IN ({', '.join('?' for _ in classes)})")
            params.extend(classes)
        sql = f"SELECT * FROM {quote(root)}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY rowid"
        if limit:
            sql += f" LIMIT {int(limit)}"
        cursor = self.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def next_number(self, prefix: str, start: int = 10001) -> int:
        with self.transaction():
            row = self.conn.execute("SELECT next FROM _number_counter WHERE prefix = ?", [prefix]).fetchone()
            value = row[0] if row else start
            self.conn.execute(
                "INSERT INTO _number_counter(prefix, next) VALUES (?, ?) "
                "ON CONFLICT(prefix) DO UPDATE SET next = excluded.next",
                [prefix, value + 1],
            )
        return value

    def reserve_numbers(self, prefix: str, count: int, start: int = 10001) -> int:
        """Reserve ``count`` consecutive numbers, returning the first (bulk seeding)."""
        with self.transaction():
            row = self.conn.execute("SELECT next FROM _number_counter WHERE prefix = ?", [prefix]).fetchone()
            value = row[0] if row else start
            self.conn.execute(
                "INSERT INTO _number_counter(prefix, next) VALUES (?, ?) "
                "ON CONFLICT(prefix) DO UPDATE SET next = excluded.next",
                [prefix, value + count],
            )
        return value

    def put_content(self, sys_id: str, content: bytes) -> None:
        self.execute("INSERT OR REPLACE INTO _attachment_content(sys_id, content) VALUES (?, ?)", [sys_id, content])

    def get_content(self, sys_id: str) -> bytes | None:
        row = self.execute("SELECT content FROM _attachment_content WHERE sys_id = ?", [sys_id]).fetchone()
        return None if row is None else bytes(row[0])

    def delete_content(self, sys_id: str) -> None:
        self.execute("DELETE FROM _attachment_content WHERE sys_id = ?", [sys_id])

    def close(self) -> None:
        self.conn.close()
