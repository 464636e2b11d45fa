"""Projector runners: one active per read model, notified of new events, failing over."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from api.projector import runner_locks, select_projections
from api.services import Services
from domain.errors import InvalidRequestError
from projections.activity import ActivityProjection
from projections.registry import all_projections
from projections.runner import Runner
from projections.status import read_model_statuses
from tests.builders import build_world
from tests.read_models import with_failing
from tests.rebuild import positions, wait_for_positions
from tests.servers import BIN, ROOT, projector

NAMES = [projection.name for projection in all_projections()]


@contextmanager
def running(services: Services, poll_interval: float = 0.1) -> Iterator[Runner]:
    """Run a runner in a thread until the block ends."""
    runner = Runner(lambda: services.projector, runner_locks(services), all_projections(),
                    runner_id=f"test-{id(services)}", poll_interval=poll_interval)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        runner.stop()
        thread.join(timeout=10)
        assert not thread.is_alive(), "The runner did not stop within 10 s."


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "Condition not met in time."
        time.sleep(0.02)


def test_runner_applies_events_without_reads(services):
    with running(services) as runner:
        wait_until(lambda: runner.held == set(NAMES))
        build_world(services)
        head = services.projector.head()

        reached = wait_for_positions(services, head, timeout=10)

    assert set(reached.values()) == {head}
    assert runner.held == set()


def test_runner_wakes_on_notification(backend, services):
    if backend == "sqlite":
        pytest.skip("SQLite has no notifications; runners poll it.")
    with running(services, poll_interval=60) as runner:
        wait_until(lambda: runner.held == set(NAMES))
        time.sleep(0.3)
        build_world(services)
        head = services.projector.head()

        wait_for_positions(services, head, timeout=5)


def test_standby_runner_takes_over(settings, services):
    standby_services = Services(settings)
    try:
        with running(services) as active:
            wait_until(lambda: active.held == set(NAMES))
            with running(standby_services) as standby:
                wait_until(lambda: standby.standing_by == set(NAMES))
                held_while_active = set(standby.held)

                active.stop()
                wait_until(lambda: standby.held == set(NAMES), timeout=5)
                build_world(services)
                head = services.projector.head()
                wait_for_positions(services, head)
    finally:
        standby_services.close()

    assert held_while_active == set()


def test_runner_reconnects_after_sessions_end(backend, settings, caplog):
    if backend == "sqlite":
        pytest.skip("SQLite has no sessions to end.")
    name = f"runner-{settings.postgres.schema}"
    own_url = f"{settings.database_url}&application_name={name}"
    own = dataclasses.replace(settings, database_url=own_url)
    services = Services(own, create_tables=True)
    caplog.set_level(logging.INFO, logger="projections.runner")
    try:
        with running(services) as runner:
            wait_until(lambda: runner.held == set(NAMES))

            terminate_sessions(settings, name)
            wait_until(lambda: "lost read model lock" in caplog.messages)
            wait_until(lambda: runner.held == set(NAMES))
            build_world(services)
            head = services.projector.head()
            wait_for_positions(services, head)
    finally:
        services.close()

    assert "database unavailable; projector retrying" in caplog.messages
    assert caplog.messages.count("running read model") >= 2 * len(NAMES)


def terminate_sessions(settings, application_name: str) -> int:
    """End every session named `application_name`; return how many there were."""
    with psycopg.connect(settings.postgres.conninfo, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchall()
    return len(rows)


def test_select_rejects_unknown_read_model():
    with pytest.raises(InvalidRequestError) as raised:
        select_projections(all_projections(), ["releases_v1", "nope_v1"])

    assert "nope_v1" in str(raised.value)
    assert "directory_v2" in str(raised.value)


@pytest.mark.slow
def test_projector_stops_cleanly_on_sigterm(settings, services):
    with projector(settings, "releases_v1") as process:
        process.wait_for("running read model")
        build_world(services)
        wait_until(lambda: positions(services.database)["releases_v1"]
                   == services.projector.head())

        started = time.monotonic()
        process.process.terminate()
        code = process.process.wait(timeout=15)
        elapsed = time.monotonic() - started
        stopped = process.entries("projector stopped")

    assert code == 0
    assert elapsed < 10
    assert stopped[0]["read_models"] == ["releases_v1"]
    assert positions(services.database)["directory_v2"] == 0


@pytest.mark.slow
def test_projector_fails_on_unknown_name(settings, services):
    result = subprocess.run(
        [str(BIN / "release-ledger"), "projections", "run", "nope_v1"], cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "LEDGER_DATABASE_URL": settings.database_url},
        capture_output=True, text=True, timeout=30, check=False,
    )

    assert result.returncode == 1
    assert "Unknown read model nope_v1" in result.stderr


def test_runner_first_models_batch_alone(services, world):
    first = ["directory_v2", "releases_v1"]
    calls: list[list[str]] = []

    class RecordingProjector:
        def catch_up(self, projections, before_batch):
            calls.append(sorted(projection.name for projection in projections))
            return services.projector.catch_up(projections=projections,
                                               before_batch=before_batch)

        def restore_query_indexes(self, projections):
            return services.projector.restore_query_indexes(projections)

    runner = Runner(RecordingProjector, runner_locks(services), all_projections(),
                    runner_id=f"test-first-{id(services)}", poll_interval=0.1, first=first)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    head = services.projector.head()
    try:
        wait_until(lambda: set(services.projector.positions().values()) == {head})
    finally:
        runner.stop()
        thread.join(timeout=10)

    assert calls[0] == first
    assert calls[1] == sorted(set(NAMES) - set(first))


def test_failed_model_leaves_runner_running(settings, services, world, caplog):
    projections = with_failing(ActivityProjection.name)
    failing = Services(settings, projections=projections)
    runner = Runner(lambda: failing.projector, runner_locks(failing), projections,
                    runner_id=f"test-failing-{id(services)}", poll_interval=0.1)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    head = services.projector.head()
    others = set(NAMES) - {ActivityProjection.name}
    try:
        wait_until(lambda: {name for name, position in positions(services.database).items()
                            if position == head} >= others)
        wait_until(lambda: ActivityProjection.name in runner.paused_until)
        alive = thread.is_alive()
    finally:
        runner.stop()
        thread.join(timeout=10)
        failing.close()

    states = {status.name: status.state
              for status in read_model_statuses(services.ledger, services.database,
                                                services.projector.projections)}
    assert alive
    assert states[ActivityProjection.name] == "failed"
    assert {states[name] for name in others} == {"live"}
    assert "read model failed, projector continues with the others" in caplog.text
