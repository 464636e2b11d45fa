"""Query-only indexes: built after a fill from position zero, present whenever it ends."""

from __future__ import annotations

import dataclasses
import threading
import time

import psycopg
import pytest

import projections.postgres
from api.services import Services
from domain.application import ReleaseChanges
from projections import projector as projector_module
from projections.postgres import INDEX_BUILDERS
from projections.projection import Projection, index_name
from projections.projector import POSITIONS_TABLE, Projector
from projections.rebuild import COPY_PREFIX
from projections.registry import all_projections
from tests.builders import CAUSE, build_world
from tests.read_models import (
    all_contents,
    org_id,
    project_ids,
    projection_named,
    rebuild,
    record_history,
)
from tests.rebuild import wait_for_positions
from tests.test_runner import running, wait_until

FILLED = ["audit_v2", "releases_v1", "delivery_v1", "timeline_v2"]


def index_names(services, tables) -> set[str]:
    with services.database.transaction() as cursor:
        return set().union(*(services.database.index_names(cursor, table) for table in tables))


def reset_to_zero(services, projection: Projection) -> None:
    """Drop the read model's tables and position, and create them again, empty."""
    with services.database.transaction(write=True) as cursor:
        for table in projection.tables:
            cursor.execute(f"DROP TABLE {table}")
        cursor.execute(f"DELETE FROM {POSITIONS_TABLE} WHERE name = %s", (projection.name,))
    services.projector.create_tables()


def filler(services, projection: Projection, defer_from: int) -> Projector:
    return Projector(services.ledger, services.database, [projection], batch_size=5,
                     defer_indexes_from=defer_from)


@pytest.mark.parametrize("projection", all_projections(), ids=lambda p: p.name)
def test_query_indexes_are_indexes_of_the_read_model(projection):
    created = {index_name(statement) for statement in projection.create_statements}

    assert projection.query_indexes <= created
    assert len(projection.query_index_statements) == len(projection.query_indexes)


@pytest.mark.parametrize("name", FILLED)
def test_fill_builds_query_indexes_last(services, world, name):
    record_history(services)
    services.projector.catch_up()
    projection = projection_named(services, name)
    live, every_index = all_contents(services), index_names(services, projection.tables)
    reset_to_zero(services, projection)
    seen: list[set[str]] = []

    filler(services, projection, defer_from=1).catch_up(
        before_batch=lambda: seen.append(index_names(services, projection.tables)))

    assert len(seen) > 1
    assert all(not names & projection.query_indexes for names in seen)
    assert index_names(services, projection.tables) == every_index
    assert all_contents(services) == live


def test_short_fill_keeps_query_indexes(services, world):
    record_history(services)
    projection = projection_named(services, "audit_v2")
    reset_to_zero(services, projection)
    seen: list[set[str]] = []
    events = services.projector.head()

    filler(services, projection, defer_from=events + 1).catch_up(
        before_batch=lambda: seen.append(index_names(services, projection.tables)))

    assert seen
    assert all(projection.query_indexes <= names for names in seen)


def test_interrupted_fill_builds_query_indexes(services, world):
    record_history(services)
    projection = projection_named(services, "audit_v2")
    every_index = index_names(services, projection.tables)
    reset_to_zero(services, projection)
    batches: list[int] = []

    def stop_at_second_batch() -> None:
        batches.append(1)
        if len(batches) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        filler(services, projection, defer_from=1).catch_up(before_batch=stop_at_second_batch)

    assert index_names(services, projection.tables) == every_index


def test_fill_past_zero_keeps_query_indexes(services, world):
    # Dropping the indexes of a partly filled model would leave its
    # queries without them for the rest of the fill.
    record_history(services)
    projection = projection_named(services, "audit_v2")
    reset_to_zero(services, projection)
    filler(services, projection, defer_from=1).apply_batch(projection, services.projector.head())
    seen: list[set[str]] = []

    filler(services, projection, defer_from=1).catch_up(
        before_batch=lambda: seen.append(index_names(services, projection.tables)))

    assert seen
    assert all(projection.query_indexes <= names for names in seen)


@pytest.mark.parametrize("name", FILLED)
def test_rebuild_builds_query_indexes_before_switching(services, world, name):
    record_history(services)
    services.projector.catch_up()
    projection = projection_named(services, name)
    every_index = index_names(services, projection.tables)
    copies = [COPY_PREFIX + table for table in projection.tables]
    copy_queries = {COPY_PREFIX + index for index in projection.query_indexes}
    seen: list[set[str]] = []

    def report(progress) -> None:
        if not progress.done:
            seen.append(index_names(services, copies))

    rebuild(services, name, batch_size=5, report=report)

    assert seen
    assert all(not names & copy_queries for names in seen)
    assert index_names(services, projection.tables) == every_index


def test_history_query_plans_with_ssd_page_costs(services, world):
    # At PostgreSQL's default random_page_cost the planner read a release's
    # history by scanning every event in position order and filtering.
    if services.settings.backend != "postgresql":
        pytest.skip("The planner's costs are PostgreSQL settings.")
    record_history(services)
    services.projector.catch_up()
    with services.database.transaction() as cursor:
        setting = cursor.execute("SHOW random_page_cost").fetchone()
        subject = cursor.execute(
            "SELECT subject_id FROM audit_v2_events ORDER BY position DESC LIMIT 1"
        ).fetchone()["subject_id"]
        cursor.execute("ANALYZE audit_v2_events")
        plan = cursor.execute(
            "EXPLAIN SELECT * FROM audit_v2_events WHERE subject_id = %s"
            " ORDER BY position LIMIT 101", (subject,),
        ).fetchall()

    assert setting["random_page_cost"] == "1.1"
    assert "audit_v2_events_subject" in " ".join(str(row) for row in plan)


def test_fill_with_a_deadline_keeps_query_indexes(services, world):
    # A request's catch-up must not spend its time building indexes.
    record_history(services)
    projection = projection_named(services, "audit_v2")
    reset_to_zero(services, projection)
    seen: list[set[str]] = []

    filler(services, projection, defer_from=1).catch_up(
        deadline=time.monotonic() + 60,
        before_batch=lambda: seen.append(index_names(services, projection.tables)))

    assert seen
    assert all(projection.query_indexes <= names for names in seen)


@pytest.mark.parametrize("projection", all_projections(), ids=lambda p: p.name)
def test_unanalyzed_columns_are_columns_of_the_read_model(projection):
    for table, columns in projection.unanalyzed_columns.items():
        create = next(statement for statement in projection.create_statements
                      if statement.startswith(f"CREATE TABLE IF NOT EXISTS {table} "))

        assert table in projection.tables
        assert all(f" {column} " in create for column in columns)


def filled_audit(services) -> Projection:
    """Record releases, catch every read model up and return the audit model."""
    record_history(services)
    services.projector.catch_up()
    return projection_named(services, "audit_v2")


class RecordingCursor:
    """Cursor wrapper that records every statement it executes, with its parameters."""

    def __init__(self, cursor) -> None:
        self.cursor = cursor
        self.executed: list[tuple[str, tuple]] = []

    def execute(self, statement, params=()):
        self.executed.append((statement, tuple(params)))
        return self.cursor.execute(statement, params)

    def __getattr__(self, name):
        return getattr(self.cursor, name)


def test_project_backfill_uses_an_index(services, world):
    # During a fill, with the query indexes dropped, adding a project to a
    # stored release copies its events, which must not scan the table.
    audit = filled_audit(services)
    organization, (api,) = org_id(services), project_ids(services, "api")
    services.ledger.update_release(organization, "app@2.0",
                                   ReleaseChanges(project_ids=[api]), CAUSE)
    notification = services.ledger.recorder.select_notifications(
        start=services.projector.head(), limit=1)[0]
    event = services.ledger.mapper.to_domain_event(notification)
    with services.database.transaction(write=True) as cursor:
        for name in audit.query_indexes:
            cursor.execute(f"DROP INDEX {name}")
        recording = RecordingCursor(cursor)
        audit.begin_batch()
        audit.apply(event, recording, notification.id)
        statement, params = next((statement, params) for statement, params in recording.executed
                                 if "SELECT %s, position, type FROM" in statement)
        select = statement[statement.index("SELECT"):statement.index(" ON CONFLICT")]
        plan = explain(services, cursor, select, params)

    # The index finds the lifetime's rows, instead of a scan by position filtering them.
    assert "lifetime=?" in plan or "Index Cond: ((lifetime = " in plan
    assert "Filter" not in plan


def test_sqlite_sorts_index_builds_on_threads(services, world):
    if services.settings.backend != "sqlite":
        pytest.skip("PostgreSQL builds indexes on connections of their own.")
    during: list[int] = []

    class Probe(RecordingCursor):
        def execute(self, statement, params=()):
            if statement == "CREATE INDEX probe":
                during.append(self.cursor.execute("PRAGMA threads").fetchone()["threads"])
                return self
            return super().execute(statement, params)

    with services.database.transaction(write=True) as cursor:
        services.database.build_indexes(Probe(cursor), ["CREATE INDEX probe"])
        after = cursor.execute("PRAGMA threads").fetchone()["threads"]

    assert during == [2]
    assert after == 0


def test_rebuild_builds_indexes_through_database(services, world, monkeypatch):
    # The database's own index builder sorts on threads or connections of its own.
    record_history(services)
    services.projector.catch_up()
    built: list[str] = []
    build_indexes = services.database.build_indexes

    def recorded(cursor, statements):
        built.extend(statements)
        build_indexes(cursor, statements)

    monkeypatch.setattr(services.database, "build_indexes", recorded)

    rebuild(services, "audit_v2")

    audit = projection_named(services, "audit_v2")
    names = {index_name(statement) for statement in built}
    copies = {name for name in names if name.startswith(COPY_PREFIX)}
    assert copies == {f"{COPY_PREFIX}{name}" for name in audit.query_indexes}
    # SQLite cannot rename an index, so the switch builds each one again.
    if services.settings.backend == "sqlite":
        every_index = {index_name(statement) for statement in audit.create_statements}
        assert names - copies == every_index - {None}


def explain(services, cursor, statement: str, params: tuple) -> str:
    """Return the plan of `statement` as text, preferring indexes on PostgreSQL's small tables."""
    if services.settings.backend == "postgresql":
        cursor.execute("SET LOCAL enable_seqscan = off")
        rows = cursor.execute(f"EXPLAIN {statement}", params).fetchall()
    else:
        rows = cursor.execute(f"EXPLAIN QUERY PLAN {statement}", params).fetchall()
    return " ".join(str(row) for row in rows)


def test_analyze_leaves_out_unanalyzed_columns(services, world):
    if services.settings.backend != "postgresql":
        pytest.skip("SQLite's ANALYZE has no column list.")
    audit = filled_audit(services)

    services.projector._analyze(audit)
    with services.database.transaction() as cursor:
        rows = cursor.execute(
            "SELECT attname FROM pg_stats WHERE schemaname = %s AND tablename = 'audit_v2_events'",
            (services.database.schema,),
        ).fetchall()
    analyzed = {row["attname"] for row in rows}

    assert {"org_id", "subject_id", "type", "position"} <= analyzed
    assert not analyzed & audit.unanalyzed_columns["audit_v2_events"]


def position_histogram(services) -> list[int]:
    with services.database.transaction() as cursor:
        row = cursor.execute(
            "SELECT histogram_bounds::text::bigint[] AS bounds FROM pg_stats"
            " WHERE schemaname = %s AND tablename = 'audit_v2_events' AND attname = 'position'",
            (services.database.schema,),
        ).fetchone()
    return row["bounds"]


def test_fill_analyze_samples_coarsely(services, world):
    if services.settings.backend != "postgresql":
        pytest.skip("Only PostgreSQL's ANALYZE takes a statistics target.")
    audit = filled_audit(services)
    with services.database.transaction() as cursor:
        events = cursor.execute("SELECT COUNT(*) AS n FROM audit_v2_events").fetchone()["n"]
    assert events > 20

    services.projector._analyze(audit, coarse=True)
    coarse = position_histogram(services)
    services.projector._analyze(audit)
    full = position_histogram(services)

    # A statistics target of 10 keeps at most 11 histogram bounds, and the default 101.
    assert len(coarse) <= 11
    assert len(full) > 11


def test_final_analyze_samples_fully(services, world, monkeypatch):
    record_history(services)
    monkeypatch.setattr(projector_module, "ANALYZE_DURING_FROM_EVENTS", 4)
    monkeypatch.setattr(projector_module, "ANALYZE_AFTER_EVENTS", 8)
    calls = []
    analyze = Projector._analyze

    def recorded(self, projection, coarse=False):
        calls.append((projection.name, coarse))
        analyze(self, projection, coarse)

    monkeypatch.setattr(Projector, "_analyze", recorded)
    audit = projection_named(services, "audit_v2")
    projector = Projector(services.ledger, services.database, [audit], batch_size=3)

    projector.catch_up()

    assert calls[:-1]
    assert all(coarse for _, coarse in calls[:-1])
    assert calls[-1] == ("audit_v2", False)


def emptied_audit_model(services) -> Projection:
    """Record a history, then empty the audit model so that a fill starts from zero."""
    record_history(services)
    projection = projection_named(services, "audit_v2")
    reset_to_zero(services, projection)
    return projection


def test_postgres_builds_indexes_on_several_connections(services, world, monkeypatch):
    if services.database.dialect != "postgresql":
        pytest.skip("SQLite has one writer, so it builds indexes one after another.")
    projection = emptied_audit_model(services)
    builders: set[str] = set()
    real_connect = psycopg.connect

    def watched_connect(*args, **kwargs):
        builders.add(threading.current_thread().name)
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(psycopg, "connect", watched_connect)

    filler(services, projection, defer_from=1).catch_up()

    assert len(builders) == INDEX_BUILDERS
    assert all(name.startswith("index-builder") for name in builders)
    assert projection.query_indexes <= index_names(services, projection.tables)


def test_failed_index_build_is_raised(services, world, monkeypatch):
    if services.database.dialect != "postgresql":
        pytest.skip("Only PostgreSQL builds indexes on connections of their own.")
    projection = emptied_audit_model(services)
    broken = [*projection.query_index_statements, "CREATE INDEX broken ON no_such_table (x)"]
    monkeypatch.setattr(type(projection), "query_index_statements", broken)

    with pytest.raises(Exception, match="no_such_table"):
        filler(services, projection, defer_from=1).catch_up()


class SlowIndexes(Projection):
    """A read model with two query-only indexes, one of which takes 2 s to build."""

    name = "slow_indexes_v1"
    create_statements = (
        "CREATE TABLE IF NOT EXISTS slow_indexes_v1_rows (n INTEGER)",
        "CREATE INDEX IF NOT EXISTS slow_indexes_v1_plain ON slow_indexes_v1_rows (n)",
        "CREATE INDEX IF NOT EXISTS slow_indexes_v1_sleepy"
        " ON slow_indexes_v1_rows (slow_indexes_v1_sleep(n))",
    )
    query_indexes = frozenset(("slow_indexes_v1_plain", "slow_indexes_v1_sleepy"))


def test_index_builds_outlast_idle_timeout(settings, monkeypatch):
    # The transaction holding the model's lock sits idle during the builds.
    if settings.backend != "postgresql":
        pytest.skip("Only PostgreSQL builds indexes on connections of their own.")
    monkeypatch.setattr(projections.postgres, "IDLE_IN_TRANSACTION_TIMEOUT_MS", 500)
    services = Services(settings, create_tables=True)
    try:
        with services.database.transaction(write=True) as cursor:
            cursor.execute(
                "CREATE FUNCTION slow_indexes_v1_sleep(n integer) RETURNS integer IMMUTABLE"
                " LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(2); RETURN n; END $$")
        projection = SlowIndexes()
        projector = Projector(services.ledger, services.database, [projection],
                              defer_indexes_from=1)
        projector.create_tables()
        with services.database.transaction(write=True) as cursor:
            # The row goes in without the slow index, whose upkeep would sleep too.
            cursor.execute("DROP INDEX slow_indexes_v1_sleepy")
            cursor.execute("INSERT INTO slow_indexes_v1_rows (n) VALUES (1)")
        services.ledger.create_team(build_world(services).org, "slow", None, CAUSE)

        projector.catch_up()

        assert projection.query_indexes <= index_names(services, projection.tables)
    finally:
        services.close()


def test_fill_with_pool_of_one_connection(settings):
    if settings.backend != "postgresql":
        pytest.skip("Only PostgreSQL builds indexes on connections of their own.")
    services = Services(dataclasses.replace(settings, pool_max=1, db_connect_timeout=1.0),
                        create_tables=True)
    try:
        build_world(services)
        projection = emptied_audit_model(services)

        filler(services, projection, defer_from=1).catch_up()

        assert projection.query_indexes <= index_names(services, projection.tables)
    finally:
        services.close()


def test_runner_restores_indexes_of_killed_fill(services, world):
    # A fill killed with SIGKILL leaves its query indexes dropped, and the
    # runner that takes over resumes past position zero.
    record_history(services)
    projection = projection_named(services, "audit_v2")
    every_index = index_names(services, projection.tables)
    reset_to_zero(services, projection)
    filler(services, projection, defer_from=1).apply_batch(projection, services.projector.head())
    with services.database.transaction(write=True) as cursor:
        for name in projection.query_indexes:
            cursor.execute(f"DROP INDEX {name}")
    dropped = index_names(services, projection.tables)

    with running(services) as runner:
        wait_until(lambda: projection.name in runner.held and not runner.unchecked)
        head = services.projector.head()
        reached = wait_for_positions(services, head, timeout=10)

    assert not projection.query_indexes & dropped
    assert index_names(services, projection.tables) == every_index
    assert reached[projection.name] == head


def test_restore_builds_only_missing_indexes(services, world):
    projection = projection_named(services, "audit_v2")
    missing = sorted(projection.query_indexes)[0]
    with services.database.transaction(write=True) as cursor:
        cursor.execute(f"DROP INDEX {missing}")

    restored = services.projector.restore_query_indexes(services.projector.projections)
    again = services.projector.restore_query_indexes(services.projector.projections)

    assert restored == [missing]
    assert again == []
