"""Read-model status for `release-ledger projections list`: position, lag and state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from eventsourcing.application import Application

from projections.database import Database
from projections.projection import Projection
from projections.projector import FAILED, POSITIONS_TABLE, REBUILDING, STOPPED
from projections.rebuild import COPY_SUFFIX, rebuild_lock_name


@dataclass(frozen=True)
class ReadModelStatus:
    """One row of the positions table as an operator reads it.

    `lag_events` is the head minus the position, so it counts the gaps
    that rolled-back PostgreSQL appends leave in the ledger's positions
    too. `lag_seconds` is how long ago the oldest event not yet applied
    was recorded, 0 when the read model has reached the head.
    """

    name: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    state: str
    detail: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "position": self.position,
            "head": self.head,
            "lagEvents": self.lag_events,
            "lagSeconds": round(self.lag_seconds, 3),
            "state": self.state,
            "detail": self.detail,
        }


def read_model_statuses(
    ledger: Application,
    database: Database,
    projections: list[Projection],
    now: datetime | None = None,
) -> list[ReadModelStatus]:
    """Return the registered read models in order, then rebuild copies, then the rest."""
    now = now or datetime.now(UTC)
    head = ledger.recorder.max_notification_id() or 0
    with database.transaction() as cursor:
        rows = {}
        if database.table_exists(cursor, POSITIONS_TABLE):
            rows = {row["name"]: row for row in cursor.execute(
                f"SELECT * FROM {POSITIONS_TABLE} ORDER BY name"
            ).fetchall()}
    statuses = []
    for projection in projections:
        row = rows.pop(projection.name, None)
        if row is None:
            detail = (f"no tables yet; run 'release-ledger migrate' or"
                      f" 'release-ledger projections rebuild {projection.name}'")
            statuses.append(_status(ledger, projection.name, 0, head, STOPPED, detail, now))
        else:
            statuses.append(_row_status(ledger, row, head, now))
    copies = [name for name in rows if name.endswith(COPY_SUFFIX)]
    for name in copies:
        statuses.append(_copy_status(ledger, database, rows.pop(name), head, now))
    for row in rows.values():
        statuses.append(
            _status(ledger, row["name"], row["position"], head, STOPPED, "not registered", now)
        )
    return statuses


def _row_status(ledger: Application, row: dict, head: int, now: datetime) -> ReadModelStatus:
    state = row.get("state") or "live"
    detail = row.get("error") if state == FAILED else None
    return _status(ledger, row["name"], row["position"], head, state, detail, now)


def _copy_status(
    ledger: Application, database: Database, row: dict, head: int, now: datetime
) -> ReadModelStatus:
    live_name = row["name"].removesuffix(COPY_SUFFIX)
    resume = f"run 'release-ledger projections rebuild {live_name}' to resume"
    running = database.is_locked(rebuild_lock_name(live_name))
    state = row.get("state") or REBUILDING
    if state == FAILED and not running:
        detail = f"{row.get('error')}; {resume}"
    elif running:
        state, detail = REBUILDING, f"copy of {live_name}, being built"
    else:
        state, detail = STOPPED, f"copy of {live_name}, interrupted; {resume}"
    return _status(ledger, row["name"], row["position"], head, state, detail, now)


def _status(
    ledger: Application,
    name: str,
    position: int,
    head: int,
    state: str,
    detail: str | None,
    now: datetime,
) -> ReadModelStatus:
    return ReadModelStatus(
        name=name,
        position=position,
        head=head,
        lag_events=max(head - position, 0),
        lag_seconds=lag_seconds(ledger, position, head, now),
        state=state,
        detail=detail,
    )


def lag_seconds(ledger: Application, position: int, head: int, now: datetime) -> float:
    """Return how long ago the first event after `position` was recorded; 0 without one."""
    if position >= head:
        return 0.0
    notifications = ledger.recorder.select_notifications(
        start=position, limit=1, inclusive_of_start=False
    )
    if not notifications:
        return 0.0
    recorded = ledger.mapper.to_domain_event(notifications[0]).timestamp
    return max((now - recorded).total_seconds(), 0.0)
