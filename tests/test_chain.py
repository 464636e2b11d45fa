"""The hash chain: intact ledgers verify, and each kind of tampering is caught where it happened."""

from __future__ import annotations

import threading
import uuid
from contextlib import contextmanager

import pytest
from eventsourcing.persistence import StoredEvent

from api.cli import main
from chain.links import GENESIS_HASH
from chain.postgres import FEW_EVENTS, LARGE_MESSAGE_BYTES, ChainedPostgresApplicationRecorder
from chain.sqlite import ChainedSQLiteApplicationRecorder
from chain.verification import Anchor, Verification, Verifier
from domain.application import ReleaseChanges
from domain.directory import Project
from domain.release import Release
from tests.builders import CAUSE, World
from tests.tampering import Tamperer


def create_release(world: World, version: str, ref: str = "first") -> int:
    """Create a release linked to web and return the position of its Created event."""
    ledger = world.services.ledger
    organization = ledger.get_organization(world.org)
    position = (ledger.recorder.max_notification_id() or 0) + 1
    changes = ReleaseChanges(ref=ref, project_ids=[Project.create_id(organization.id, "web")])
    ledger.create_release(organization.id, version, changes, CAUSE)
    return position


def verify(world: World, *anchors: Anchor) -> Verification:
    return Verifier(world.services.ledger.recorder, batch_size=7).verify(anchors)


def head(world: World) -> int:
    return world.services.ledger.recorder.max_notification_id()


@pytest.fixture
def tamperer(settings) -> Tamperer:
    return Tamperer(settings)


def test_intact_ledger_verifies(world):
    create_release(world, "1.0")
    create_release(world, "2.0")

    result = verify(world)

    assert result.intact
    assert result.events == head(world)
    assert result.head_position == head(world)
    assert result.head_hash == world.services.ledger.recorder.select_links(
        head(world) - 1, 1, head(world))[0].hash
    assert result.head_hash != GENESIS_HASH


def test_every_event_gets_a_link_at_its_position(world):
    create_release(world, "1.0")

    links = world.services.ledger.recorder.select_links(0, 1000, head(world))

    assert [link.position for link in links] == list(range(1, head(world) + 1))
    assert [link.previous_position for link in links] == list(range(head(world)))


def test_changed_event_is_caught_at_its_position(world, tamperer):
    position = create_release(world, "1.0", ref="first")
    create_release(world, "2.0")

    tamperer.replace_in_state(position, b'"first"', b'"forged"')
    result = verify(world)

    assert result.first_break.position == position
    assert result.first_break.kind == "changed"
    assert result.events == position - 1


def test_null_state_is_reported_as_changed(world, tamperer):
    position = create_release(world, "1.0")
    create_release(world, "2.0")

    tamperer.run((f"UPDATE {tamperer.events} SET state = NULL WHERE {tamperer.position} = %s",
                  (position,)))
    result = verify(world)

    assert result.first_break.position == position
    assert result.first_break.kind == "changed"
    assert "NULL" in result.first_break.reason
    assert result.events == position - 1


@pytest.mark.parametrize("change", [
    "state = CAST(state AS TEXT)",
    "state = CAST(state AS BLOB) || x'20'",
    "originator_id = 'not-a-uuid'",
])
def test_mistyped_sqlite_row_is_reported(backend, world, tamperer, change):
    if backend != "sqlite":
        pytest.skip("PostgreSQL's column types reject these values.")
    position = create_release(world, "1.0")
    create_release(world, "2.0")

    tamperer.run((f"UPDATE {tamperer.events} SET {change} WHERE rowid = %s", (position,)))
    result = verify(world)

    assert result.first_break.position == position
    assert result.first_break.kind == "changed"
    assert result.events == position - 1


def test_changed_topic_is_caught(world, tamperer):
    position = create_release(world, "1.0")
    event = tamperer.event(position)

    tamperer.run((f"UPDATE {tamperer.events} SET topic = %s WHERE {tamperer.position} = %s",
                  (event.topic + "x", position)))
    result = verify(world)

    assert (result.first_break.position, result.first_break.kind) == (position, "changed")


def test_removed_event_is_caught_at_its_position(world, tamperer):
    position = create_release(world, "1.0")
    create_release(world, "2.0")

    tamperer.remove_event(position)
    result = verify(world)

    assert (result.first_break.position, result.first_break.kind) == (position, "removed")


def test_removed_event_and_link_are_caught(world, tamperer):
    position = create_release(world, "1.0")
    create_release(world, "2.0")

    tamperer.remove_event(position)
    tamperer.remove_link(position)
    result = verify(world)

    assert (result.first_break.position, result.first_break.kind) == (position, "removed")


def test_removed_link_is_caught(world, tamperer):
    position = create_release(world, "1.0")
    create_release(world, "2.0")

    tamperer.remove_link(position)
    result = verify(world)

    assert (result.first_break.position, result.first_break.kind) == (position, "removed")


def test_inserted_event_is_caught_at_its_position(world, tamperer):
    position = create_release(world, "1.0")
    forged_at = head(world) + 1
    copied = tamperer.event(position)

    tamperer.insert_event(forged_at, uuid.uuid4(), copied.topic, copied.state)
    result = verify(world)

    assert (result.first_break.position, result.first_break.kind) == (forged_at, "inserted")
    assert result.events == forged_at - 1


def test_swapped_events_are_caught_as_reordered(world, tamperer):
    first = create_release(world, "1.0")
    second = create_release(world, "2.0")

    tamperer.swap_events(first, second)
    result = verify(world)

    assert (result.first_break.position, result.first_break.kind) == (first, "reordered")


def test_moved_event_is_caught_as_reordered(world, tamperer):
    position = create_release(world, "1.0")
    create_release(world, "2.0")

    tamperer.move_event(position, head(world) + 5)
    result = verify(world)

    assert (result.first_break.position, result.first_break.kind) == (position, "reordered")


def test_changed_link_is_caught(world, tamperer):
    position = create_release(world, "1.0")
    create_release(world, "2.0")

    tamperer.set_link_hash(position, "f" * 64)
    result = verify(world)

    assert (result.first_break.position, result.first_break.kind) == (position, "changed")


def test_rewritten_chain_passes_alone_but_not_an_anchor(world, tamperer):
    position = create_release(world, "1.0", ref="first")
    create_release(world, "2.0")
    published = verify(world)
    anchor = Anchor(published.head_position, published.head_hash)

    tamperer.replace_in_state(position, b'"first"', b'"forged"')
    tamperer.relink_from(position, head(world))
    alone = verify(world)
    anchored = verify(world, anchor)

    assert alone.intact
    assert (anchored.first_break.position, anchored.first_break.kind) == (
        anchor.position, "rewritten")


def test_truncated_tail_is_caught_by_an_anchor(world, tamperer):
    create_release(world, "1.0")
    last = head(world)
    published = verify(world)

    tamperer.remove_event(last)
    tamperer.remove_link(last)
    alone = verify(world)
    anchored = verify(world, Anchor(published.head_position, published.head_hash))

    assert alone.intact
    assert (anchored.first_break.position, anchored.first_break.kind) == (last, "truncated")


def test_anchor_of_an_intact_ledger_passes(world):
    create_release(world, "1.0")
    published = verify(world)
    create_release(world, "2.0")

    result = verify(world, Anchor(published.head_position, published.head_hash))

    assert result.intact


def test_concurrent_writers_keep_the_chain_intact(world):
    errors = []

    def write(worker: int) -> None:
        try:
            for number in range(5):
                create_release(world, f"{worker}.{number}")
                create_release(world, "shared")
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = verify(world)

    assert errors == []
    assert result.intact
    assert result.events == len(world.services.ledger.recorder.select_notifications(
        0, 10_000, inclusive_of_start=False))


def test_failed_link_append_records_no_event(world, tamperer):
    # A link already binding the new release's first event makes the link
    # insert fail inside the append, on the server on PostgreSQL.
    create_release(world, "1.0")
    before = head(world)
    release_id = Release.create_id(world.services.ledger.get_organization("acme").id, "2.0")
    bogus_link = ("INSERT INTO ledger_chain (position, previous_position, originator_id,"
                  " originator_version, hash) VALUES (%s, %s, %s, 1, %s)")
    tamperer.run((bogus_link, (10**9, before, str(release_id), "0" * 64)))

    with pytest.raises(Exception, match="changed by concurrent requests"):
        create_release(world, "2.0")
    after_failure = head(world)
    tamperer.run(("DELETE FROM ledger_chain WHERE position = %s", (10**9,)))
    create_release(world, "2.0")

    assert after_failure == before
    assert verify(world).intact


def test_failed_python_link_append_records_no_event(world, tamperer, monkeypatch):
    # With an empty chain both backends link in Python, first the earlier
    # events and then the new ones.
    create_release(world, "1.0")
    tamperer.run(("DELETE FROM ledger_chain", ()))
    before = head(world)

    def fail(self, cursor, links):
        raise RuntimeError("disk full")

    for recorder_class in (ChainedSQLiteApplicationRecorder, ChainedPostgresApplicationRecorder):
        monkeypatch.setattr(recorder_class, "_insert_links", fail)
    with pytest.raises(Exception, match="disk full"):
        create_release(world, "2.0")
    after_failure = head(world)
    monkeypatch.undo()
    create_release(world, "3.0")

    assert after_failure == before
    assert verify(world).intact
    assert Release.create_id(world.services.ledger.get_organization("acme").id, "2.0") \
        not in world.services.ledger.repository


def test_postgres_links_appends_on_the_server(world, monkeypatch):
    if world.services.settings.backend != "postgresql":
        pytest.skip("Only PostgreSQL links appends on the server.")
    create_release(world, "1.0")

    def python_links(self, cursor, events):
        raise AssertionError("linked in Python")

    monkeypatch.setattr(ChainedPostgresApplicationRecorder, "_append_links", python_links)
    create_release(world, "2.0")
    ledger = world.services.ledger
    organization = ledger.get_organization(world.org)
    ledger.update_release(organization.id, "2.0", ReleaseChanges(ref="second"), CAUSE)
    result = verify(world)

    assert result.intact
    assert result.events == head(world)


def stored_events(count: int, state_bytes: int = 16) -> list[StoredEvent]:
    """Events of one new aggregate, each with a state of its own of `state_bytes` bytes."""
    originator_id = uuid.uuid4()
    return [
        StoredEvent(originator_id, version, "tests.test_chain:Stored_é",
                    bytes([version % 256]) * state_bytes)
        for version in range(1, count + 1)
    ]


def states_after(world: World, position: int) -> list[bytes]:
    notifications = world.services.ledger.recorder.select_notifications(
        position, 10_000, inclusive_of_start=False)
    return [notification.state for notification in notifications]


@pytest.mark.parametrize("large", [False, True])
@pytest.mark.parametrize("count", [1, 2, FEW_EVENTS, FEW_EVENTS + 1])
def test_appends_store_states_in_order(world, count, large):
    # A large append of up to FEW_EVENTS events sends one parameter per
    # state, and every other append sends one array of states.
    if world.services.settings.backend != "postgresql":
        pytest.skip("Only PostgreSQL has an append function.")
    create_release(world, "1.0")
    before = head(world)
    events = stored_events(count, LARGE_MESSAGE_BYTES // count + 1 if large else 16)

    positions = world.services.ledger.recorder.insert_events(events)

    assert positions == list(range(before + 1, before + count + 1))
    assert states_after(world, before) == [event.state for event in events]
    assert verify(world).intact


@pytest.fixture
def pooled_recorder(world):
    """Return the event store's recorder, skipping on SQLite, which keeps no pool."""
    if world.services.settings.backend != "postgresql":
        pytest.skip("Only PostgreSQL keeps a pool of event store connections.")
    return world.services.ledger.recorder


def test_postgres_large_append_closes_its_connection(world, pooled_recorder, monkeypatch):
    recorder = pooled_recorder
    closed_after_use = []
    real_connection = recorder.datastore.get_connection

    @contextmanager
    def watched_connection():
        with real_connection() as connection:
            yield connection
            closed_after_use.append(connection.closed)

    before = recorder.max_notification_id() or 0
    small, large = stored_events(1), stored_events(1, LARGE_MESSAGE_BYTES)
    monkeypatch.setattr(recorder.datastore, "get_connection", watched_connection)

    recorder.insert_events(small)
    recorder.insert_events(large)
    recorder.insert_events(stored_events(2))

    assert closed_after_use == [False, True, False]
    assert states_after(world, before)[:2] == [small[0].state, large[0].state]
    assert verify(world).intact


def test_postgres_large_read_renews_pool(world, pooled_recorder, monkeypatch):
    # libpq keeps a connection's input buffer at its largest message's size.
    recorder = pooled_recorder
    renewals = []
    monkeypatch.setattr(recorder.datastore.pool, "drain", lambda: renewals.append(True))
    before = head(world)
    small, large = stored_events(2), stored_events(1, LARGE_MESSAGE_BYTES)
    recorder.insert_events(small)

    states_after(world, before)
    recorder.select_events(small[0].originator_id)
    small_reads = len(renewals)
    recorder.insert_events(large)
    states_after(world, before)
    after_notifications = len(renewals)
    recorder.select_events(large[0].originator_id)

    assert small_reads == 0
    assert after_notifications == 1
    assert len(renewals) == 2


def test_postgres_reads_continue_after_renewal(world, pooled_recorder):
    recorder = pooled_recorder
    before = head(world)
    large = stored_events(1, LARGE_MESSAGE_BYTES)
    recorder.insert_events(large)

    first = states_after(world, before)
    second = states_after(world, before)
    create_release(world, "1.0")

    assert first == second == [large[0].state]
    assert verify(world).intact


def test_migrate_links_events_recorded_before_the_chain(settings, world, tamperer, monkeypatch,
                                                        capsys):
    create_release(world, "1.0")
    tamperer.run(("DELETE FROM ledger_chain", ()))
    monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url)

    status = main(["migrate"])

    assert status == 0
    assert f"Linked {head(world)} events" in capsys.readouterr().out
    assert verify(world).intact
    assert verify(world).events == head(world)


def test_first_chained_write_links_earlier_events(world, tamperer):
    create_release(world, "1.0")
    tamperer.run(("DELETE FROM ledger_chain", ()))

    create_release(world, "2.0")
    result = verify(world)

    # PostgreSQL's first attempt, which finds no head, leaves a gap in the
    # positions, so the count of stored events is compared.
    assert result.intact
    assert result.events == len(world.services.ledger.recorder.select_notifications(
        0, 10_000, inclusive_of_start=False))


def test_postgres_appends_without_the_append_function(world, tamperer):
    # A database whose tables an earlier version created, before migrate,
    # lacks the function; appends still record and link every event.
    if world.services.settings.backend != "postgresql":
        pytest.skip("Only PostgreSQL has an append function.")
    create_release(world, "1.0")
    tamperer.run(("DROP FUNCTION ledger_append_events", ()))

    create_release(world, "2.0")
    result = verify(world)

    assert result.intact
    assert result.events == head(world)


def test_verify_command_prints_count_and_head(settings, world, monkeypatch, capsys):
    create_release(world, "1.0")
    expected = verify(world)
    monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url)

    status = main(["verify"])
    output = capsys.readouterr()

    assert status == 0
    assert f"Verified {expected.events} events: the chain is intact." in output.out
    assert f"Head: {expected.head_position}:{expected.head_hash}" in output.out
    assert f"Verified up to position {expected.head_position} of" in output.err


def test_verify_command_reports_the_first_break(settings, world, tamperer, monkeypatch, capsys):
    position = create_release(world, "1.0")
    create_release(world, "2.0")
    tamperer.remove_event(position)
    monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url)

    status = main(["verify"])
    output = capsys.readouterr().out

    assert status == 1
    assert f"Chain broken at position {position} (removed)" in output
    assert f"{position - 1} events verified before the break" in output


def test_verify_command_checks_anchors(settings, world, tamperer, monkeypatch, capsys):
    create_release(world, "1.0")
    published = verify(world)
    tamperer.remove_event(published.head_position)
    tamperer.remove_link(published.head_position)
    monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url)

    status = main(["verify", "--anchor", f"{published.head_position}:{published.head_hash}"])
    output = capsys.readouterr().out

    assert status == 1
    assert f"Chain broken at position {published.head_position} (truncated)" in output


def test_anchor_must_be_position_and_hash():
    with pytest.raises(ValueError, match="POSITION:HASH"):
        Anchor.parse("12:abc")
