"""Catch-ups read the next batch in a thread and skip reads whose result is known."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from functools import singledispatchmethod
from types import SimpleNamespace

from eventsourcing.domain import DomainEvent

from domain.application import ReleaseChanges
from projections.database import Cursor
from projections.postgres import PostgresCursor
from projections.projection import Projection
from projections.projector import Projector
from projections.read_ahead import DECODE_AHEAD_MAX_BYTES, Batch, ReadAhead, decode_ahead
from projections.sqlite import SQLiteCursor
from projections.timeline import CLOCKS, TimelineProjection
from tests.builders import CAUSE
from tests.read_models import head, project_ids, projection_named, rebuild, table_contents


class Applied(Projection):
    """A read model that stores the position of each event, and lists them in memory too."""

    name = "applied_v1"
    create_statements = ("CREATE TABLE IF NOT EXISTS applied_v1_rows (position BIGINT)",)

    def __init__(self) -> None:
        self.positions: list[int] = []

    @singledispatchmethod
    def apply(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        self.positions.append(position)
        cursor.execute("INSERT INTO applied_v1_rows (position) VALUES (%s)", (position,))


def stored_positions(services) -> list[int]:
    with services.database.transaction() as cursor:
        rows = cursor.execute("SELECT position FROM applied_v1_rows ORDER BY position")
        return [row["position"] for row in rows.fetchall()]


def threads_reading(services, monkeypatch, fail_in: str | None = None) -> list[str]:
    """Record the thread of each read of notifications, failing those of thread `fail_in`."""
    recorder = services.ledger.recorder
    select = recorder.select_notifications
    names: list[str] = []

    def watched(*args, **kwargs):
        name = threading.current_thread().name
        names.append(name)
        if fail_in is not None and name.startswith(fail_in):
            raise ConnectionError("the read-ahead connection is gone")
        return select(*args, **kwargs)

    monkeypatch.setattr(recorder, "select_notifications", watched)
    return names


def add_teams(services, world, count: int) -> None:
    for number in range(count):
        services.ledger.create_team(world.org, f"ahead-{number}", None, CAUSE)


def new_projector(services, batch_size: int = 3) -> tuple[Projector, Applied]:
    projection = Applied()
    projector = Projector(services.ledger, services.database, [projection],
                          batch_size=batch_size)
    projector.create_tables()
    return projector, projection


def test_next_batch_read_in_thread(services, world, monkeypatch):
    add_teams(services, world, 12)
    monkeypatch.setattr(services.database, "reads_ahead", True)
    projector, projection = new_projector(services)
    threads = threads_reading(services, monkeypatch)

    projector.catch_up()

    everything = list(range(1, head(services) + 1))
    assert projection.positions == everything
    assert stored_positions(services) == everything
    assert any(name.startswith("read-ahead") for name in threads)


def test_failed_read_ahead_is_read_again(services, world, monkeypatch):
    add_teams(services, world, 12)
    monkeypatch.setattr(services.database, "reads_ahead", True)
    projector, _ = new_projector(services)
    threads = threads_reading(services, monkeypatch, fail_in="read-ahead")

    projector.catch_up()

    assert stored_positions(services) == list(range(1, head(services) + 1))
    assert any(name.startswith("read-ahead") for name in threads)


def test_only_postgresql_reads_ahead(services, world, monkeypatch):
    # SQLite's inserts waited for the decoding thread row by row.
    add_teams(services, world, 12)
    projector, _ = new_projector(services)
    threads = threads_reading(services, monkeypatch)

    projector.catch_up()
    rebuild(services, "directory_v2", batch_size=3)

    read_ahead = any(name.startswith("read-ahead") for name in threads)
    assert read_ahead == (services.settings.backend == "postgresql")


def test_catch_up_with_deadline_reads_inline(services, world, monkeypatch):
    add_teams(services, world, 12)
    projector, _ = new_projector(services)
    threads = threads_reading(services, monkeypatch)

    projector.catch_up(deadline=time.monotonic() + 60)

    assert threads
    assert not any(name.startswith("read-ahead") for name in threads)


def test_undecodable_event_names_its_position(services, world, monkeypatch):
    add_teams(services, world, 12)
    projector, projection = new_projector(services)
    broken = head(services) - 4
    mapper = services.ledger.mapper
    to_domain_event = mapper.to_domain_event

    def decode(notification):
        if notification.id == broken:
            raise ValueError("the stored state is not JSON")
        return to_domain_event(notification)

    monkeypatch.setattr(mapper, "to_domain_event", decode)

    try:
        projector.catch_up()
    except ValueError as error:
        notes = "\n".join(getattr(error, "__notes__", []))
    else:
        raise AssertionError("the catch-up applied an event that cannot be decoded")

    assert f"ledger position {broken}" in notes
    assert projection.positions[-1] < broken
    assert stored_positions(services) == list(range(1, projector.positions()["applied_v1"] + 1))


def test_large_batch_is_decoded_later():
    decoded = []
    small = SimpleNamespace(id=1, state=b"x" * 10)
    large = SimpleNamespace(id=2, state=b"x" * DECODE_AHEAD_MAX_BYTES)

    assert decode_ahead([small], lambda n: decoded.append(n.id) or n.id) == [1]
    assert decode_ahead([small, large], lambda n: decoded.append(n.id) or n.id) is None
    assert decoded == [1]


def test_batch_of_other_range_is_dropped():
    reads = []

    def read(after: int, target: int) -> Batch:
        reads.append(after)
        return Batch(after, target, [SimpleNamespace(id=after + 1, state=b"")])

    with ReadAhead(read) as read_ahead:
        read_ahead.start(5, 10)
        assert read_ahead.take(6, 10) is None
        assert read_ahead.take(5, 10) is None
        read_ahead.start(6, 10)
        batch = read_ahead.take(6, 10)

    assert batch is not None
    assert batch.end == 7
    assert reads[-1] == 6


def test_new_release_reads_no_clock(services, world, monkeypatch):
    ledger = services.ledger
    org_id = ledger.get_organization(world.org).id
    [project_id] = project_ids(services, "web")
    for number in range(4):
        changes = ReleaseChanges(project_ids=[project_id],
                                 date_released=datetime(2024, 5, 1, tzinfo=UTC))
        ledger.create_release(org_id, f"4.{number}", changes, CAUSE)
    projector = Projector(ledger, services.database, [TimelineProjection()])
    cursor_class = PostgresCursor if services.settings.backend == "postgresql" else SQLiteCursor
    execute = cursor_class.execute
    statements: list[str] = []

    def recorded(self, statement, params=()):
        statements.append(statement)
        return execute(self, statement, params)

    monkeypatch.setattr(cursor_class, "execute", recorded)
    applied = projector.catch_up()

    assert applied >= 12
    assert not [s for s in statements if CLOCKS in s and s.lstrip().startswith("SELECT")]


def test_rebuild_reads_next_batch_ahead(services, world, monkeypatch):
    add_teams(services, world, 12)
    services.projector.catch_up()
    before = table_contents(services, projection_named(services, "audit_v2"))
    monkeypatch.setattr(services.database, "reads_ahead", True)
    threads = threads_reading(services, monkeypatch)

    position = rebuild(services, "audit_v2", batch_size=3)

    assert position == head(services)
    assert table_contents(services, projection_named(services, "audit_v2")) == before
    assert any(name.startswith("read-ahead") for name in threads)
