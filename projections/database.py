"""The interface that read models use to reach SQLite or PostgreSQL.

Read-model SQL is written once with `%s` placeholders in the subset of SQL
that both databases share; each backend adapts placeholders and locking.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import psycopg
import psycopg_pool
from eventsourcing.persistence import InterfaceError as LedgerInterfaceError
from eventsourcing.persistence import OperationalError as LedgerOperationalError

Row = dict[str, Any]

# Errors raised while a database is down, restarting, unreachable or out of
# connections, by the read models' drivers and by the event store.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg_pool.PoolTimeout,
    LedgerOperationalError,
    LedgerInterfaceError,
    sqlite3.OperationalError,
)


# From this many bytes in one result or one written batch, a backend may
# replace the connection afterwards. libpq keeps a connection's buffers at
# the size of the largest message it sent or received until it closes.
LARGE_RESULT_BYTES = 1024 * 1024


class LockTimeoutError(TimeoutError):
    """Raised when a transaction's lock wait exceeds its `lock_timeout`."""


class Cursor(ABC):
    """A database cursor that returns rows as dicts."""

    @abstractmethod
    def execute(self, statement: str, params: Sequence[Any] = ()) -> Cursor: ...

    @abstractmethod
    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abstractmethod
    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert many rows into `table` in one batch, without conflict handling."""

    @abstractmethod
    def fetchone(self) -> Row | None: ...

    @abstractmethod
    def fetchall(self) -> list[Row]: ...

    def execute_planned(self, statement: str) -> Cursor:
        """Run a statement without parameters, which a backend may keep planned per connection.

        PostgreSQL sends it with the transaction's BEGIN when it is the
        first statement. By default it is simply executed.
        """
        return self.execute(statement)

    def renew_connection(self) -> None:
        """Replace this transaction's connection once the transaction ends.

        Callers ask for it after a result or a write of LARGE_RESULT_BYTES
        or more. By default nothing happens.
        """
        return None

    def any_of(self, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        """Return a test that a value is one of `values`, to follow it, and its parameters.

        `f"project_id {test}"` matches the rows whose project_id is in `values`.
        """
        return f"IN ({', '.join(['%s'] * len(values))})", tuple(values)


class Database(ABC):
    """A connection source for read-model tables."""

    dialect: str
    # True when a catch-up without a deadline reads the next batch on a
    # second thread while it applies the current one.
    reads_ahead: bool = True

    @abstractmethod
    def transaction(
        self, *, write: bool = False, lock_timeout: float | None = None, pipeline: bool = False,
        durable: bool = True,
    ) -> AbstractContextManager[Cursor]:
        """Open a transaction that commits on success and rolls back on error.

        A write transaction on SQLite takes the database's write lock at
        once, so two writers never interleave. With `lock_timeout` (seconds),
        every lock wait in the transaction, that write lock and `lock()`
        included, raises LockTimeoutError once it lasts longer. `pipeline`
        lets a backend send a write transaction's statements without
        waiting for each result; only PostgreSQL does.

        A write transaction that is not `durable` returns from its commit
        before the commit reaches the disk. A crash of the database server
        may then undo it as a whole, with other recent transactions of its
        kind. A durable transaction committed before the crash stays. It suits
        writes that can be made again from the ledger, such as a batch of
        read-model rows together with the position it moves to. SQLite read
        models always commit this way (synchronous=NORMAL in WAL mode).
        """

    def bulk_writes(self) -> AbstractContextManager[None]:
        """Tune this thread's connection for a long run of large write batches."""
        return nullcontext()

    def build_indexes(self, cursor: Cursor, statements: Sequence[str]) -> None:
        """Run CREATE INDEX statements while the transaction of `cursor` holds the model's lock.

        By default they run on `cursor` itself.
        """
        for statement in statements:
            cursor.execute(statement)

    def sample_coarsely(self, cursor: Cursor) -> None:
        """Make the transaction's ANALYZE statements read a small sample of each table.

        By default nothing changes: SQLite's ANALYZE has no such setting,
        and took a hundredth of a replay of 100,000 events.
        """
        return None

    @abstractmethod
    def lock(self, cursor: Cursor, name: str) -> None:
        """Hold an exclusive lock on `name` until the transaction ends."""

    @abstractmethod
    def session_lock(self, name: str) -> AbstractContextManager[bool]:
        """Try to hold an exclusive lock on `name` while the block runs, across processes.

        Yields False at once when another holder has it. The lock is
        released when the block ends or the holding process dies, even by
        kill -9.
        """

    @abstractmethod
    def is_locked(self, name: str) -> bool:
        """Return whether some process holds the session lock on `name`."""

    @abstractmethod
    def is_unavailable(self, error: BaseException) -> bool:
        """Return whether `error` means the database could not be reached or locked in time."""

    @abstractmethod
    def close(self) -> None: ...

    def table_exists(self, cursor: Cursor, table: str) -> bool:
        return table in self.table_names(cursor)

    @abstractmethod
    def table_names(self, cursor: Cursor) -> set[str]: ...

    @abstractmethod
    def column_names(self, cursor: Cursor, table: str) -> set[str]: ...

    @abstractmethod
    def index_names(self, cursor: Cursor, table: str) -> set[str]:
        """Return the names of the indexes on `table` that can be renamed."""

    @abstractmethod
    def rename_index(
        self, cursor: Cursor, old: str, new: str, create_statement: str | None
    ) -> None:
        """Give index `old` the name `new`; `create_statement` creates it under `new`."""

