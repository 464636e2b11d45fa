"""`release-ledger projections list`: position, lag and state of each read model."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from api.cli import main
from projections.projector import Projector
from projections.rebuild import Rebuild
from projections.releases import ReleasesProjection
from tests.read_models import (
    FailingReleases,
    head,
    position,
    rebuild,
    record_history,
    statuses,
)


def test_caught_up_models_are_live(services, world):
    services.projector.catch_up()

    found = statuses(services)

    assert list(found) == [projection.name for projection in services.projector.projections]
    for status in found.values():
        assert status.position == head(services)
        assert status.head == head(services)
        assert status.lag_events == 0
        assert status.lag_seconds == 0.0
        assert status.state == "live"
        assert status.detail is None


def test_lag_since_oldest_pending_event(services, world):
    services.projector.catch_up()
    caught_up_at = head(services)
    record_history(services, releases=1)
    first_pending = services.ledger.recorder.select_notifications(
        start=caught_up_at, limit=1, inclusive_of_start=False
    )[0]
    recorded = services.ledger.mapper.to_domain_event(first_pending).timestamp
    now = recorded + timedelta(seconds=90)
    with services.database.transaction(write=True) as cursor:
        cursor.execute("UPDATE projection_positions SET position = %s WHERE name = %s",
                       (caught_up_at, "activity_v1"))

    status = statuses(services, now)["activity_v1"]

    assert status.position == caught_up_at
    assert status.lag_events == head(services) - caught_up_at
    assert status.lag_seconds == pytest.approx(90.0)


def test_failed_model_shows_error_until_recovery(services, world):
    record_history(services, releases=2)
    fail_at = head(services) - 1
    failing = Projector(services.ledger, services.database, [FailingReleases(fail_at)])

    with pytest.raises(RuntimeError):
        failing.catch_up()
    failed = statuses(services)["releases_v1"]
    services.projector.catch_up()
    recovered = statuses(services)["releases_v1"]

    assert failed.state == "failed"
    assert "RuntimeError: injected failure" in failed.detail
    assert f"ledger position {fail_at}" in failed.detail
    assert failed.position < fail_at
    assert recovered.state == "live"
    assert recovered.detail is None


class UnreachableReleases(ReleasesProjection):
    """The release read model, raising the error of an unreachable database on every event."""

    def __init__(self, backend: str) -> None:
        super().__init__()
        self.backend = backend

    def apply(self, event, cursor, position):
        if self.backend == "sqlite":
            raise sqlite3.OperationalError("database is locked")
        raise psycopg.OperationalError("server closed the connection unexpectedly")


def test_unreachable_database_is_not_stored_as_failure(services, world, backend):
    record_history(services, releases=1)
    unreachable = Projector(services.ledger, services.database, [UnreachableReleases(backend)])

    with pytest.raises((sqlite3.OperationalError, psycopg.OperationalError)):
        unreachable.catch_up()

    status = statuses(services)["releases_v1"]
    assert status.state == "live"
    assert status.detail is None
    assert status.lag_events > 0


def test_running_rebuild_is_listed_as_rebuilding(services, world):
    record_history(services, releases=4)
    seen = []

    rebuild(services, "releases_v1", batch_size=5,
            report=lambda progress: seen.append(statuses(services).get("releases_v1:rebuild")))

    copy = seen[0]
    assert copy.state == "rebuilding"
    assert copy.position == 5
    assert copy.lag_events == head(services) - 5
    assert "copy of releases_v1" in copy.detail
    assert "releases_v1:rebuild" not in statuses(services)


def test_interrupted_rebuild_is_listed_as_stopped(services, world):
    record_history(services, releases=4)

    def interrupt(progress):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rebuild(services, "releases_v1", batch_size=5, report=interrupt)
    copy = statuses(services)["releases_v1:rebuild"]

    assert copy.state == "stopped"
    assert copy.position == 5
    assert "projections rebuild releases_v1' to resume" in copy.detail


def test_failed_rebuild_is_listed_as_failed(services, world):
    record_history(services, releases=4)

    with pytest.raises(RuntimeError):
        Rebuild(
            services.ledger, services.database, FailingReleases(8), batch_size=5, pause=0
        ).run()
    copy = statuses(services)["releases_v1:rebuild"]

    assert copy.state == "failed"
    assert "injected failure" in copy.detail
    assert copy.position == 5
    assert statuses(services)["releases_v1"].state == "live"


def test_unregistered_models_are_stopped(services, world):
    services.projector.catch_up()
    with services.database.transaction(write=True) as cursor:
        cursor.execute("UPDATE projection_positions SET name = %s WHERE name = %s",
                       ("releases_v0", "releases_v1"))

    found = statuses(services)

    assert found["releases_v1"].state == "stopped"
    assert found["releases_v1"].position == 0
    assert "release-ledger migrate" in found["releases_v1"].detail
    assert found["releases_v0"].state == "stopped"
    assert found["releases_v0"].detail == "not registered"


def test_old_positions_table_gains_columns(services, world):
    services.projector.catch_up()
    caught_up_at = head(services)
    with services.database.transaction(write=True) as cursor:
        cursor.execute("DROP TABLE projection_positions")
        cursor.execute("CREATE TABLE projection_positions (name TEXT PRIMARY KEY,"
                       " position BIGINT NOT NULL, updated_at TEXT NOT NULL)")
        cursor.executemany(
            "INSERT INTO projection_positions VALUES (%s, %s, %s)",
            [(p.name, caught_up_at, "2024-01-01T00:00:00Z")
             for p in services.projector.projections],
        )
    record_history(services, releases=1)

    services.projector.create_tables()

    with services.database.transaction() as cursor:
        columns = services.database.column_names(cursor, "projection_positions")
    assert {"name", "position", "updated_at", "state", "error"} <= columns
    found = statuses(services)
    assert [status.position for status in found.values()] == [caught_up_at] * len(found)
    assert {status.state for status in found.values()} == {"live"}
    services.projector.catch_up()
    assert position(services, "activity_v1") == head(services)


def test_list_command_prints_table(services, world, settings, monkeypatch, capsys):
    services.projector.catch_up()
    monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url)

    code = main(["projections", "list"])

    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0].split() == ["READ", "MODEL", "POSITION", "HEAD", "LAG", "EVENTS", "LAG",
                                "SECONDS", "STATE"]
    assert lines[2].split() == ["releases_v1", str(head(services)), str(head(services)), "0",
                                "0.0", "live"]
    assert len(lines) == 1 + len(services.projector.projections)


def test_list_command_prints_json_lines(services, world, settings, monkeypatch, capsys):
    services.projector.catch_up()
    monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url)

    code = main(["projections", "list", "--json"])

    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert rows[1] == {"name": "releases_v1", "position": head(services),
                       "head": head(services), "lagEvents": 0, "lagSeconds": 0.0,
                       "state": "live", "detail": None}


def test_lag_seconds_is_zero_for_caught_up_model(services, world):
    services.projector.catch_up()

    status = statuses(services, datetime.now(UTC) + timedelta(days=1))["directory_v2"]

    assert status.lag_seconds == 0.0
