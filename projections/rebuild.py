"""Rebuilding a read model from position zero beside the live one, then switching readers.

The copy lives in tables named COPY_PREFIX + the live name, filled by the
projection's own handlers through a cursor that rewrites its table names.
Its position is tracked under its own name in the positions table, in the
same transaction as its rows, so a rebuild killed at any moment resumes
where its last batch committed. The switch is one transaction holding
the live model's lock. It catches the copy up with the ledger, drops the
live tables, renames the copy's tables and indexes to the live names and
moves the live position to the copy's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import zip_longest
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import Notification

from domain.errors import LedgerError
from projections.database import Cursor, Database, Row
from projections.projection import Projection, index_name
from projections.projector import (
    LIVE,
    POSITIONS_TABLE,
    REBUILDING,
    apply_event,
    apply_notification,
    create_positions_table,
    end_batch,
    is_unavailable,
    now_text,
    record_failure,
)
from projections.read_ahead import Batch, ReadAhead, next_batch, read_ahead_if, read_batch

COPY_PREFIX = "rebuild_"
COPY_SUFFIX = ":rebuild"
DEFAULT_REBUILD_BATCH_SIZE = 1000
# PostgreSQL cuts longer identifiers short (NAMEDATALEN 64, less one byte).
MAX_IDENTIFIER_LENGTH = 63
REWRITE_CACHE_SIZE = 4096
# SQLite has a single write lock, and a writer waiting for it sleeps at most
# 100 ms between tries (the default busy handler of SQLite 3). A rebuild that
# pauses that long after each batch lets a waiting writer take the lock.
SQLITE_PAUSE_SECONDS = 0.1

_TABLE_STATEMENT = re.compile(
    r"\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE
)
_INDEX_STATEMENT = re.compile(
    r"\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s+ON\s+(\w+)",
    re.IGNORECASE,
)
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


class RebuildError(LedgerError):
    """Raised when a rebuild cannot start or cannot go on; the message names the next step."""


def copy_position_name(name: str) -> str:
    """Return the name under which the rebuild copy of read model `name` tracks its position."""
    return name + COPY_SUFFIX


def rebuild_lock_name(name: str) -> str:
    """Return the session lock a running rebuild of read model `name` holds."""
    return "rebuild:" + name


@dataclass(frozen=True)
class Progress:
    """How far a rebuild has come; `applied` and `elapsed` count this run only."""

    name: str
    position: int
    head: int
    applied: int
    elapsed: float
    done: bool = False


class CopySchema:
    """The tables and indexes a projection creates, and the names of their copies.

    Only CREATE TABLE and CREATE INDEX statements are understood, because
    a copy must be renamed object by object when it goes live.
    """

    def __init__(self, projection: Projection) -> None:
        self.projection = projection
        self.tables: list[str] = []
        self.index_statements: dict[str, str] = {}
        for statement in projection.create_statements:
            self._read(statement)
        owned = sorted([*self.tables, *self.index_statements], key=len, reverse=True)
        self._owned = re.compile(
            r"(?<![A-Za-z0-9_])(" + "|".join(map(re.escape, owned)) + r")(?![A-Za-z0-9_])"
        )
        self.rewrite = lru_cache(maxsize=REWRITE_CACHE_SIZE)(self._rewrite)

    def _read(self, statement: str) -> None:
        index = _INDEX_STATEMENT.match(statement)
        table = _TABLE_STATEMENT.match(statement)
        if index is not None:
            self._check_name(index.group(1))
            self.index_statements[index.group(1)] = statement
        elif table is not None:
            self._check_name(table.group(1))
            self.tables.append(table.group(1))
        else:
            raise RebuildError(
                f"Read model {self.projection.name} cannot be rebuilt: its statement"
                f" {statement[:60]!r} is neither CREATE TABLE nor CREATE INDEX."
            )

    def _check_name(self, name: str) -> None:
        if not _IDENTIFIER.match(name) or len(COPY_PREFIX + name) > MAX_IDENTIFIER_LENGTH:
            raise RebuildError(
                f"Read model {self.projection.name} cannot be rebuilt: name {name!r} must be"
                " lower-case letters, digits and '_', at most"
                f" {MAX_IDENTIFIER_LENGTH - len(COPY_PREFIX)} characters."
            )

    def _rewrite(self, statement: str) -> str:
        return self._owned.sub(lambda match: COPY_PREFIX + match.group(1), statement)

    def copy_statements(self, *, query_indexes: bool = True) -> list[str]:
        """Return the statements that create the copy, with or without its query-only indexes."""
        return [
            self.rewrite(statement) for statement in self.projection.create_statements
            if query_indexes or index_name(statement) not in self.projection.query_indexes
        ]


class CopyCursor(Cursor):
    """A cursor that sends a projection's statements to the copies of its tables."""

    def __init__(self, cursor: Cursor, schema: CopySchema) -> None:
        self._cursor = cursor
        self._schema = schema

    def execute(self, statement: str, params: Sequence[Any] = ()) -> CopyCursor:
        self._cursor.execute(self._schema.rewrite(statement), params)
        return self

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cursor.executemany(self._schema.rewrite(statement), rows)

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        self._cursor.copy_rows(self._schema.rewrite(table), columns, rows)

    def fetchone(self) -> Row | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Row]:
        return self._cursor.fetchall()


class Rebuild:
    """Rebuilds one read model from position zero while the live one keeps serving.

    `report` is called after every committed batch and once when the
    copy has gone live. `pause` is a sleep after each batch, in seconds,
    to leave a busy database room for its live load. By default it is 0
    on PostgreSQL and SQLITE_PAUSE_SECONDS on SQLite, where the live
    load's writes would otherwise wait for the whole rebuild.
    """

    def __init__(
        self,
        ledger: Application,
        database: Database,
        projection: Projection,
        *,
        batch_size: int = DEFAULT_REBUILD_BATCH_SIZE,
        pause: float | None = None,
        report: Callable[[Progress], None] | None = None,
    ) -> None:
        if batch_size < 1:
            raise RebuildError(f"Invalid batch size {batch_size}: use 1 or more events.")
        self.ledger = ledger
        self.database = database
        self.projection = projection
        self.schema = CopySchema(projection)
        self.batch_size = batch_size
        if pause is None:
            pause = SQLITE_PAUSE_SECONDS if database.dialect == "sqlite" else 0.0
        self.pause = pause
        self.report = report or (lambda progress: None)
        self.copy_name = copy_position_name(projection.name)
        self._started = time.monotonic()
        self._applied = 0

    def run(self, *, restart: bool = False) -> int:
        """Rebuild, resuming an interrupted copy unless `restart`; return the live position.

        Raises RebuildError when another process is rebuilding the same
        read model.
        """
        with self.database.session_lock(rebuild_lock_name(self.projection.name)) as acquired:
            if not acquired:
                raise RebuildError(
                    f"A rebuild of {self.projection.name} is already running;"
                    " wait for it to finish."
                )
            try:
                self._prepare(restart)
                self._replay()
                self._create_query_indexes()
                return self._switch()
            except Exception as error:
                if not is_unavailable(self.database, error):
                    record_failure(self.database, self.copy_name, error)
                raise

    def head(self) -> int:
        return self.ledger.recorder.max_notification_id() or 0

    def _prepare(self, restart: bool) -> None:
        """Create the copy at position zero, or keep an interrupted one to resume."""
        with self.database.transaction(write=True) as cursor:
            create_positions_table(self.database, cursor)
            self.database.lock(cursor, self.copy_name)
            row = cursor.execute(
                f"SELECT position FROM {POSITIONS_TABLE} WHERE name = %s", (self.copy_name,)
            ).fetchone()
            existing = self.database.table_names(cursor)
            copies = [COPY_PREFIX + table for table in self.schema.tables]
            if row is not None and not restart and all(name in existing for name in copies):
                cursor.execute(
                    f"UPDATE {POSITIONS_TABLE} SET state = %s, error = NULL, updated_at = %s"
                    " WHERE name = %s",
                    (REBUILDING, now_text(), self.copy_name),
                )
                return
            for table in copies:
                cursor.execute(f"DROP TABLE IF EXISTS {table}")
            # Query-only indexes are built once the copy has caught up, in one
            # sort each, because no query reads the copy before it goes live.
            for statement in self.schema.copy_statements(query_indexes=False):
                cursor.execute(statement)
            cursor.execute(f"DELETE FROM {POSITIONS_TABLE} WHERE name = %s", (self.copy_name,))
            cursor.execute(
                f"INSERT INTO {POSITIONS_TABLE} (name, position, updated_at, state)"
                " VALUES (%s, 0, %s, %s)",
                (self.copy_name, now_text(), REBUILDING),
            )

    def _replay(self) -> None:
        """Apply batches until the copy is within one batch of the head.

        Where the database `reads_ahead`, the next batch is read and
        decoded in a thread while the current one is applied, as in a
        projector's catch-up. The head is read again only once the copy is
        within one batch of the last one read, so that the batch read
        ahead is for the range that comes next.
        """
        reader = read_ahead_if(self.database.reads_ahead,
                               partial(self._read_batch, decode_events=True))
        with reader as read_ahead:
            head = self.head()
            while True:
                position = self._apply_batch(head, fast_commit=True, read_ahead=read_ahead)
                self.report(self._progress(position, head))
                if head - position <= self.batch_size:
                    head = self.head()
                    if head - position <= self.batch_size:
                        return
                if self.pause:
                    time.sleep(self.pause)

    def _apply_batch(
        self, target: int, *, fast_commit: bool, read_ahead: ReadAhead | None = None
    ) -> int:
        # The events are read before the write transaction. On SQLite it
        # holds the database's write lock, and appends waiting for that lock
        # can hold every event store connection that the read would need.
        with self.database.transaction() as cursor:
            start = self._copy_position(cursor)
        read = next_batch(read_ahead, start, target, self._read_batch) if start < target else None
        with self.database.transaction(write=True, pipeline=True) as cursor:
            self.database.lock(cursor, self.copy_name)
            if fast_commit and self.database.dialect == "postgresql":
                # A batch lost in a server crash is replayed on resume, because
                # the copy's position commits in the same transaction.
                cursor.execute("SET LOCAL synchronous_commit = off")
            return self._apply_events(cursor, target, self.batch_size, read)

    def _read(self, position: int, target: int, limit: int) -> list[Notification]:
        return self.ledger.recorder.select_notifications(
            start=position, limit=limit, stop=target, inclusive_of_start=False
        )

    def _read_batch(self, position: int, target: int, decode_events: bool = False) -> Batch:
        return read_batch(self.ledger, position, target, self.batch_size, decode_events)

    def _apply_events(
        self,
        cursor: Cursor,
        target: int,
        limit: int,
        read: Batch | None = None,
    ) -> int:
        """Apply up to `limit` events after the copy's position; return the new position.

        `read` is a batch read beforehand. It is used if the copy is still
        at the position it follows under its lock, else the events are
        read again.
        """
        position = self._copy_position(cursor)
        if position >= target:
            return position
        events: Sequence[DomainEvent | None] = ()
        if read is not None and read.after == position:
            notifications, events = read.notifications, read.events or ()
        else:
            notifications = self._read(position, target, limit)
        copy_cursor = CopyCursor(cursor, self.schema)
        self.projection.begin_batch()
        for notification, event in zip_longest(notifications, events):
            if event is None:
                apply_notification(self.ledger, self.projection, copy_cursor, notification)
            else:
                apply_event(self.projection, copy_cursor, event, notification.id,
                            notification.topic)
        new_position = notifications[-1].id if len(notifications) == limit else target
        end_batch(self.projection, copy_cursor, position, new_position)
        cursor.execute(
            f"UPDATE {POSITIONS_TABLE} SET position = %s, updated_at = %s WHERE name = %s",
            (new_position, now_text(), self.copy_name),
        )
        self._applied += len(notifications)
        return new_position

    def _copy_position(self, cursor: Cursor) -> int:
        row = cursor.execute(
            f"SELECT position FROM {POSITIONS_TABLE} WHERE name = %s", (self.copy_name,)
        ).fetchone()
        if row is None:
            raise RebuildError(
                f"The rebuild copy of {self.projection.name} lost its position row;"
                " run the rebuild again with --restart."
            )
        return row["position"]

    def _create_query_indexes(self) -> None:
        with self.database.transaction(write=True) as cursor:
            self.database.lock(cursor, self.copy_name)
            self.database.build_indexes(cursor, [
                self.schema.rewrite(statement)
                for statement in self.projection.query_index_statements
            ])

    def _switch(self) -> int:
        """Catch the copy up under the live model's lock and make it the live model."""
        with self.database.transaction(write=True) as cursor:
            self.database.lock(cursor, self.projection.name)
            self.database.lock(cursor, self.copy_name)
            head = self.head()
            position = self._apply_events(cursor, head, self.batch_size)
            while position < head:
                position = self._apply_events(cursor, head, self.batch_size)
            self._replace_live_tables(cursor)
            cursor.execute(f"DELETE FROM {POSITIONS_TABLE} WHERE name = %s", (self.copy_name,))
            cursor.execute(
                f"DELETE FROM {POSITIONS_TABLE} WHERE name = %s", (self.projection.name,)
            )
            cursor.execute(
                f"INSERT INTO {POSITIONS_TABLE} (name, position, updated_at, state)"
                " VALUES (%s, %s, %s, %s)",
                (self.projection.name, position, now_text(), LIVE),
            )
        self.report(self._progress(position, head, done=True))
        return position

    def _replace_live_tables(self, cursor: Cursor) -> None:
        for table in self.schema.tables:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        for table in self.schema.tables:
            cursor.execute(f"ALTER TABLE {COPY_PREFIX}{table} RENAME TO {table}")
            for index in sorted(self.database.index_names(cursor, table)):
                if index.startswith(COPY_PREFIX):
                    live_index = index.removeprefix(COPY_PREFIX)
                    self.database.rename_index(
                        cursor, index, live_index, self.schema.index_statements.get(live_index)
                    )

    def _progress(self, position: int, head: int, done: bool = False) -> Progress:
        return Progress(
            name=self.projection.name,
            position=position,
            head=head,
            applied=self._applied,
            elapsed=time.monotonic() - self._started,
            done=done,
        )
