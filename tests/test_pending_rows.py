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
from projections.releases import CommitRows
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


class CountedRows:
    """Rows with a known count, made one at a time and counted as they are made."""

    def __init__(self, values: list[int]) -> None:
        self.values = values
        self.rows_made = 0

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self):
        for value in self.values:
            self.rows_made += 1
            yield (value,)


def test_sized_rows_stream_into_copy(postgres_services):
    services = postgres_services
    rows = CountedRows(list(range(10, 10 + COPY_FROM_ROWS * 3)))
    made_when_copy_began = []

    with services.database.transaction(write=True, pipeline=True) as cursor:
        cursor.execute("INSERT INTO copied (n) VALUES (1)")
        original = cursor._copy

        def watched(table, columns, stream):
            made_when_copy_began.append(rows.rows_made)
            original(table, columns, stream)

        cursor._copy = watched
        cursor.copy_rows("copied", ("n",), rows)

    assert made_when_copy_began == [0]
    assert rows.rows_made == len(rows.values)
    assert copied(services) == [1, *rows.values]


def test_few_sized_rows_go_as_inserts(postgres_services):
    services = postgres_services
    rows = CountedRows(list(range(10, 10 + COPY_FROM_ROWS - 1)))

    with services.database.transaction(write=True, pipeline=True) as cursor:
        cursor.copy_rows("copied", ("n",), rows)

    assert copied(services) == rows.values


def test_commit_rows_in_order():
    first = [{"id": "a1", "repository": "acme/app", "message": "one", "author_name": "Ann",
              "author_email": "ann@example.com", "timestamp": "2024-01-01T00:00:00Z",
              "patch_set": [{"path": "a.py", "type": "M"}]}]
    second = [dict(first[0], id=f"b{index}", patch_set=[]) for index in range(3)]

    rows = CommitRows([("release-1", first), ("release-2", second)])

    assert len(rows) == 4
    assert list(rows) == [
        ("release-1", 0, "a1", "acme/app", "one", "Ann", "ann@example.com",
         "2024-01-01T00:00:00Z", '[{"path":"a.py","type":"M"}]'),
        *[("release-2", index, f"b{index}", "acme/app", "one", "Ann", "ann@example.com",
           "2024-01-01T00:00:00Z", "[]") for index in range(3)],
    ]
    assert list(rows) == list(rows)
