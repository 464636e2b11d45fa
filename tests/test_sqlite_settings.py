"""Settings of the SQLite connections that read models use."""

from __future__ import annotations

import pytest

from projections.projector import Projector
from projections.sqlite import BULK_CHECKPOINT_PAGES, CHECKPOINT_PAGES, SQLiteDatabase
from tests.read_models import record_history


def checkpoint_pages(database: SQLiteDatabase) -> int:
    with database.transaction() as cursor:
        row = cursor.execute("PRAGMA wal_autocheckpoint").fetchone()
    return next(iter(row.values()))


def test_bulk_writes_checkpoint_less_often_until_they_end(tmp_path):
    database = SQLiteDatabase(str(tmp_path / "ledger.sqlite3"))
    try:
        before = checkpoint_pages(database)
        with database.bulk_writes():
            during = checkpoint_pages(database)
        after = checkpoint_pages(database)
    finally:
        database.close()

    assert before == CHECKPOINT_PAGES
    assert during == BULK_CHECKPOINT_PAGES
    assert after == CHECKPOINT_PAGES


@pytest.mark.parametrize(("defer_from", "bulk"), [(1, True), (10**9, False)])
def test_catch_up_bulk_writes_when_far_behind(services, world, monkeypatch, defer_from, bulk):
    record_history(services)
    entered = []
    bulk_writes = type(services.database).bulk_writes

    def recording(self):
        entered.append(True)
        return bulk_writes(self)

    monkeypatch.setattr(type(services.database), "bulk_writes", recording)
    projector = Projector(services.ledger, services.database, services.projector.projections,
                          defer_indexes_from=defer_from)
    projector.catch_up()

    assert entered == ([True] if bulk else [])
