"""Rows a read model holds back during a batch commit with the batch, or not at all."""

from __future__ import annotations

from functools import singledispatchmethod

import psycopg
import pytest
from eventsourcing.domain import DomainEvent

from projections.database import Cursor
from projections.postgres import COPY_FROM_ROWS
from projections.projection import PendingRows, Projection
from projections.projector import Projector
from tests.builders import CAUSE
from tests.rebuild import positions

EVENTS = COPY_FROM_ROWS + 36


class HeldBack(Projection):
    """Holds one row per event until the end of the batch, where it fails if so configured."""

    name = "held_back_v1"
    create_statements = (
        "CREATE TABLE IF NOT EXISTS held_back_v1_rows (position BIGINT PRIMARY KEY)",
    )

    def __init__(self, fail_at_end: bool = False) -> None:
        self.fail_at_end = fail_at_end
        self.pending = PendingRows("held_back_v1_rows", ("position",))

    def begin_batch(self) -> None:
        self.pending.clear()

    @singledispatchmethod
    def apply(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        self.pending.add(position)

    def end_batch(self, cursor: Cursor) -> None:
        self.pending.flush(cursor)
        if self.fail_at_end:
            raise ValueError("the batch cannot end")


def stored(services) -> list[int]:
    with services.database.transaction() as cursor:
        rows = cursor.execute("SELECT position FROM held_back_v1_rows ORDER BY position")
        return [row["position"] for row in rows.fetchall()]


def add_events(services, world, count: int) -> None:
    for number in range(count):
        services.ledger.create_team(world.org, f"held-{number}", None, CAUSE)


def test_rows_held_back_commit_with_the_batch(services, world):
    add_events(services, world, EVENTS)
    projector = Projector(services.ledger, services.database, [HeldBack()])
    projector.create_tables()
    head = services.ledger.recorder.max_notification_id()

    projector.catch_up()

    assert stored(services) == list(range(1, head + 1))
    assert positions(services.database)["held_back_v1"] == head


def test_batch_end_failure_keeps_nothing(services, world):
    add_events(services, world, EVENTS)
    projector = Projector(services.ledger, services.database, [HeldBack(fail_at_end=True)])
    projector.create_tables()
    head = services.ledger.recorder.max_notification_id()

    with pytest.raises(ValueError, match="the batch cannot end") as raised:
        projector.catch_up()

    assert f"Read model held_back_v1 failed writing the batch of ledger positions 1 to {head}." in (
        raised.value.__notes__
    )
    assert stored(services) == []
    assert positions(services.database)["held_back_v1"] == 0


@pytest.fixture
def postgres_services(services):
    if services.database.dialect != "postgresql":
        pytest.skip("COPY inside a pipelined transaction is particular to PostgreSQL")
    with services.database.transaction(write=True) as cursor:
        cursor.execute("CREATE TABLE copied (n BIGINT PRIMARY KEY)")
    return services


def copied(services) -> list[int]:
    with services.database.transaction() as cursor:
        return [row["n"] for row in cursor.execute("SELECT n FROM copied ORDER BY n").fetchall()]


def test_copy_commits_with_pipelined_statements(postgres_services):
    services = postgres_services
    many = list(range(10, 10 + COPY_FROM_ROWS * 2))

    with services.database.transaction(write=True, pipeline=True) as cursor:
        cursor.execute("INSERT INTO copied (n) VALUES (1)")
        cursor.copy_rows("copied", ("n",), [(n,) for n in many])
        cursor.execute("INSERT INTO copied (n) VALUES (2)")

    assert copied(services) == [1, 2, *many]


def test_error_before_copy_keeps_nothing(postgres_services):
    services = postgres_services
    transaction = services.database.transaction(write=True, pipeline=True)
    with pytest.raises(psycopg.errors.UniqueViolation), transaction as cursor:
        cursor.execute("INSERT INTO copied (n) VALUES (1)")
        cursor.execute("INSERT INTO copied (n) VALUES (1)")
        cursor.copy_rows("copied", ("n",), [(n,) for n in range(10, 10 + COPY_FROM_ROWS)])

    assert copied(services) == []


def test_error_in_copy_keeps_nothing(postgres_services):
    services = postgres_services
    rows = [(n,) for n in range(10, 10 + COPY_FROM_ROWS)] + [(10,)]
    transaction = services.database.transaction(write=True, pipeline=True)
    with pytest.raises(psycopg.errors.UniqueViolation), transaction as cursor:
        cursor.execute("INSERT INTO copied (n) VALUES (1)")
        cursor.copy_rows("copied", ("n",), rows)

    assert copied(services) == []
