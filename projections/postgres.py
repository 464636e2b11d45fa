"""PostgreSQL backend for read models: a small psycopg 3 connection pool."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from projections.database import Cursor, Database, Row

SESSION_LOCK_PREFIX = "session:"


class PostgresCursor(Cursor):
    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    def execute(self, statement: str, params: Sequence[Any] = ()) -> PostgresCursor:
        self._cursor.execute(statement, tuple(params))  # type: ignore[arg-type]
        return self

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cursor.executemany(statement, rows)  # type: ignore[arg-type]

    def fetchone(self) -> Row | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Row]:
        return self._cursor.fetchall()


class PostgresDatabase(Database):
    """Read-model storage in the ledger's PostgreSQL schema."""

    dialect = "postgresql"

    def __init__(
        self,
        conninfo: str,
        schema: str,
        *,
        min_size: int = 1,
        max_size: int = 4,
        timeout: float = 10.0,
    ) -> None:
        self.schema = schema
        self.pool = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs={
                "row_factory": dict_row,
                "options": f"-c search_path={schema} -c idle_in_transaction_session_timeout=30000",
            },
            open=True,
        )

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Cursor]:
        with self.pool.connection() as connection, connection.transaction():
            with connection.cursor() as cursor:
                yield PostgresCursor(cursor)

    def lock(self, cursor: Cursor, name: str) -> None:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(self.schema, name),))

    @contextmanager
    def session_lock(self, name: str) -> Iterator[bool]:
        """Hold a session-level advisory lock on a connection kept out of the pool.

        The server releases the lock when that connection closes, so a
        holder killed by kill -9 releases it too.
        """
        key = _lock_key(self.schema, SESSION_LOCK_PREFIX + name)
        connection = self.pool.getconn()
        acquired = False
        try:
            acquired = connection.execute(
                "SELECT pg_try_advisory_lock(%s) AS acquired", (key,)
            ).fetchone()["acquired"]
            connection.commit()
            yield acquired
        finally:
            try:
                if acquired:
                    connection.execute("SELECT pg_advisory_unlock(%s)", (key,))
                    connection.commit()
            except psycopg.Error:
                # Closing the session releases the lock, so the pool never
                # hands out a connection that still holds it.
                connection.close()
            self.pool.putconn(connection)

    def is_locked(self, name: str) -> bool:
        key = _lock_key(self.schema, SESSION_LOCK_PREFIX + name)
        with self.pool.connection() as connection:
            acquired = connection.execute(
                "SELECT pg_try_advisory_lock(%s) AS acquired", (key,)
            ).fetchone()["acquired"]
            if acquired:
                connection.execute("SELECT pg_advisory_unlock(%s)", (key,))
        return not acquired

    def is_unavailable(self, error: BaseException) -> bool:
        return isinstance(error, psycopg.OperationalError | psycopg_pool.PoolTimeout)

    def table_names(self, cursor: Cursor) -> set[str]:
        rows = cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (self.schema,),
        ).fetchall()
        return {row["table_name"] for row in rows}

    def column_names(self, cursor: Cursor, table: str) -> set[str]:
        rows = cursor.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s",
            (self.schema, table),
        ).fetchall()
        return {row["column_name"] for row in rows}

    def index_names(self, cursor: Cursor, table: str) -> set[str]:
        """Return every index on `table`, those behind primary keys and unique constraints too."""
        rows = cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
            (self.schema, table),
        ).fetchall()
        return {row["indexname"] for row in rows}

    def rename_index(
        self, cursor: Cursor, old: str, new: str, create_statement: str | None
    ) -> None:
        """Rename in place; the constraint an index backs takes the new name too."""
        cursor.execute(f"ALTER INDEX {old} RENAME TO {new}")

    def close(self) -> None:
        self.pool.close()


def _lock_key(schema: str, name: str) -> int:
    """Map a schema and lock name to a signed 64-bit advisory lock key."""
    digest = zlib.crc32(f"{schema}.{name}".encode())
    return digest - (1 << 31)
