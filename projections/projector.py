"""Catching read models up with the ledger, in batches, exactly once per event."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from eventsourcing.application import Application
from eventsourcing.persistence import Notification
from eventsourcing.persistence import OperationalError as LedgerOperationalError

from projections.database import Cursor, Database, LockTimeoutError
from projections.projection import Projection

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
class Lag:
    """How far a read model is behind the ledger."""

    name: str
    position: int
    head: int

    @property
    def events(self) -> int:
        return max(self.head - self.position, 0)


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
    ) -> None:
        self.ledger = ledger
        self.database = database
        self.projections = list(projections)
        self.batch_size = batch_size

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

    def positions(self) -> dict[str, int]:
        with self.database.transaction() as cursor:
            rows = cursor.execute(f"SELECT name, position FROM {POSITIONS_TABLE}").fetchall()
        return {row["name"]: row["position"] for row in rows}

    def lags(self) -> list[Lag]:
        head = self.head()
        positions = self.positions()
        return [Lag(p.name, positions.get(p.name, 0), head) for p in self.projections]

    def catch_up(self, target: int | None = None, deadline: float | None = None) -> int:
        """Apply events until every read model has reached `target`, default the head.

        With `deadline` (a `time.monotonic()` value), raises
        CatchUpTimeoutError instead of waiting for a lock or starting a
        batch after it. A batch already started still commits, so a call
        can end up to one batch past the deadline.
        Returns the number of events applied by this call.
        """
        target = self.head() if target is None else target
        positions = self.positions()
        applied = 0
        for projection in self.projections:
            position = positions.get(projection.name, 0)
            applied_here = 0
            while position < target:
                lock_timeout = None
                if deadline is not None:
                    lock_timeout = deadline - time.monotonic()
                    if lock_timeout <= 0:
                        raise CatchUpTimeoutError(projection.name, position, target)
                try:
                    count, position = self.apply_batch(projection, target, lock_timeout)
                except LockTimeoutError:
                    raise CatchUpTimeoutError(projection.name, position, target) from None
                except Exception as error:
                    if not is_unavailable(self.database, error):
                        record_failure(self.database, projection.name, error)
                    raise
                applied_here += count
            if applied_here >= ANALYZE_AFTER_EVENTS:
                self._analyze(projection)
            applied += applied_here
        return applied

    def _analyze(self, projection: Projection) -> None:
        with self.database.transaction(write=True) as cursor:
            for table in projection.tables:
                cursor.execute(f"ANALYZE {table}")

    def apply_batch(
        self, projection: Projection, target: int, lock_timeout: float | None = None
    ) -> tuple[int, int]:
        """Apply the next batch of events up to `target` to one read model.

        Returns the number of events applied and the read model's new position.
        """
        with self.database.transaction(
            write=True, lock_timeout=lock_timeout, pipeline=True
        ) as cursor:
            self.database.lock(cursor, projection.name)
            position = self._position(cursor, projection.name)
            if position >= target:
                return 0, position
            notifications = self.ledger.recorder.select_notifications(
                start=position, limit=self.batch_size, stop=target, inclusive_of_start=False
            )
            for notification in notifications:
                apply_notification(self.ledger, projection, cursor, notification)
            new_position = notifications[-1].id if notifications else target
            cursor.execute(
                f"UPDATE {POSITIONS_TABLE} SET position = %s, updated_at = %s, state = %s,"
                " error = NULL WHERE name = %s",
                (new_position, _now(), LIVE, projection.name),
            )
        return len(notifications), new_position

    @staticmethod
    def _position(cursor: Cursor, name: str) -> int:
        row = cursor.execute(
            f"SELECT position FROM {POSITIONS_TABLE} WHERE name = %s", (name,)
        ).fetchone()
        if row is None:
            raise LookupError(f"Read model {name!r} has no position; run 'release-ledger migrate'.")
        return row["position"]


def apply_notification(
    ledger: Application, projection: Projection, cursor: Cursor, notification: Notification
) -> None:
    """Decode one stored event and apply it; a failure names the read model and position."""
    try:
        event = ledger.mapper.to_domain_event(notification)
        projection.apply(event, cursor, notification.id)
    except Exception as error:
        error.add_note(
            f"Read model {projection.name} failed on the event at ledger position"
            f" {notification.id} ({notification.topic})."
        )
        raise


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


def now_text() -> str:
    """Return the current UTC time in the form stored in `updated_at`."""
    return _now()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
