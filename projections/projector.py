"""Catching read models up with the ledger, in batches, exactly once per event."""

from __future__ import annotations

import inspect
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import cache, lru_cache, partial, singledispatchmethod

from eventsourcing.application import Application
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import Notification
from eventsourcing.persistence import OperationalError as LedgerOperationalError
from eventsourcing.utils import get_topic

from projections.database import LARGE_RESULT_BYTES, Cursor, Database, LockTimeoutError
from projections.projection import Projection, index_name
from projections.read_ahead import Batch, ReadAhead, next_batch, read_ahead_if, read_batch

logger = logging.getLogger(__name__)

POSITIONS_TABLE = "projection_positions"
CREATE_POSITIONS = (
    f"CREATE TABLE IF NOT EXISTS {POSITIONS_TABLE} ("
    " name TEXT PRIMARY KEY,"
    " position BIGINT NOT NULL,"
    " updated_at TEXT NOT NULL,"
    " state TEXT NOT NULL DEFAULT 'live',"
    " error TEXT)"
)
# Columns added after the first release, with their definitions; databases
# created before them gain them in `create_positions_table`.
ADDED_POSITION_COLUMNS = {
    "state": "TEXT NOT NULL DEFAULT 'live'",
    "error": "TEXT",
}
LIVE = "live"
REBUILDING = "rebuilding"
STOPPED = "stopped"
FAILED = "failed"
DEFAULT_BATCH_SIZE = 1000
# After a catch-up this large, the planner's statistics of the read model's
# tables are refreshed: the first catch-up of a 1,000,000-event ledger left
# them so stale that listing releases scanned all of them (1.1 s a page).
ANALYZE_AFTER_EVENTS = 10_000
# During a long catch-up the statistics are also refreshed each time a read
# model's applied events double from this count. Plans made while its tables
# were nearly empty scan them whole, and psycopg keeps such plans in prepared
# statements: a replay of delivery_v1 slowed down as its tables grew.
ANALYZE_DURING_FROM_EVENTS = 1000
# A read model filled from position zero up to at least this many events
# builds its query-only indexes once, after the fill: building an index in
# one sort costs a fraction of keeping it up to date row by row.
DEFER_INDEXES_FROM_EVENTS = 10_000


class CatchUpTimeoutError(TimeoutError):
    """Raised when a read model cannot reach a ledger position before a deadline."""

    def __init__(self, name: str, position: int, target: int) -> None:
        super().__init__(
            f"Read model {name} is at ledger position {position}, behind {target}."
        )
        self.name = name
        self.position = position
        self.target = target


@dataclass(frozen=True)
class Check:
    """The ledger head, each read model's position, and the versions of those that have one.

    `settled` names the read models behind the head by ignored events only.
    """

    head: int
    positions: dict[str, int]
    versions: dict[str, object]
    settled: frozenset[str] = frozenset()

    @property
    def behind(self) -> list[str]:
        """Return the read models that lack events that would change them."""
        return [name for name, position in self.positions.items()
                if position < self.head and name not in self.settled]

    @property
    def current(self) -> bool:
        return not self.behind


@dataclass(frozen=True)
class Lag:
    """How far a read model is behind the ledger.

    A `settled` read model lacks only events it ignores, so it lags by
    none, whatever its position. A `failed` one stopped on an event.
    """

    name: str
    position: int
    head: int
    settled: bool = False
    failed: bool = False

    @property
    def events(self) -> int:
        return 0 if self.settled else max(self.head - self.position, 0)


class Projector:
    """Applies ledger events to read models and records each model's position.

    Any number of processes may call `catch_up` at once: each batch runs in
    one transaction holding a lock on the projection's name, re-reads the
    position under that lock, and commits the rows with the new position.
    An event is therefore never applied twice nor skipped.
    """

    def __init__(
        self,
        ledger: Application,
        database: Database,
        projections: Sequence[Projection],
        batch_size: int = DEFAULT_BATCH_SIZE,
        defer_indexes_from: int = DEFER_INDEXES_FROM_EVENTS,
    ) -> None:
        self.ledger = ledger
        self.database = database
        self.projections = list(projections)
        self.batch_size = batch_size
        self.defer_indexes_from = defer_indexes_from

    def create_tables(self) -> None:
        with self.database.transaction(write=True) as cursor:
            create_positions_table(self.database, cursor)
            for projection in self.projections:
                for statement in projection.create_statements:
                    cursor.execute(statement)
                cursor.execute(
                    f"INSERT INTO {POSITIONS_TABLE} (name, position, updated_at)"
                    " VALUES (%s, 0, %s) ON CONFLICT (name) DO NOTHING",
                    (projection.name, _now()),
                )

    def head(self) -> int:
        """Return the position of the last event recorded in the ledger."""
        return self.ledger.recorder.max_notification_id() or 0

    def check(self, cursor: Cursor, projections: Sequence[Projection] | None = None) -> Check:
        """Return the ledger head, the read models' positions and their versions.

        One statement inside the caller's transaction. When no read model
        is behind (`Check.current`), the caller's queries see a state that
        includes each event recorded before the transaction began, or all
        of them that could change it, and each version is that of this
        state. Read models and ledger share one database
        on both backends. A read model without a position counts as being
        at zero.
        """
        chosen = tuple(self.projections if projections is None else projections)
        statement = _check_statement(
            self.ledger.recorder.events_table_name, self.database.dialect, chosen,
            SETTLED_WITHIN_EVENTS,
        )
        rows = cursor.execute_planned(statement).fetchall()
        versioned = [p for p in chosen if p.version_query is not None]
        found = {row["name"]: row["position"] for row in rows if row["name"] is not None}
        return Check(
            head=rows[0]["head"],
            positions={p.name: found.get(p.name, 0) for p in chosen},
            versions={p.name: rows[0][f"version_{index}"] for index, p in enumerate(versioned)},
            settled=frozenset(row["name"] for row in rows if row["settled"]),
        )

    def positions(self) -> dict[str, int]:
        with self.database.transaction() as cursor:
            rows = cursor.execute(f"SELECT name, position FROM {POSITIONS_TABLE}").fetchall()
        return {row["name"]: row["position"] for row in rows}

    def lags(self) -> list[Lag]:
        """Return each read model's lag, from one snapshot of the ledger and the positions."""
        with self.database.transaction() as cursor:
            check = self.check(cursor)
            rows = cursor.execute(f"SELECT name FROM {POSITIONS_TABLE} WHERE state = %s",
                                  (FAILED,)).fetchall()
        failed = {row["name"] for row in rows}
        return [
            Lag(p.name, check.positions[p.name], check.head,
                settled=p.name in check.settled, failed=p.name in failed)
            for p in self.projections
        ]

    def catch_up(
        self,
        target: int | None = None,
        deadline: float | None = None,
        projections: Sequence[Projection] | None = None,
        before_batch: Callable[[], None] | None = None,
        positions: dict[str, int] | None = None,
    ) -> int:
        """Apply events until every read model has reached `target`, default the head.

        The read models that are behind share each batch: its events are
        read and decoded once, then one transaction applies each event to
        every model that lacks it and moves their positions. Should a
        model fail there, the batch is retried one model at a time, so
        the others go on and the failure is recorded against the model at
        fault. `projections` limits the call to some read models, and
        `before_batch` runs before each batch and may raise to stop.
        `positions`, where the caller has just read them, saves reading
        them again: a stale value only costs a batch that finds nothing.

        With `deadline` (a `time.monotonic()` value), raises
        CatchUpTimeoutError instead of waiting for a lock or starting a
        batch after it. A batch already started still commits, so a call
        can end up to one batch past the deadline.

        Without a deadline, a read model at position zero with at least
        `defer_indexes_from` events to apply loses its query-only indexes
        during the call. They are built again when it ends, whether it
        succeeds or fails. A call with a deadline, such as a request's,
        leaves indexes alone, because it must not wait to build them.
        Returns the number of events applied by this call, added up over
        the read models.
        """
        target = self.head() if target is None else target
        chosen = self.projections if projections is None else list(projections)
        positions = self.positions() if positions is None else dict(positions)
        behind = [p for p in chosen if positions.get(p.name, 0) < target]
        filling = [p for p in behind if p.query_indexes and positions.get(p.name, 0) == 0
                   and target >= self.defer_indexes_from and deadline is None]
        filling = self._drop_query_indexes(filling)
        farthest = min((positions.get(p.name, 0) for p in behind), default=target)
        bulk = deadline is None and target - farthest >= self.defer_indexes_from
        try:
            with (self.database.bulk_writes() if bulk else nullcontext(),
                  self._read_ahead(deadline) as read_ahead):
                applied = self._catch_up(target, behind, positions, deadline, before_batch,
                                         read_ahead)
        except BaseException:
            self._create_query_indexes(filling, quiet=True)
            raise
        self._create_query_indexes(filling)
        return applied

    def _catch_up(
        self,
        target: int,
        behind: list[Projection],
        positions: dict[str, int],
        deadline: float | None,
        before_batch: Callable[[], None] | None,
        read_ahead: ReadAhead | None,
    ) -> int:
        applied: dict[str, int] = dict.fromkeys((p.name for p in behind), 0)
        started_behind = list(behind)
        next_analyze = dict.fromkeys(applied, ANALYZE_DURING_FROM_EVENTS)
        failures: list[Exception] = []
        failed_names: list[str] = []
        while behind:
            if before_batch is not None:
                before_batch()
            lock_timeout = _remaining(deadline)
            if lock_timeout is not None and lock_timeout <= 0:
                raise self._timeout(behind, positions, target)
            after = min(positions.get(projection.name, 0) for projection in behind)
            try:
                counts = self.apply_shared_batch(behind, target, lock_timeout, after,
                                                 read_ahead)
            except LockTimeoutError:
                raise self._timeout(behind, positions, target) from None
            except Exception as error:
                unavailable = is_unavailable(self.database, error)
                if unavailable or len(behind) == 1:
                    if not unavailable:
                        record_failure(self.database, behind[0].name, error)
                        name_failed_models(error, [behind[0].name, *failed_names])
                    raise
                try:
                    counts, failed = self._apply_one_by_one(behind, target, lock_timeout)
                except LockTimeoutError:
                    raise self._timeout(behind, positions, target) from None
                failures.extend(failed.values())
                failed_names.extend(failed)
                behind = [p for p in behind if p.name not in failed]
            for name, (count, position) in counts.items():
                applied[name] += count
                positions[name] = position
            behind = [p for p in behind if positions[p.name] < target]
            for projection in behind:
                if applied[projection.name] >= next_analyze[projection.name]:
                    # These only replace plans made while the tables were
                    # nearly empty, which a small sample does as well.
                    self._analyze(projection, coarse=True)
                    next_analyze[projection.name] *= 2
        for projection in started_behind:
            if applied.get(projection.name, 0) >= ANALYZE_AFTER_EVENTS:
                self._analyze(projection)
        if failures:
            raise name_failed_models(failures[0], failed_names)
        return sum(applied.values())

    def _read_ahead(self, deadline: float | None) -> AbstractContextManager[ReadAhead | None]:
        """Return a reader of the next batch for a catch-up without a deadline, else None.

        A request's catch-up, which has a deadline, mostly applies one
        small batch, and a thread would only add to its time. A database
        whose `reads_ahead` is false gets none either.
        """
        enabled = deadline is None and self.database.reads_ahead
        return read_ahead_if(enabled, partial(self.read_batch, decode_events=True))

    def _drop_query_indexes(self, projections: Sequence[Projection]) -> list[Projection]:
        """Drop the query-only indexes of the read models still at position zero; return those."""
        dropped = []
        for projection in projections:
            with self.database.transaction(write=True) as cursor:
                self.database.lock(cursor, projection.name)
                if self._positions_of(cursor, [projection.name])[projection.name] != 0:
                    continue
                for name in sorted(projection.query_indexes):
                    cursor.execute(f"DROP INDEX IF EXISTS {name}")
            dropped.append(projection)
        return dropped

    def restore_query_indexes(self, projections: Sequence[Projection]) -> list[str]:
        """Build the missing query-only indexes of `projections` and return their names.

        A fill from position zero drops them and builds them again when it
        ends. A fill whose process was killed leaves them dropped, and the
        runner that resumes it, past position zero, would never build them.
        """
        restored: list[str] = []
        for projection in projections:
            if not projection.query_indexes:
                continue
            with self.database.transaction(write=True) as cursor:
                self.database.lock(cursor, projection.name)
                existing = set().union(*(self.database.index_names(cursor, table)
                                         for table in projection.tables))
                missing = [statement for statement in projection.query_index_statements
                           if index_name(statement) not in existing]
                if missing:
                    self.database.build_indexes(cursor, missing)
            restored += [name for statement in missing if (name := index_name(statement))]
        return restored

    def _create_query_indexes(self, projections: Sequence[Projection], quiet: bool = False
                              ) -> None:
        """Build the query-only indexes of `projections` that are missing.

        Should the database fail here, the indexes stay missing until the
        next `create_tables`, which `release-ledger migrate` runs; queries
        still return the same rows, more slowly. With `quiet`, used while another error
        propagates, a failure is logged and not raised.
        """
        for projection in projections:
            try:
                with self.database.transaction(write=True) as cursor:
                    self.database.lock(cursor, projection.name)
                    self.database.build_indexes(cursor, projection.query_index_statements)
            except Exception as error:
                logger.error("could not build query indexes", extra={
                    "read_model": projection.name, "error": describe_error(error),
                })
                if not quiet:
                    raise

    def _apply_one_by_one(
        self, projections: Sequence[Projection], target: int, lock_timeout: float | None
    ) -> tuple[dict[str, tuple[int, int]], dict[str, Exception]]:
        """Apply the next batch to each read model in a transaction of its own.

        Returns the counts and positions of the models that succeeded, and
        the error of each model that failed, which is also recorded.
        """
        counts: dict[str, tuple[int, int]] = {}
        failed: dict[str, Exception] = {}
        for projection in projections:
            try:
                counts[projection.name] = self.apply_batch(projection, target, lock_timeout)
            except Exception as error:
                if isinstance(error, LockTimeoutError) or is_unavailable(self.database, error):
                    raise
                record_failure(self.database, projection.name, error)
                failed[projection.name] = error
        return counts, failed

    @staticmethod
    def _timeout(
        behind: Sequence[Projection], positions: dict[str, int], target: int
    ) -> CatchUpTimeoutError:
        lagging = min(behind, key=lambda projection: positions.get(projection.name, 0))
        return CatchUpTimeoutError(lagging.name, positions.get(lagging.name, 0), target)

    def _analyze(self, projection: Projection, coarse: bool = False) -> None:
        with self.database.transaction(write=True) as cursor:
            if coarse:
                self.database.sample_coarsely(cursor)
            for table in projection.tables:
                skipped = projection.unanalyzed_columns.get(table)
                if skipped and self.database.dialect == "postgresql":
                    # Sampling long text that no plan uses made up half of the time.
                    columns = sorted(self.database.column_names(cursor, table) - skipped)
                    cursor.execute(f"ANALYZE {table} ({', '.join(columns)})")
                else:
                    cursor.execute(f"ANALYZE {table}")

    def apply_batch(
        self, projection: Projection, target: int, lock_timeout: float | None = None
    ) -> tuple[int, int]:
        """Apply the next batch of events up to `target` to one read model.

        Returns the number of events applied and the read model's new position.
        """
        return self.apply_shared_batch([projection], target, lock_timeout)[projection.name]

    def apply_shared_batch(
        self,
        projections: Sequence[Projection],
        target: int,
        lock_timeout: float | None = None,
        after: int | None = None,
        read_ahead: ReadAhead | None = None,
    ) -> dict[str, tuple[int, int]]:
        """Apply the next batch of events up to `target` to several read models at once.

        The batch is the events after ledger position `after`, by default
        the lowest position of the models. They are read before the
        transaction begins, so no read-model lock is held while waiting
        for an event store connection. On SQLite that lock is the
        database's write lock, and an append waiting for it keeps the
        event store's only writer connection.

        The transaction locks the models in the order of their names, as
        every caller of this method does, so two calls with overlapping
        sets cannot wait for each other in a cycle. It re-reads the
        positions under the locks. Each model
        receives only the events past its own position. A model found
        behind `after` is left for a later batch. With `read_ahead`, the
        batch is taken from it when it read this range, and it reads the
        next range while this one is applied. Returns each model's count
        of applied events and position.
        """
        ordered = sorted(projections, key=lambda projection: projection.name)
        if after is None:
            known = self.positions()
            after = min(known.get(projection.name, 0) for projection in ordered)
        batch = next_batch(read_ahead, after, target, self.read_batch)
        end = batch.end
        notifications, events = batch.notifications, batch.events
        del batch
        # A batch lost to a database crash goes with the position it moved
        # to, and is applied again from the ledger, so its commit need not
        # wait for the disk.
        with self.database.transaction(
            write=True, lock_timeout=lock_timeout, pipeline=True, durable=False
        ) as cursor:
            for projection in ordered:
                self.database.lock(cursor, projection.name)
            positions = self._positions_of(cursor, [p.name for p in ordered])
            active = [p for p in ordered if after <= positions[p.name] < end]
            counts = dict.fromkeys(positions, 0)
            if not active:
                return {name: (0, position) for name, position in positions.items()}
            for projection in active:
                projection.begin_batch()
            # A stored state can take as much memory as its decoded event,
            # tens of megabytes for a long commit list, so each one is
            # dropped before its event is applied.
            # Writing a large event grows the connection's buffers until it closes.
            if any(len(notification.state) >= LARGE_RESULT_BYTES
                   for notification in notifications):
                cursor.renew_connection()
            pending = deque(notifications)
            del notifications
            decoded = deque(events or ())
            del events
            while pending:
                notification = pending.popleft()
                event = decoded.popleft() if decoded else decode(self.ledger, notification)
                position, topic = notification.id, notification.topic
                del notification
                for projection in active:
                    if position > positions[projection.name]:
                        apply_event(projection, cursor, event, position, topic)
                        counts[projection.name] += 1
            for projection in active:
                end_batch(projection, cursor, after, end)
            now = _now()
            for projection in active:
                positions[projection.name] = end
                cursor.execute(
                    f"UPDATE {POSITIONS_TABLE} SET position = %s, updated_at = %s, state = %s,"
                    " error = NULL WHERE name = %s",
                    (end, now, LIVE, projection.name),
                )
        return {name: (counts[name], positions[name]) for name in positions}

    def read_batch(self, after: int, target: int, decode_events: bool = False) -> Batch:
        """Read the batch of notifications after `after`, decoding them if `decode_events`."""
        return read_batch(self.ledger, after, target, self.batch_size, decode_events)

    @staticmethod
    def _positions_of(cursor: Cursor, names: Sequence[str]) -> dict[str, int]:
        """Return the positions of the read models `names`, in one round trip."""
        marks = ", ".join(["%s"] * len(names))
        rows = cursor.execute(
            f"SELECT name, position FROM {POSITIONS_TABLE} WHERE name IN ({marks})", names
        ).fetchall()
        positions = {row["name"]: row["position"] for row in rows}
        for name in names:
            if name not in positions:
                raise LookupError(
                    f"Read model {name!r} has no position; run 'release-ledger migrate'."
                )
        return {name: positions[name] for name in names}


def apply_notification(
    ledger: Application, projection: Projection, cursor: Cursor, notification: Notification
) -> None:
    """Decode one stored event and apply it; a failure names the read model and position."""
    apply_event(projection, cursor, decode(ledger, notification), notification.id,
                notification.topic)


def decode(ledger: Application, notification: Notification) -> DomainEvent:
    """Return the domain event a notification stores; a failure names its position."""
    try:
        return ledger.mapper.to_domain_event(notification)
    except Exception as error:
        error.add_note(
            f"The event at ledger position {notification.id} ({notification.topic})"
            " could not be decoded."
        )
        raise


def end_batch(projection: Projection, cursor: Cursor, after: int, end: int) -> None:
    """Let a read model write what it held back, naming the model and the batch in a failure."""
    try:
        projection.end_batch(cursor)
    except Exception as error:
        error.add_note(
            f"Read model {projection.name} failed writing the batch of ledger positions"
            f" {after + 1} to {end}."
        )
        raise


def apply_event(
    projection: Projection, cursor: Cursor, event: DomainEvent, position: int, topic: str
) -> None:
    """Apply the decoded event at `position`. A failure names the read model and the position."""
    try:
        handler(type(projection), type(event))(projection, event, cursor, position)
    except Exception as error:
        error.add_note(
            f"Read model {projection.name} failed on the event at ledger position"
            f" {position} ({topic})."
        )
        raise


@cache
def handler(
    projection_class: type[Projection], event_class: type[DomainEvent]
) -> Callable[[Projection, DomainEvent, Cursor, int], None]:
    """Return the function that applies events of `event_class` to a read model.

    Looking a handler up through a singledispatchmethod builds a new bound
    function on every call, which costs as much as a small handler.
    """
    apply = inspect.getattr_static(projection_class, "apply")
    if isinstance(apply, singledispatchmethod):
        return apply.dispatcher.dispatch(event_class)
    return projection_class.apply


def create_positions_table(database: Database, cursor: Cursor) -> None:
    """Create the positions table, or add the columns an older release lacked.

    The caller's write transaction serializes concurrent migrations.
    """
    database.lock(cursor, POSITIONS_TABLE)
    cursor.execute(CREATE_POSITIONS)
    existing = database.column_names(cursor, POSITIONS_TABLE)
    for column, definition in ADDED_POSITION_COLUMNS.items():
        if column not in existing:
            cursor.execute(f"ALTER TABLE {POSITIONS_TABLE} ADD COLUMN {column} {definition}")


def is_unavailable(database: Database, error: BaseException) -> bool:
    """Return whether `error` means the database was out of reach rather than the read model wrong.

    Such errors are not stored as a failure: storing would wait for the
    same database, and the next request retries anyway.
    """
    return isinstance(error, LedgerOperationalError) or database.is_unavailable(error)


def name_failed_models(error: BaseException, names: Sequence[str]) -> BaseException:
    """Attach to `error` the names of the read models that failed, and return it.

    `catch_up` raises the first failure after applying the events of the
    other read models. A caller such as a runner reads `failed_read_models`
    to go on without the models named there.
    """
    error.failed_read_models = tuple(names)  # type: ignore[attr-defined]
    return error


def record_failure(database: Database, name: str, error: BaseException) -> None:
    """Mark read model `name` failed with `error`; the next batch it commits clears it.

    The failure is logged whether or not it could be stored, because the
    database itself may be what failed.
    """
    description = describe_error(error)
    logger.error("read model failed", extra={"read_model": name, "error": description})
    try:
        with database.transaction(write=True) as cursor:
            cursor.execute(
                f"UPDATE {POSITIONS_TABLE} SET state = %s, error = %s, updated_at = %s"
                " WHERE name = %s",
                (FAILED, description, _now(), name),
            )
    except Exception as storing_error:
        logger.warning(
            "could not store read model failure",
            extra={"read_model": name, "error": describe_error(storing_error)},
        )


def describe_error(error: BaseException) -> str:
    """Return the error's type, message and notes on one line."""
    parts = [f"{type(error).__name__}: {error}", *getattr(error, "__notes__", ())]
    return " ".join(part.strip() for part in parts)


def _remaining(deadline: float | None) -> float | None:
    """Return the seconds left until `deadline`, or None without one."""
    return None if deadline is None else deadline - time.monotonic()


def now_text() -> str:
    """Return the current UTC time in the form stored in `updated_at`."""
    return _now()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


_READ_MODEL_NAME = re.compile(r"[a-z][a-z0-9_]*")
_TOPIC = re.compile(r"[A-Za-z0-9_.:]+")
# A read model at most this many events behind counts as current when all of
# them are events it ignores. Finding that out reads those events' topics.
SETTLED_WITHIN_EVENTS = 1000


@lru_cache(maxsize=64)
def _check_statement(
    table: str, dialect: str, projections: tuple[Projection, ...], settled_within: int
) -> str:
    """Return the check's statement for `projections`, built once per set of read models.

    The names and topics are written into the text, so that the statement
    has no parameters and can share a round trip with the BEGIN before it.
    """
    column = "notification_id" if dialect == "postgresql" else "rowid"
    marks = ", ".join(f"'{_checked_name(projection.name)}'" for projection in projections)
    versioned = [p for p in projections if p.version_query is not None]
    versions = "".join(f", ({p.version_query}) AS version_{index}"
                       for index, p in enumerate(versioned))
    return (
        f"WITH ledger AS (SELECT COALESCE(MAX({column}), 0) AS head FROM {table})"
        f" SELECT ledger.head AS head, p.name AS name, p.position AS position{versions},"
        f" {_settled_column(projections, table, column, settled_within)} AS settled"
        f" FROM ledger LEFT JOIN {POSITIONS_TABLE} p ON p.name IN ({marks})"
    )


def _settled_column(
    projections: Sequence[Projection], table: str, column: str, settled_within: int
) -> str:
    """Return SQL that is true for a read model behind the head by ignored events only.

    It reads the topics of the events past the model's position, through
    the index on notification ids, and only for a model at most
    `settled_within` events behind.
    """
    cases = []
    for projection in projections:
        if not projection.ignored_events:
            continue
        topics = ", ".join(f"'{_checked_topic(get_topic(event))}'"
                           for event in projection.ignored_events)
        cases.append(
            f" WHEN '{_checked_name(projection.name)}' THEN"
            f" (ledger.head - p.position <= {settled_within} AND NOT EXISTS"
            f" (SELECT 1 FROM {table} e WHERE e.{column} > p.position"
            f" AND e.{column} <= ledger.head AND e.topic NOT IN ({topics})))"
        )
    if not cases:
        return "FALSE"
    return f"CASE p.name{''.join(cases)} ELSE FALSE END"


def _checked_topic(topic: str) -> str:
    """Return an event topic, safe to write into SQL text as a literal."""
    if not _TOPIC.fullmatch(topic):
        raise ValueError(f"Invalid event topic {topic!r}: expected module:Class.Event.")
    return topic


def _checked_name(name: str) -> str:
    """Return a read model's name, safe to write into SQL text as a literal."""
    if not _READ_MODEL_NAME.fullmatch(name):
        raise ValueError(f"Invalid read model name {name!r}: use lowercase letters, digits"
                         " and _, starting with a letter.")
    return name
