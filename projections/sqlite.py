"""SQLite backend for read models: one connection per thread, WAL journal."""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from projections.database import Cursor, Database, LockTimeoutError, Row

BUSY_TIMEOUT_SECONDS = 30
# SQLite's default: a commit moves the write-ahead log into the database file
# once the log has this many pages.
CHECKPOINT_PAGES = 1000
# The same during bulk writes (40 MB of 4 KiB pages), so that pages changed
# again and again are copied less often. A replay of the audit model into
# SQLite ran 17 % faster.
BULK_CHECKPOINT_PAGES = 10_000
# Threads that SQLite may add to sort the rows of an index it builds. The
# nine indexes of the audit model on 100,000 events took 0.95 s with two
# instead of 1.2 s.
INDEX_BUILD_THREADS = 2
_LOCK_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class SQLiteCursor(Cursor):
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def execute(self, statement: str, params: Sequence[Any] = ()) -> SQLiteCursor:
        self._cursor.execute(statement.replace("%s", "?"), tuple(params))
        return self

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cursor.executemany(statement.replace("%s", "?"), rows)

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        marks = ", ".join(["?"] * len(columns))
        self._cursor.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
        )

    def fetchone(self) -> Row | None:
        row = self._cursor.fetchone()
        return None if row is None else dict(row)

    def fetchall(self) -> list[Row]:
        return [dict(row) for row in self._cursor.fetchall()]


class SQLiteDatabase(Database):
    """Read-model storage in the same SQLite file as the ledger."""

    dialect = "sqlite"
    # sqlite3 releases the interpreter lock on every row, and each row then
    # waited for the decoding thread: replays ran 5 to 25 % slower with it.
    reads_ahead = False

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
            )
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def transaction(
        self, *, write: bool = False, lock_timeout: float | None = None, pipeline: bool = False,
        durable: bool = True,
    ) -> Iterator[Cursor]:
        connection = self._connection()
        if lock_timeout is None:
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        else:
            self._begin_within(connection, write, lock_timeout)
        try:
            yield SQLiteCursor(connection.cursor())
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    @staticmethod
    def _begin_within(connection: sqlite3.Connection, write: bool, lock_timeout: float) -> None:
        connection.execute(f"PRAGMA busy_timeout = {max(int(lock_timeout * 1000), 1)}")
        try:
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.OperationalError as error:
            if "locked" in str(error):
                raise LockTimeoutError(f"Lock wait exceeded {lock_timeout} s.") from error
            raise
        finally:
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}")

    @contextmanager
    def bulk_writes(self) -> Iterator[None]:
        """Checkpoint this thread's commits every BULK_CHECKPOINT_PAGES pages until the block ends.

        Requests keep the default, because the commit that reaches the
        threshold copies the log's pages itself, up to ten times as many.
        """
        connection = self._connection()
        connection.execute(f"PRAGMA wal_autocheckpoint={BULK_CHECKPOINT_PAGES}")
        try:
            yield
        finally:
            connection.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")

    def build_indexes(self, cursor: Cursor, statements: Sequence[str]) -> None:
        """Run CREATE INDEX statements on `cursor`, sorting on INDEX_BUILD_THREADS threads."""
        row = cursor.execute("PRAGMA threads").fetchone()
        previous = row["threads"] if row else 0
        cursor.execute(f"PRAGMA threads = {INDEX_BUILD_THREADS}")
        try:
            super().build_indexes(cursor, statements)
        finally:
            cursor.execute(f"PRAGMA threads = {int(previous)}")

    def lock(self, cursor: Cursor, name: str) -> None:
        """Nothing to do: a write transaction already holds SQLite's only write lock."""

    @contextmanager
    def session_lock(self, name: str) -> Iterator[bool]:
        """Hold an flock on a file beside the database; the kernel drops it if the process dies."""
        with open(self._lock_path(name), "ab") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                acquired = False
            else:
                acquired = True
            yield acquired

    def is_locked(self, name: str) -> bool:
        path = self._lock_path(name)
        if not os.path.exists(path):
            return False
        with open(path, "rb") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False

    def is_unavailable(self, error: BaseException) -> bool:
        """Return whether `error` is SQLite's busy timeout running out."""
        return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)

    def _lock_path(self, name: str) -> str:
        return f"{self.path}-{_LOCK_NAME_UNSAFE.sub('_', name)}.lock"

    def table_names(self, cursor: Cursor) -> set[str]:
        rows = cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {row["name"] for row in rows}

    def column_names(self, cursor: Cursor, table: str) -> set[str]:
        return {row["name"] for row in cursor.execute(f"PRAGMA table_info({table})").fetchall()}

    def index_names(self, cursor: Cursor, table: str) -> set[str]:
        """Return the named indexes; SQLite renames the automatic ones with their table."""
        rows = cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = %s"
            " AND sql IS NOT NULL",
            (table,),
        ).fetchall()
        return {row["name"] for row in rows}

    def rename_index(
        self, cursor: Cursor, old: str, new: str, create_statement: str | None
    ) -> None:
        """Drop `old` and build `new`, because SQLite cannot rename an index.

        A rebuild's switch does this for every index while it holds the
        live model's lock, so the build sorts on threads as fills do.
        """
        if create_statement is None:
            raise ValueError(f"Index {old!r} cannot be renamed to {new!r} without its statement.")
        cursor.execute(f"DROP INDEX {old}")
        self.build_indexes(cursor, [create_statement])

    def close(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()
