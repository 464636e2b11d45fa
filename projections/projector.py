"""Catching read models up with the ledger, in batches, exactly once per event."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from eventsourcing.application import Application

from projections.database import Cursor, Database
from projections.projection import Projection

logger = logging.getLogger(__name__)

POSITIONS_TABLE = "projection_positions"
CREATE_POSITIONS = (
    f"CREATE TABLE IF NOT EXISTS {POSITIONS_TABLE} ("
    " name TEXT PRIMARY KEY,"
    " position BIGINT NOT NULL,"
    " updated_at TEXT NOT NULL)"
)
DEFAULT_BATCH_SIZE = 1000
# After a catch-up this large, the planner's statistics of the read model's
# tables are refreshed: the first catch-up of a 1,000,000-event ledger left
# them so stale that listing releases scanned all of them (1.1 s a page).
ANALYZE_AFTER_EVENTS = 10_000


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
            cursor.execute(CREATE_POSITIONS)
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

    def catch_up(self, target: int | None = None) -> int:
        """Apply events until every read model has reached `target`, default the head.

        Returns the number of events applied by this call.
        """
        target = self.head() if target is None else target
        positions = self.positions()
        applied = 0
        for projection in self.projections:
            position = positions.get(projection.name, 0)
            applied_here = 0
            while position < target:
                count, position = self._apply_batch(projection, target)
                applied_here += count
            if applied_here >= ANALYZE_AFTER_EVENTS:
                self._analyze(projection)
            applied += applied_here
        return applied

    def _analyze(self, projection: Projection) -> None:
        with self.database.transaction(write=True) as cursor:
            for table in projection.tables:
                cursor.execute(f"ANALYZE {table}")

    def _apply_batch(self, projection: Projection, target: int) -> tuple[int, int]:
        with self.database.transaction(write=True) as cursor:
            self.database.lock(cursor, projection.name)
            position = self._position(cursor, projection.name)
            if position >= target:
                return 0, position
            notifications = self.ledger.recorder.select_notifications(
                start=position, limit=self.batch_size, stop=target, inclusive_of_start=False
            )
            for notification in notifications:
                event = self.ledger.mapper.to_domain_event(notification)
                projection.apply(event, cursor, notification.id)
            new_position = notifications[-1].id if notifications else target
            cursor.execute(
                f"UPDATE {POSITIONS_TABLE} SET position = %s, updated_at = %s WHERE name = %s",
                (new_position, _now(), projection.name),
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


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
