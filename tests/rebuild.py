"""Compare live read models with a clean rebuild from the same ledger."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from api.services import Services
from projections.database import Database
from projections.projector import POSITIONS_TABLE, Projector
from projections.registry import all_projections
from projections.sqlite import SQLiteDatabase


def table_contents(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Return every read-model table's rows in a form both backends share."""
    contents = {}
    with database.transaction() as cursor:
        for projection in all_projections():
            for table in projection.tables:
                rows = cursor.execute(f"SELECT * FROM {table}").fetchall()
                contents[table] = sorted((_normal_row(row) for row in rows), key=repr)
    return contents


def positions(database: Database) -> dict[str, int]:
    with database.transaction() as cursor:
        rows = cursor.execute(f"SELECT name, position FROM {POSITIONS_TABLE}").fetchall()
    return {row["name"]: row["position"] for row in rows}


def rebuild(services: Services, folder: Path) -> SQLiteDatabase:
    """Replay the whole ledger into fresh read models in a new SQLite file."""
    database = SQLiteDatabase(str(folder / f"rebuild-{time.monotonic_ns()}.sqlite3"))
    projector = Projector(services.ledger, database, all_projections())
    projector.create_tables()
    projector.catch_up()
    return database


def wait_for_positions(services: Services, target: int, timeout: float = 15.0) -> dict[str, int]:
    """Wait, without catching up in this process, until every read model reaches `target`."""
    deadline = time.monotonic() + timeout
    while True:
        current = positions(services.database)
        if all(position >= target for position in current.values()):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"Read models at {current}, not at {target}, after {timeout} s.")
        time.sleep(0.05)


def _normal_row(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple((key, int(value) if isinstance(value, bool) else value)
                 for key, value in sorted(row.items()))
