"""PostgreSQL backend for read models: a small psycopg 3 connection pool."""

from __future__ import annotations

import hashlib
import time
import weakref
import zlib
from collections.abc import Iterable, Iterator, Sequence, Sized
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, suppress
from functools import cache, lru_cache
from typing import Any

import psycopg
import psycopg_pool
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from chain.arrays import TextArray
from projections.database import Cursor, Database, LockTimeoutError, Row

# psycopg_pool retries a failed connection with doubling delays until this
# many seconds have passed, then gives up until a request needs one. Its
# default, 300 s, can leave a pool waiting a minute after the database is back.
RECONNECT_TIMEOUT_SECONDS = 5.0

SESSION_LOCK_PREFIX = "session:"

# A pooled connection idle for longer than this is tested before it is
# handed out.
CHECK_AFTER_IDLE_SECONDS = 1.0

# The statistics target of an ANALYZE that only needs a rough picture of a
# table. ANALYZE samples 300 rows per unit of target, and the default is 100.
COARSE_STATISTICS_TARGET = 10

# The BEGIN of a read transaction: all its queries see one committed snapshot.
READ_SNAPSHOT_BEGIN = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

# The server ends a transaction left idle this long, such as one whose
# process hangs while holding a read model's lock.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 30_000
# `build_indexes` builds on this many connections at once, one per core of
# the machines the service was measured on.
INDEX_BUILDERS = 2
# From this many rows on, `copy_rows` leaves pipeline mode for a COPY stream.
COPY_FROM_ROWS = 64


class PostgresCursor(Cursor):
    """A psycopg cursor, in pipeline mode for the write transactions that ask for it.

    In pipeline mode statements are sent without waiting for their
    results. COPY cannot run there, so a large `copy_rows` leaves pipeline
    mode for its stream and enters it again afterwards.
    """

    def __init__(
        self,
        cursor: psycopg.Cursor[Any],
        *,
        pipelined: bool = False,
        begin: str | None = None,
        prepared: set[str] | None = None,
    ) -> None:
        self._cursor = cursor
        self._pipeline: AbstractContextManager[Any] | None = None
        # A BEGIN statement not sent yet, which goes with the first statement.
        self._begin = begin
        # The names of the statements prepared on this cursor's connection.
        self._prepared = set() if prepared is None else prepared
        # Whether the pool replaces the connection when the transaction ends.
        self.renew = False
        if pipelined:
            self._enter_pipeline()

    def execute(self, statement: str, params: Sequence[Any] = ()) -> PostgresCursor:
        if self._begin is not None and not params and _plain_text(statement):
            begin, self._begin = self._begin, None
            # Without parameters psycopg sends the text as a simple query,
            # which may hold several statements: one round trip for both.
            # The BEGIN's result is skipped.
            self._cursor.execute(f"{begin};\n{statement}")
            self._cursor.nextset()
            return self
        self._send_begin()
        self._cursor.execute(statement, tuple(params))  # type: ignore[arg-type]
        return self

    def _send_begin(self) -> None:
        """Send the BEGIN still due, on its own."""
        if self._begin is not None:
            begin, self._begin = self._begin, None
            self._cursor.execute(begin)

    def execute_planned(self, statement: str) -> PostgresCursor:
        """Run `statement` as the transaction's first statement, prepared on this connection.

        BEGIN, PREPARE on the connection's first use, and EXECUTE go as one
        simple query, in one round trip, and the server plans the statement
        once per connection instead of each time. psycopg deallocates every
        prepared statement after a rollback or a DROP on the connection, so
        a statement found missing is prepared again in a new transaction.
        Later in a transaction the statement is simply executed.
        """
        if self._begin is None or not _plain_text(statement):
            return self.execute(statement)
        name = _statement_name(statement)
        try:
            try:
                self._begin_and_execute(self._begin, name, statement)
            except (psycopg.errors.InvalidSqlStatementName,
                    psycopg.errors.DuplicatePreparedStatement):
                # Nothing but the BEGIN ran before, so the transaction starts over.
                self._cursor.execute("ROLLBACK")
                with suppress(psycopg.errors.InvalidSqlStatementName):
                    self._cursor.execute(f"DEALLOCATE {name}")
                self._prepared.discard(name)
                self._begin_and_execute(self._begin, name, statement)
        except BaseException:
            # Whether the statement now exists on the server is unknown, so
            # the connection goes: the pool opens a new one in its place.
            self._prepared.clear()
            self._cursor.connection.close()
            raise
        self._begin = None
        return self

    def _begin_and_execute(self, begin: str, name: str, statement: str) -> None:
        parts = [begin]
        if name not in self._prepared:
            parts.append(f"PREPARE {name} AS {statement}")
        parts.append(f"EXECUTE {name}")
        # A line break before each semicolon ends a trailing -- comment.
        self._cursor.execute("\n; ".join(parts))
        self._prepared.add(name)
        for _ in parts[1:]:
            self._cursor.nextset()

    def renew_connection(self) -> None:
        """Have the pool replace the connection when the transaction ends.

        libpq keeps a connection's input and output buffers at the size of
        the largest message until the connection closes. A connection
        that received a 24 MiB page of events kept about 47 MiB resident.
        """
        self.renew = True

    @property
    def began(self) -> bool:
        return self._begin is None

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        self._send_begin()
        self._cursor.executemany(statement, rows)  # type: ignore[arg-type]

    def any_of(self, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        """Return `= ANY(%s)` with the values as one array parameter.

        psycopg neither prepares nor caches a statement with more than 50
        parameters, so an IN list of a caller's 100 projects was parsed
        and planned again on every request. One array parameter keeps the
        statement text the same for every caller. Strings go as a text
        array encoded here, which spares psycopg inspecting each element.
        """
        if all(type(value) is str for value in values):
            return "= ANY(%s)", (TextArray(values),)
        return "= ANY(%s)", (list(values),)

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert many rows in one COPY stream, or a few in pipelined INSERTs.

        COPY takes a few microseconds per row where an INSERT takes over
        ten, but leaving pipeline mode for it waits for the results of the
        statements sent before, so a handful of rows go as INSERTs.
        """
        if self._pipeline is not None:
            if not isinstance(rows, Sized):
                rows = list(rows)
            if len(rows) < COPY_FROM_ROWS:
                self._cursor.executemany(_insert_statement(table, tuple(columns)), rows)
                return
            self.leave_pipeline()
            self._copy(table, columns, rows)
            self._enter_pipeline()
            return
        self._copy(table, columns, rows)

    def _copy(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        self._send_begin()
        with self._cursor.copy(_copy_statement(table, tuple(columns))) as copy:
            for row in rows:
                copy.write_row(row)

    def fetchone(self) -> Row | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Row]:
        return self._cursor.fetchall()

    def _enter_pipeline(self) -> None:
        pipeline = self._cursor.connection.pipeline()
        pipeline.__enter__()
        self._pipeline = pipeline

    def leave_pipeline(self, error: BaseException | None = None) -> None:
        """Wait for the results of every statement sent and raise the first error among them.

        With `error`, the transaction is failing already: results are
        discarded and nothing is raised.
        """
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is None:
            return
        if error is None:
            pipeline.__exit__(None, None, None)
            return
        # The transaction's own error is the one to raise.
        with suppress(Exception):
            pipeline.__exit__(type(error), error, error.__traceback__)


@cache
def _insert_statement(table: str, columns: tuple[str, ...]) -> sql.Composed:
    return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join([sql.Placeholder()] * len(columns)),
    )


@cache
def _copy_statement(table: str, columns: tuple[str, ...]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )


# The planner's cost of reading a page out of order, for read-model queries.
# PostgreSQL's default of 4 models spinning disks. With it, the first page of
# a release's history scanned the audit events in position order, filtering
# out 20,000 rows of other subjects, instead of reading the release's 101 rows
# through its subject index: 6 ms instead of 0.4. Read models mostly sit in
# memory, and on SSDs an out-of-order page costs little more than the next one.
RANDOM_PAGE_COST = 1.1


class IdleCheck:
    """Pool callbacks that test a connection before use only after it sat idle.

    Testing costs a round trip, which a busy pool would pay on every
    transaction. A connection handed back moments ago is almost always
    alive, and should it have died, the transaction fails like any other
    that meets a lost connection.
    """

    def __init__(self, idle_seconds: float = CHECK_AFTER_IDLE_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self._returned_at: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )

    def returned(self, connection: psycopg.Connection[Any]) -> None:
        self._returned_at[connection] = time.monotonic()

    def check(self, connection: psycopg.Connection[Any]) -> None:
        returned_at = self._returned_at.get(connection)
        if returned_at is None or time.monotonic() - returned_at > self.idle_seconds:
            ConnectionPool.check_connection(connection)


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
        statement_timeout: float = 0,
    ) -> None:
        self.schema = schema
        # The statements prepared by `execute_planned` on each connection.
        self._prepared: weakref.WeakKeyDictionary[psycopg.Connection[Any], set[str]] = (
            weakref.WeakKeyDictionary()
        )
        options = (
            f"-c search_path={schema}"
            f" -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT_MS}"
            f" -c statement_timeout={int(statement_timeout * 1000)}"
            f" -c random_page_cost={RANDOM_PAGE_COST}"
        )
        # `timeout` bounds the wait for a free connection. The check finds
        # connections that a database restart closed before they are used.
        idle_check = IdleCheck()
        self.pool = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs={"row_factory": dict_row, "options": options, "autocommit": True},
            check=idle_check.check,
            reset=idle_check.returned,
            reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
            name="read-models",
            open=True,
        )

    @contextmanager
    def transaction(
        self, *, write: bool = False, lock_timeout: float | None = None, pipeline: bool = False,
        durable: bool = True,
    ) -> Iterator[Cursor]:
        """Open a transaction, in pipeline mode for writes that ask for it.

        In pipeline mode statements are sent without waiting for their
        results, so applying a batch of events costs a few round trips
        instead of one per statement. A fetch waits for the results sent
        so far, and an error raised by any statement surfaces at the next
        fetch or at commit, which then rolls the transaction back. Schema
        changes do not ask for it, because fetches after DDL statements do
        not get the results they expect there.
        """
        try:
            with self.pool.connection() as connection:
                if not write and lock_timeout is None:
                    prepared = self._prepared.setdefault(connection, set())
                    with _snapshot(connection, prepared) as cursor:
                        yield cursor
                    self._renew_if_requested(cursor)
                    return
                _characterize(connection, read_only=not write)
                with connection.transaction(), connection.cursor() as raw:
                    cursor = PostgresCursor(raw, pipelined=write and pipeline)
                    try:
                        if lock_timeout is not None:
                            cursor.execute(
                                f"SET LOCAL lock_timeout = {max(int(lock_timeout * 1000), 1)}"
                            )
                        if write and not durable:
                            # The commit then waits for no disk flush, and the
                            # locks taken in the transaction are released sooner.
                            cursor.execute("SET LOCAL synchronous_commit = off")
                        yield cursor
                    except BaseException as error:
                        cursor.leave_pipeline(error)
                        raise
                    cursor.leave_pipeline()
                self._renew_if_requested(cursor)
        except psycopg.errors.LockNotAvailable as error:
            raise LockTimeoutError(f"Lock wait exceeded {lock_timeout} s.") from error

    def _renew_if_requested(self, cursor: PostgresCursor) -> None:
        """Have the pool replace its connections after a transaction that requested it.

        The transaction's connection is closed when it comes back, and
        the others as they come back. Which connection is which is not
        exposed by the pool, and a renewal is rare.
        """
        if cursor.renew:
            self.pool.drain()

    def build_indexes(self, cursor: Cursor, statements: Sequence[str]) -> None:
        """Build indexes on INDEX_BUILDERS connections of their own at once.

        An index build sorts on one core, and builds of several indexes of
        one table may run at the same time. The connections are opened
        outside the pool, so a small pool cannot make the builds wait. The
        transaction of `cursor`, which holds the read model's lock, sits
        idle meanwhile, so its idle timeout is lifted until it ends.
        """
        if len(statements) < 2:
            super().build_indexes(cursor, statements)
            return
        cursor.execute("SET LOCAL idle_in_transaction_session_timeout = 0")

        def build(statement: str) -> None:
            with psycopg.connect(self.pool.conninfo, **self.pool.kwargs) as connection:
                connection.execute(statement)

        with ThreadPoolExecutor(INDEX_BUILDERS, thread_name_prefix="index-builder") as builders:
            for done in [builders.submit(build, statement) for statement in statements]:
                done.result()

    def sample_coarsely(self, cursor: Cursor) -> None:
        cursor.execute(f"SET LOCAL default_statistics_target = {COARSE_STATISTICS_TARGET}")

    def lock(self, cursor: Cursor, name: str) -> None:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s)", (advisory_lock_key(self.schema, name),)
        )

    @contextmanager
    def session_lock(self, name: str) -> Iterator[bool]:
        """Hold a session-level advisory lock on a connection kept out of the pool.

        The server releases the lock when that connection closes, so a
        holder killed by kill -9 releases it too.
        """
        key = advisory_lock_key(self.schema, SESSION_LOCK_PREFIX + name)
        connection = self.pool.getconn()
        _characterize(connection, read_only=False)
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
        key = advisory_lock_key(self.schema, SESSION_LOCK_PREFIX + name)
        with self.pool.connection() as connection:
            _characterize(connection, read_only=False)
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


@contextmanager
def _snapshot(connection: psycopg.Connection[Any], prepared: set[str]
              ) -> Iterator[PostgresCursor]:
    """Run a read transaction whose queries all see one committed snapshot.

    The pool's connections are in autocommit mode, so psycopg sends no
    BEGIN of its own. The cursor sends BEGIN with the first statement, in
    the same round trip when that statement has no parameters.
    """
    with connection.cursor() as raw:
        cursor = PostgresCursor(raw, begin=READ_SNAPSHOT_BEGIN, prepared=prepared)
        try:
            yield cursor
        except BaseException:
            _end_failed_read(raw, prepared)
            raise
        if cursor.began:
            raw.execute("COMMIT")


def _end_failed_read(raw: psycopg.Cursor[Any], prepared: set[str]) -> None:
    """End a read transaction that raised, keeping the connection's prepared statements.

    A read that wrote nothing ends the same with COMMIT as with ROLLBACK,
    and psycopg deallocates every prepared statement after a ROLLBACK.
    After a failed statement only ROLLBACK ends it. Then psycopg has
    deallocated its own, and DEALLOCATE ALL removes the rest, so what
    `prepared` lists is known again.
    """
    status = raw.connection.info.transaction_status
    with suppress(psycopg.Error):
        if status == TransactionStatus.INTRANS:
            raw.execute("COMMIT")
        elif status == TransactionStatus.INERROR:
            raw.execute("ROLLBACK")
            prepared.clear()
            raw.execute("DEALLOCATE ALL")


@lru_cache(maxsize=256)
def _statement_name(statement: str) -> str:
    """Return the name to prepare `statement` under: a 64-bit digest of its text."""
    return f"ledger_{hashlib.blake2b(statement.encode(), digest_size=8).hexdigest()}"


def _plain_text(statement: object) -> bool:
    """Return whether `statement` can go as it is in a simple query.

    Composed SQL must be rendered by psycopg first, and with no parameters
    psycopg would still read `%%` in later statements as one `%`.
    """
    return isinstance(statement, str) and "%" not in statement


def _characterize(connection: psycopg.Connection[Any], *, read_only: bool) -> None:
    """Make the connection's next BEGIN start a read-only snapshot or a default transaction."""
    if read_only:
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.read_only = True
    else:
        connection.isolation_level = None
        connection.read_only = None


def advisory_lock_key(schema: str, name: str) -> int:
    """Map a schema and lock name to a signed 64-bit advisory lock key."""
    digest = zlib.crc32(f"{schema}.{name}".encode())
    return digest - (1 << 31)
