"""PostgreSQL backend for read models: a small psycopg 3 connection pool."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from projections.database import Cursor, Database, Row


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
        """Open a transaction; a write transaction runs in pipeline mode.

        In pipeline mode statements are sent without waiting for their
        results, so applying a batch of events costs a few round trips
        instead of one per statement. A fetch waits for the results sent
        so far, and an error raised by any statement surfaces at the next
        fetch or at commit, which then rolls the transaction back.
        """
        with self.pool.connection() as connection:
            pipeline = connection.pipeline() if write else nullcontext()
            with pipeline, connection.transaction(), connection.cursor() as cursor:
                if not write:
                    # Every query of one read sees the same committed state.
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield PostgresCursor(cursor)

    def lock(self, cursor: Cursor, name: str) -> None:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(self.schema, name),))

    def table_names(self, cursor: Cursor) -> set[str]:
        rows = cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (self.schema,),
        ).fetchall()
        return {row["table_name"] for row in rows}

    def close(self) -> None:
        self.pool.close()


def _lock_key(schema: str, name: str) -> int:
    """Map a schema and lock name to a signed 64-bit advisory lock key."""
    digest = zlib.crc32(f"{schema}.{name}".encode())
    return digest - (1 << 31)
