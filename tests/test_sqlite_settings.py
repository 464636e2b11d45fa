"""Settings of the SQLite connections that read models use."""

from __future__ import annotations

from projections.sqlite import WAL_CHECKPOINT_PAGES, SQLiteDatabase


def test_read_model_connections_checkpoint_less_often(tmp_path):
    database = SQLiteDatabase(str(tmp_path / "ledger.sqlite3"))
    try:
        with database.transaction() as cursor:
            journal = cursor.execute("PRAGMA journal_mode").fetchone()
            checkpoint = cursor.execute("PRAGMA wal_autocheckpoint").fetchone()
    finally:
        database.close()

    assert list(journal.values()) == ["wal"]
    assert list(checkpoint.values()) == [WAL_CHECKPOINT_PAGES]
    assert WAL_CHECKPOINT_PAGES > 1000
