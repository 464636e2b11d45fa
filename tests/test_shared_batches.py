"""Read models behind the ledger share each batch, yet each applies every event once."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import singledispatchmethod

import pytest
from eventsourcing.domain import DomainEvent

from domain.application import ReleaseChanges
from domain.directory import Project
from projections.database import Cursor
from projections.projection import Projection
from projections.projector import FAILED, LIVE, POSITIONS_TABLE, Projector
from projections.registry import all_projections
from tests.builders import CAUSE
from tests.rebuild import rebuild, table_contents


class RowPerEvent(Projection):
    """Writes one row per event it applies, and fails on the event at `fail_at`."""

    def __init__(self, name: str, fail_at: int = 0) -> None:
        self.name = name  # type: ignore[misc]
        self.create_statements = (  # type: ignore[misc]
            f"CREATE TABLE IF NOT EXISTS {name}_rows (position BIGINT PRIMARY KEY)",
        )
        self.fail_at = fail_at

    @singledispatchmethod
    def apply(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        if position == self.fail_at:
            raise ValueError(f"{self.name} cannot apply position {position}")
        # The primary key turns an event applied twice into an error.
        cursor.execute(f"INSERT INTO {self.name}_rows (position) VALUES (%s)", (position,))


def rows(services, projection: RowPerEvent) -> list[int]:
    with services.database.transaction() as cursor:
        found = cursor.execute(
            f"SELECT position FROM {projection.name}_rows ORDER BY position"
        ).fetchall()
    return [row["position"] for row in found]


def states(services) -> dict[str, tuple[str, str | None]]:
    with services.database.transaction() as cursor:
        found = cursor.execute(f"SELECT name, state, error FROM {POSITIONS_TABLE}").fetchall()
    return {row["name"]: (row["state"], row["error"]) for row in found}


def add_events(services, world, count: int) -> None:
    for number in range(count):
        services.ledger.create_team(world.org, f"shared-{number}", None, CAUSE)


def test_shared_batch_applies_each_event_once(services, world):
    ahead, behind = RowPerEvent("ahead_v1"), RowPerEvent("behind_v1")
    projector = Projector(services.ledger, services.database, [ahead, behind], batch_size=4)
    projector.create_tables()
    projector.catch_up(projections=[ahead])
    middle = projector.head()
    add_events(services, world, 7)
    head = projector.head()

    applied = projector.catch_up()

    assert rows(services, ahead) == list(range(1, head + 1))
    assert rows(services, behind) == list(range(1, head + 1))
    assert applied == head + (head - middle)
    positions = projector.positions()
    assert positions["ahead_v1"] == head
    assert positions["behind_v1"] == head


def test_shared_batch_isolates_failing_model(services, world):
    add_events(services, world, 3)
    healthy = RowPerEvent("healthy_v1")
    failing = RowPerEvent("failing_v1", fail_at=services.projector.head() - 1)
    projector = Projector(services.ledger, services.database, [failing, healthy], batch_size=5)
    projector.create_tables()

    with pytest.raises(ValueError, match="failing_v1 cannot apply"):
        projector.catch_up()

    head = projector.head()
    positions = projector.positions()
    assert rows(services, healthy) == list(range(1, head + 1))
    assert positions["healthy_v1"] == head
    assert positions["failing_v1"] < failing.fail_at
    assert rows(services, failing) == list(range(1, positions["failing_v1"] + 1))
    state, error = states(services)["failing_v1"]
    assert state == FAILED
    assert "failing_v1 cannot apply" in error
    assert states(services)["healthy_v1"] == (LIVE, None)


def test_check_detects_new_event(services, world):
    services.projector.catch_up()
    names = [projection.name for projection in services.projector.projections]
    with services.database.transaction() as cursor:
        check = services.projector.check(cursor)
    head, positions = check.head, check.positions
    assert head == services.projector.head()
    assert positions == dict.fromkeys(names, head)

    add_events(services, world, 1)

    with services.database.transaction() as cursor:
        check = services.projector.check(cursor)
    later, positions = check.head, check.positions
    assert later == head + 1
    assert positions == dict.fromkeys(names, head)


def test_read_sees_write_after_catch_up(services, world):
    services.projector.catch_up()
    add_events(services, world, 1)
    org_id = str(services.ledger.get_organization(world.org).id)

    with services.read() as queries:
        teams = queries.directory.teams(org_id)

    assert "shared-0" in {team["slug"] for team in teams}
    assert set(services.projector.positions().values()) == {services.projector.head()}


def release_events(services, world, version: str) -> None:
    ledger = services.ledger
    org_id = ledger.get_organization(world.org).id
    web = Project.create_id(org_id, "web")
    ledger.create_release(org_id, version, ReleaseChanges(project_ids=[web]), CAUSE)
    ledger.update_release(org_id, version, ReleaseChanges(
        date_released=datetime(2024, 5, 1, tzinfo=UTC)), CAUSE)
    ledger.record_deploy(org_id, version, {
        "environment": "production", "name": None, "url": None, "date_started": None,
        "date_finished": datetime(2024, 5, 2, tzinfo=UTC),
    }, [], CAUSE)


def test_batch_caches_do_not_outlive_batch(services, world, tmp_path):
    # Two projectors stand for two processes taking turns on the same read
    # models; each keeps its own projection instances and their caches.
    first = Projector(services.ledger, services.database, all_projections(), batch_size=2)
    second = Projector(services.ledger, services.database, all_projections(), batch_size=3)
    org_id = services.ledger.get_organization(world.org).id
    for round_number in range(3):
        version = f"1.{round_number}"
        release_events(services, world, version)
        first.catch_up()
        services.ledger.delete_release(org_id, version, CAUSE)
        release_events(services, world, version)
        second.catch_up()
        services.ledger.update_release(org_id, version, ReleaseChanges(
            date_released=datetime(2024, 6, 1, tzinfo=UTC)), CAUSE)
        first.catch_up()

    assert table_contents(services.database) == table_contents(rebuild(services, tmp_path))
