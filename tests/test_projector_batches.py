"""Batches of events applied to read models: atomic, and the same with a cold cache."""

from __future__ import annotations

import weakref
from datetime import UTC, datetime
from functools import singledispatchmethod
from uuid import UUID

import pytest
from eventsourcing.domain import DomainEvent

from domain.application import ReleaseChanges
from projections import activity
from projections.activity import ActivityProjection, ActivityQueries
from projections.database import Cursor
from projections.projection import Projection
from projections.projector import Projector
from tests.builders import CAUSE, World


class FailingProjection(Projection):
    """Writes one row per event and fails on the event at `fail_at`."""

    name = "failing_v1"
    create_statements = ("CREATE TABLE IF NOT EXISTS failing_v1_rows (position BIGINT)",)
    fail_at = 0

    @singledispatchmethod
    def apply(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        if position == self.fail_at:
            # A duplicate table is an error PostgreSQL reports only when the
            # statement runs, after the earlier inserts have been sent.
            cursor.execute("CREATE TABLE failing_v1_rows (position BIGINT)")
        cursor.execute("INSERT INTO failing_v1_rows (position) VALUES (%s)", (position,))


def release_with_deploys(world: World, version: str, deploys: int) -> None:
    ledger = world.services.ledger
    org_id = ledger.get_organization(world.org).id
    slug = "p-" + version.replace(".", "-")
    project = ledger.create_project(world.org, slug, None, ["frontend"], CAUSE).aggregate
    changes = ReleaseChanges(project_ids=[project.id],
                             date_released=datetime(2024, 5, 1, tzinfo=UTC))
    ledger.create_release(org_id, version, changes, CAUSE)
    for number in range(deploys):
        ledger.record_deploy(org_id, version, {
            "environment": f"env-{number}", "name": None, "url": None, "date_started": None,
            "date_finished": datetime(2024, 5, 2, tzinfo=UTC),
        }, [], CAUSE)


def activity_rows(world: World, projection: ActivityProjection) -> list[dict]:
    services = world.services
    projector = Projector(services.ledger, services.database, [projection], batch_size=3)
    projector.catch_up()
    with services.database.transaction() as cursor:
        org_id = str(services.ledger.get_organization(world.org).id)
        return ActivityQueries(cursor).page(org_id, None, None, 100)


def test_failed_batch_changes_nothing(services, world):
    projection = FailingProjection()
    projector = Projector(services.ledger, services.database, [projection])
    projector.create_tables()
    projection.fail_at = projector.head()

    with pytest.raises(Exception, match="failing_v1_rows"):
        projector.catch_up()

    assert projector.positions()["failing_v1"] == 0
    with services.database.transaction() as cursor:
        rows = cursor.execute("SELECT count(*) AS n FROM failing_v1_rows").fetchone()
    assert rows["n"] == 0


class StateWatcher(Projection):
    """A read model that records, for each event applied, whether its notification is in memory."""

    name = "state_watcher_v1"
    create_statements = ()

    def __init__(self) -> None:
        self.stored: dict[int, weakref.ref] = {}
        self.alive: dict[int, bool] = {}

    @singledispatchmethod
    def apply(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        self.alive[position] = self.stored[position]() is not None


def test_stored_state_dropped_before_apply(services, world, monkeypatch):
    # A stored state can take tens of megabytes, so a batch keeps only decoded events.
    projection = StateWatcher()
    projector = Projector(services.ledger, services.database, [projection])
    projector.create_tables()
    recorder = services.ledger.recorder
    real_select = recorder.select_notifications

    def watched_select(*args, **kwargs):
        notifications = real_select(*args, **kwargs)
        projection.stored.update(
            (notification.id, weakref.ref(notification)) for notification in notifications
        )
        return notifications

    monkeypatch.setattr(recorder, "select_notifications", watched_select)

    projector.catch_up()

    assert len(projection.alive) == projector.head()
    assert not any(projection.alive.values())


def test_activity_same_with_cache_cleared(services, world, monkeypatch):
    release_with_deploys(world, "1.0", deploys=3)
    release_with_deploys(world, "2.0", deploys=2)
    services.projector.catch_up()
    with services.database.transaction() as cursor:
        org_id = str(services.ledger.get_organization(world.org).id)
        expected = ActivityQueries(cursor).page(org_id, None, None, 100)

    monkeypatch.setattr(activity, "MAX_CACHED_RELEASES", 1)
    with services.database.transaction(write=True) as cursor:
        for table in ActivityProjection().tables:
            cursor.execute(f"DELETE FROM {table}")
        cursor.execute("UPDATE projection_positions SET position = 0 WHERE name = 'activity_v1'")
    rebuilt = activity_rows(world, ActivityProjection())

    assert len(expected) == 2 + 3 + 2
    assert rebuilt == expected
    assert {row["version"] for row in rebuilt} == {"1.0", "2.0"}


def test_activity_reads_release_of_earlier_batch(services, world):
    release_with_deploys(world, "3.0", deploys=0)
    services.projector.catch_up()
    ledger = services.ledger
    ledger.record_deploy(ledger.get_organization(world.org).id, "3.0", {
        "environment": "production", "name": None, "url": None, "date_started": None,
        "date_finished": datetime(2024, 5, 3, tzinfo=UTC),
    }, [], CAUSE)

    rows = activity_rows(world, ActivityProjection())

    deploys = [row for row in rows if row["type"] == "deploy"]
    assert len(deploys) == 1
    assert deploys[0]["version"] == "3.0"
    assert UUID(deploys[0]["org_id"]) == ledger.get_organization(world.org).id
