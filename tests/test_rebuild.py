"""Rebuilding read models from position zero beside the live ones, on both backends."""

from __future__ import annotations

import contextlib
import threading

import pytest

from api.cli import main
from domain.application import ReleaseChanges
from projections.projector import Projector
from projections.rebuild import COPY_PREFIX, Rebuild, RebuildError, rebuild_lock_name
from projections.releases import ReleasesProjection
from tests.builders import CAUSE
from tests.read_models import (
    FailingReleases,
    all_contents,
    count_events_after,
    head,
    org_id,
    position,
    project_ids,
    projection_named,
    rebuild,
    record_history,
    table_contents,
)


def copy_tables(services) -> set[str]:
    with services.database.transaction() as cursor:
        return {t for t in services.database.table_names(cursor) if t.startswith(COPY_PREFIX)}


def test_rebuild_equals_live_read_models(services, world):
    record_history(services)
    services.projector.catch_up()
    live = all_contents(services)

    positions = [rebuild(services, p.name, batch_size=10) for p in services.projector.projections]

    assert all_contents(services) == live
    assert positions == [head(services)] * len(positions)
    assert all(position(services, p.name) == head(services)
               for p in services.projector.projections)
    assert position(services, "releases_v1:rebuild") is None
    assert copy_tables(services) == set()


def test_large_batch_rebuild_equals_live_models(services, world):
    # Large batches hold rows back and send them together (a COPY on
    # PostgreSQL from 64 rows on), where one-event batches send them one by one.
    record_history(services, releases=20)
    Projector(services.ledger, services.database, services.projector.projections,
              batch_size=1).catch_up()
    live = all_contents(services)

    for projection in services.projector.projections:
        rebuild(services, projection.name, batch_size=1000)

    assert all_contents(services) == live


def test_rebuild_reads_ledger_outside_lock(services, world, monkeypatch):
    # Only the final switch reads events under the write lock, because it
    # must catch the copy up to the head while writers wait. The thread
    # that reads the next batch ahead may read meanwhile: the holder of the
    # lock never waits for it.
    record_history(services)
    database, recorder = services.database, services.ledger.recorder
    writing, switching, reads_under_lock = [], [], []
    open_transaction, read_events = database.transaction, recorder.select_notifications

    @contextlib.contextmanager
    def tracked_transaction(**options):
        with open_transaction(**options) as cursor:
            writing.append((threading.get_ident(), options.get("write", False)))
            try:
                yield cursor
            finally:
                writing.pop()

    def tracked_read(*args, **kwargs):
        holding = any(write for ident, write in writing if ident == threading.get_ident())
        if holding and not switching:
            reads_under_lock.append(kwargs.get("start"))
        return read_events(*args, **kwargs)

    original_switch = Rebuild._switch

    def tracked_switch(self):
        switching.append(True)
        return original_switch(self)

    monkeypatch.setattr(database, "transaction", tracked_transaction)
    monkeypatch.setattr(recorder, "select_notifications", tracked_read)
    monkeypatch.setattr(Rebuild, "_switch", tracked_switch)

    rebuild(services, "audit_v2", batch_size=5)

    assert switching == [True]
    assert reads_under_lock == []
    assert position(services, "audit_v2") == head(services)


def test_rebuild_reaches_ledger_head(services, world):
    record_history(services, releases=3)

    rebuild(services, "releases_v1")

    assert position(services, "releases_v1") == head(services)
    assert position(services, "activity_v1") < head(services)
    with services.read() as queries:
        organization = queries.directory.organization("acme")
        assert queries.releases.get(organization["id"], "app@2.0")["status"] == "archived"


def test_live_model_serves_during_rebuild(services, world):
    record_history(services)
    services.projector.catch_up()
    org = org_id(services)
    [web] = project_ids(services, "web")
    seen_during_rebuild = []

    def write_and_read_once(progress):
        if seen_during_rebuild:
            return
        services.ledger.create_release(org, "during", ReleaseChanges(project_ids=[web]), CAUSE)
        with services.read() as queries:
            row = queries.releases.get(str(org), "during")
        seen_during_rebuild.append((progress.position, progress.head, row))

    rebuild(services, "releases_v1", batch_size=5, report=write_and_read_once)

    copy_position, copy_head, row = seen_during_rebuild[0]
    assert copy_position < copy_head
    assert row is not None
    with services.read() as queries:
        assert queries.releases.get(str(org), "during") is not None
    assert position(services, "releases_v1") == head(services)


def test_readers_see_whole_tables_across_switch(services, world):
    record_history(services)
    services.projector.catch_up()
    org = str(org_id(services))
    with services.read() as queries:
        expected = len(queries.releases.page(org, None, "open", None, None, None, 100))
    counts, errors = [], []
    stop = threading.Event()

    def read_until_stopped():
        while not stop.is_set():
            try:
                with services.read() as queries:
                    rows = queries.releases.page(org, None, "open", None, None, None, 100)
                    linked = queries.releases.project_ids([row["id"] for row in rows])
            except Exception as error:
                errors.append(error)
                return
            counts.append((len(rows), all(linked.values())))

    readers = [threading.Thread(target=read_until_stopped) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        rebuild(services, "releases_v1", batch_size=5)
    finally:
        stop.set()
        for reader in readers:
            reader.join()

    assert errors == []
    assert counts
    assert set(counts) == {(expected, True)}


def test_writes_during_rebuild_reach_rebuilt_model(services, world):
    record_history(services)
    services.projector.catch_up()
    org = org_id(services)
    [web] = project_ids(services, "web")
    written: list[str] = []
    written_by_batch: list[int] = []

    def write_between_batches(progress) -> None:
        # Writing from the report, between two committed batches, puts the
        # writes inside the rebuild however fast or slow the machine is.
        written_by_batch.append(len(written))
        if len(written) < 10 and not progress.done:
            version = f"concurrent-{len(written)}"
            services.ledger.create_release(org, version, ReleaseChanges(project_ids=[web]),
                                           CAUSE)
            services.projector.catch_up()
            written.append(version)

    rebuild(services, "releases_v1", batch_size=5, pause=None, report=write_between_batches)
    services.projector.catch_up()
    kept_live = table_contents(services, ReleasesProjection())
    rebuild(services, "releases_v1")

    assert written_by_batch[-1] > written_by_batch[0]
    assert table_contents(services, ReleasesProjection()) == kept_live
    with services.read() as queries:
        assert all(queries.releases.get(str(org), version) for version in written)


def test_failed_rebuild_resumes_exactly(services, world):
    record_history(services)
    services.projector.catch_up()
    live = table_contents(services, ReleasesProjection())
    fail_at = head(services) // 2

    with pytest.raises(RuntimeError, match="injected failure"):
        failing = FailingReleases(fail_at)
        Rebuild(services.ledger, services.database, failing, batch_size=7, pause=0).run()
    stopped_at = position(services, "releases_v1:rebuild")
    resumed = Rebuild(
        services.ledger, services.database, ReleasesProjection(), batch_size=7, pause=0
    )
    resumed.run()

    assert 0 < stopped_at < fail_at
    assert (fail_at - 1 - stopped_at) < 7
    assert resumed._applied == count_events_after(services, stopped_at)
    assert table_contents(services, ReleasesProjection()) == live


def test_interrupted_rebuild_resumes_exactly(services, world):
    record_history(services)
    services.projector.catch_up()
    live = table_contents(services, ReleasesProjection())
    batches = []

    def stop_after_three_batches(progress):
        batches.append(progress.position)
        if len(batches) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rebuild(services, "releases_v1", batch_size=6, report=stop_after_three_batches)
    resumed = Rebuild(
        services.ledger, services.database, ReleasesProjection(), batch_size=6, pause=0
    )
    resumed.run()

    assert batches == [6, 12, 18]
    assert resumed._applied == count_events_after(services, 18)
    assert table_contents(services, ReleasesProjection()) == live


def test_restart_discards_interrupted_copy(services, world):
    record_history(services, releases=4)
    services.projector.catch_up()
    live = table_contents(services, ReleasesProjection())
    with pytest.raises(RuntimeError):
        Rebuild(
            services.ledger, services.database, FailingReleases(10), batch_size=3, pause=0
        ).run()

    restarted = Rebuild(
        services.ledger, services.database, ReleasesProjection(), batch_size=3, pause=0
    )
    restarted.run(restart=True)

    assert restarted._applied == count_events_after(services, 0)
    assert table_contents(services, ReleasesProjection()) == live


def test_second_rebuild_of_same_model_is_rejected(services, world):
    projection = projection_named(services, "releases_v1")

    lock = services.database.session_lock(rebuild_lock_name("releases_v1"))
    with lock as acquired, pytest.raises(RebuildError, match="already running"):
        Rebuild(services.ledger, services.database, projection).run()

    assert acquired


def test_rebuild_command_rebuilds_and_reports(services, world, settings, monkeypatch, capsys):
    record_history(services, releases=3)
    monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url)

    code = main(["projections", "rebuild", "releases_v1", "--batch-size", "4"])

    output = capsys.readouterr()
    assert code == 0
    assert f"it is live at position {head(services)}" in output.out
    assert "rebuild releases_v1: position 4 of" in output.err
    assert f"rebuild releases_v1: live at position {head(services):,}" in output.err
    assert position(services, "releases_v1") == head(services)


def test_rebuild_command_rejects_unknown_read_model(settings, services, monkeypatch, capsys):
    monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url)

    code = main(["projections", "rebuild", "nothing_v1"])

    assert code == 1
    assert "'nothing_v1' is not registered" in capsys.readouterr().err


def test_rebuild_command_rejects_batch_size_zero(settings, services, monkeypatch, capsys):
    monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url)

    code = main(["projections", "rebuild", "releases_v1", "--batch-size", "0"])

    assert code == 1
    assert "Invalid batch size 0" in capsys.readouterr().err
