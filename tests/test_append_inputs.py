"""The PostgreSQL append function and chain.links agree on unusual appends.

Each test works in a schema, or a database, of its own, and drops it at the end.
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresDatastore
from psycopg.sql import SQL, Identifier

from api.config import Settings
from chain.postgres import FEW_EVENTS, LARGE_MESSAGE_BYTES, ChainedPostgresApplicationRecorder
from chain.verification import Verifier
from tests.conftest import check_postgres_reachable, postgres_url

EARLIER_FUNCTION = Path(__file__).with_name("earlier_append_function.sql")


def server_settings():
    return Settings(database_url=postgres_url()).postgres


def admin(dbname: str | None = None) -> psycopg.Connection:
    postgres = server_settings()
    return psycopg.connect(host=postgres.host, port=postgres.port, user=postgres.user,
                           password=postgres.password, dbname=dbname or postgres.dbname,
                           autocommit=True)


def make_recorder(dbname: str | None, schema: str, id_type: str, *, create: bool = True
                  ) -> ChainedPostgresApplicationRecorder:
    postgres = server_settings()
    datastore = PostgresDatastore(dbname or postgres.dbname, postgres.host, str(postgres.port),
                                  postgres.user, postgres.password, schema=schema,
                                  originator_id_type=id_type, pool_size=2)
    recorder = ChainedPostgresApplicationRecorder(datastore)
    if create:
        recorder.create_table()
    return recorder


@pytest.fixture
def schema() -> Iterator[str]:
    check_postgres_reachable()
    name = f"append_inputs_{uuid.uuid4().hex[:10]}"
    with admin() as connection:
        connection.execute(SQL("CREATE SCHEMA {}").format(Identifier(name)))
    try:
        yield name
    finally:
        with admin() as connection:
            connection.execute(SQL("DROP SCHEMA {} CASCADE").format(Identifier(name)))


def events_of(originator_id: uuid.UUID | str, count: int, topic: str,
              state_bytes: int = 8) -> list[StoredEvent]:
    return [StoredEvent(originator_id, version, topic, bytes([version % 251]) * state_bytes)
            for version in range(1, count + 1)]


def assert_intact(recorder: ChainedPostgresApplicationRecorder, count: int) -> None:
    verification = Verifier(recorder).verify()

    assert verification.first_break is None
    assert verification.events == count


CASES = {
    "non-ASCII topic": ("uuid", lambda: events_of(uuid.uuid4(), 3, "mod:Ünïcödé.Ëvent_😀")),
    "empty states": ("uuid", lambda: events_of(uuid.uuid4(), 3, "mod:Empty", state_bytes=0)),
    "text ids, non-ASCII": ("text", lambda: events_of("relé-✓-😀", 3, "mod:Text")),
    "text ids, uuid objects": ("text", lambda: events_of(uuid.uuid4(), 3, "mod:Text")),
    "uuid ids given as text": ("uuid", lambda: events_of(str(uuid.uuid4()).upper(), 3, "m:T")),
    "many events": ("uuid", lambda: events_of(uuid.uuid4(), 3000, "mod:Many")),
    "large, few events": ("uuid", lambda: events_of(
        uuid.uuid4(), FEW_EVENTS, "mod:Large", LARGE_MESSAGE_BYTES // FEW_EVENTS + 1)),
    "large, one empty state": ("uuid", lambda: [
        StoredEvent(uuid.uuid4(), 1, "m:L", b""),
        StoredEvent(uuid.uuid4(), 1, "m:L", b"x" * LARGE_MESSAGE_BYTES)]),
    "large, many events": ("uuid", lambda: events_of(
        uuid.uuid4(), FEW_EVENTS + 3, "mod:Large", LARGE_MESSAGE_BYTES // FEW_EVENTS)),
}


@pytest.mark.parametrize("case", CASES)
def test_append_function_hashes_match_python(schema, case):
    id_type, make_events = CASES[case]
    recorder = make_recorder(None, schema, id_type)
    try:
        first = recorder.insert_events(events_of(uuid.uuid4(), 2, "mod:First"))
        events = make_events()

        positions = recorder.insert_events(events)

        assert positions == list(range(first[-1] + 1, first[-1] + 1 + len(events)))
        stored = recorder.select_notifications(first[-1], len(events) + 1,
                                               inclusive_of_start=False)
        assert [n.topic for n in stored] == [e.topic for e in events]
        assert [bytes(n.state) for n in stored] == [e.state for e in events]
        assert_intact(recorder, 2 + len(events))
    finally:
        recorder.datastore.close()


def test_append_after_function_of_earlier_version(schema):
    # A database migrated by the earlier version keeps that function body
    # until `release-ledger migrate` runs again.
    recorder = make_recorder(None, schema, "uuid")
    try:
        with admin() as connection:
            connection.execute(EARLIER_FUNCTION.read_text().replace("SCHEMA_NAME", schema))
        recorder.insert_events(events_of(uuid.uuid4(), 3, "mod:Old"))
        recorder.insert_events(events_of(uuid.uuid4(), 2, "mod:Old",
                                         LARGE_MESSAGE_BYTES // 2 + 1))
        recorder.insert_events(events_of(uuid.uuid4(), 1, "mod:Old"))

        assert_intact(recorder, 6)
    finally:
        recorder.datastore.close()


def append_many(schema: str, rounds: int) -> None:
    # The tables exist already. Processes replacing the append function at
    # once can fail with "tuple concurrently updated".
    recorder = make_recorder(None, schema, "uuid", create=False)
    try:
        for round_number in range(rounds):
            large = round_number % 7 == 0
            recorder.insert_events(events_of(uuid.uuid4(), 1 + round_number % 4, "mod:Race",
                                             LARGE_MESSAGE_BYTES // 4 + 1 if large else 8))
    finally:
        recorder.datastore.close()


def test_concurrent_appends_from_processes(schema):
    make_recorder(None, schema, "uuid").datastore.close()
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=append_many, args=(schema, 15)) for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)

    assert [process.exitcode for process in processes] == [0, 0, 0]
    recorder = make_recorder(None, schema, "uuid")
    try:
        count = recorder.max_notification_id()
        assert_intact(recorder, count)
    finally:
        recorder.datastore.close()


@pytest.fixture
def latin1_database() -> Iterator[str]:
    check_postgres_reachable()
    name = f"ledger_latin1_{uuid.uuid4().hex[:8]}"
    with admin() as connection:
        connection.execute(SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'LATIN1'"
                               " LC_COLLATE 'C' LC_CTYPE 'C'").format(Identifier(name)))
    try:
        yield name
    finally:
        with admin() as connection:
            connection.execute(SQL("DROP DATABASE {} WITH (FORCE)").format(Identifier(name)))


def test_latin1_database_stores_non_ascii_topic(latin1_database):
    # The server reads binary text in the connection's encoding, here LATIN1.
    with admin(latin1_database) as connection:
        connection.execute("CREATE SCHEMA latin1_ledger")
    recorder = make_recorder(latin1_database, "latin1_ledger", "uuid")
    try:
        events = events_of(uuid.uuid4(), 1, "mod:Café")

        recorder.insert_events(events)

        stored = recorder.select_notifications(0, 10)
        assert stored[0].topic == "mod:Café"
    finally:
        recorder.datastore.close()


def test_latin1_non_ascii_ids_verify(latin1_database):
    # The hash takes the id's UTF-8 bytes, 5 for "relé", which is 4 bytes in LATIN1.
    with admin(latin1_database) as connection:
        connection.execute("CREATE SCHEMA latin1_ledger")
    recorder = make_recorder(latin1_database, "latin1_ledger", "text")
    try:
        with admin(latin1_database) as connection:
            connection.execute(
                "SELECT latin1_ledger.ledger_append_events("
                " ARRAY['relé']::text[], ARRAY[1]::bigint[], ARRAY['m:T'], ARRAY['\\x00'::bytea],"
                " '5s')")

        assert_intact(recorder, 1)
    finally:
        recorder.datastore.close()


def test_large_append_logs_no_pool_warning(schema, caplog):
    # The pool replaces the connection that a large append closes, without a warning.
    recorder = make_recorder(None, schema, "uuid")
    try:
        recorder.insert_events(events_of(uuid.uuid4(), 1, "m:L", LARGE_MESSAGE_BYTES))

        warnings = [record for record in caplog.records
                    if record.name.startswith("psycopg.pool") and record.levelname == "WARNING"]
        assert warnings == []
    finally:
        recorder.datastore.close()
