"""Read-model batches commit without waiting for the disk, and other writes still wait.

A batch can be applied again from the ledger, so a PostgreSQL crash that
undoes one loses nothing. Writes that cannot be made again stay durable.
"""

from __future__ import annotations

from functools import singledispatchmethod

import pytest
from eventsourcing.domain import DomainEvent

from projections.database import Cursor
from projections.projection import Projection
from projections.projector import Projector
from tests.test_shared_batches import add_events


def synchronous_commit(cursor: Cursor) -> str:
    return cursor.execute("SHOW synchronous_commit").fetchone()["synchronous_commit"]


class CommitSetting(Projection):
    """Records the synchronous_commit setting each batch's transaction runs with."""

    name = "commit_setting_v1"
    create_statements = ()

    def __init__(self) -> None:
        self.seen: list[str] = []

    @singledispatchmethod
    def apply(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        self.seen.append(synchronous_commit(cursor))


@pytest.fixture
def postgres_only(backend):
    if backend != "postgresql":
        pytest.skip("SQLite read models always commit without a disk flush per commit.")


def test_batches_skip_disk_flush(services, world, postgres_only):
    add_events(services, world, 3)
    projection = CommitSetting()
    projector = Projector(services.ledger, services.database, [projection], batch_size=2)
    projector.create_tables()

    projector.catch_up()

    assert projection.seen
    assert set(projection.seen) == {"off"}


def test_other_transactions_stay_durable(services, postgres_only):
    database = services.database
    with database.transaction(write=True, durable=False) as cursor:
        assert synchronous_commit(cursor) == "off"
    # The setting ends with its transaction, whichever pooled connection comes next.
    for _ in range(3):
        with database.transaction(write=True) as cursor:
            assert synchronous_commit(cursor) == "on"
        with database.transaction() as cursor:
            assert synchronous_commit(cursor) == "on"
