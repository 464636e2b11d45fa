"""Direct changes to the stored ledger, bypassing the application, as an intruder makes them.

Positions are notification ids: SQLite's rowid, PostgreSQL's notification_id.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg

from api.config import Settings
from chain.links import CHAIN_TABLE, Link, RecordedEvent, link_row, next_links

POSTGRES_EVENTS = "releaseledger_events"
SQLITE_EVENTS = "stored_events"


class Tamperer:
    """Runs SQL on one ledger's tables in autocommit mode."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.postgres = settings.backend == "postgresql"
        self.events = POSTGRES_EVENTS if self.postgres else SQLITE_EVENTS
        self.position = "notification_id" if self.postgres else "rowid"

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        if self.postgres:
            postgres = self.settings.postgres
            with psycopg.connect(postgres.conninfo, autocommit=True,
                                 options=f"-c search_path={postgres.schema}") as connection:
                yield connection
        else:
            connection = sqlite3.connect(self.settings.sqlite_path, isolation_level=None)
            try:
                yield connection
            finally:
                connection.close()

    def run(self, *statements: tuple[str, Sequence[Any]]) -> None:
        with self._connect() as connection:
            for statement, params in statements:
                if not self.postgres:
                    statement = statement.replace("%s", "?")
                connection.execute(statement, tuple(params))

    def select(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._connect() as connection:
            if not self.postgres:
                statement = statement.replace("%s", "?")
            return list(connection.execute(statement, tuple(params)).fetchall())

    def event(self, position: int) -> RecordedEvent:
        (row,) = self.select(
            f"SELECT originator_id, originator_version, topic, state FROM {self.events}"
            f" WHERE {self.position} = %s", (position,)
        )
        originator_id = str(row[0]) if self.postgres else str(UUID(row[0]))
        return RecordedEvent(position, originator_id, row[1], row[2], bytes(row[3]))

    def replace_in_state(self, position: int, old: bytes, new: bytes) -> None:
        state = self.event(position).state
        assert old in state, f"{old!r} is not in the state at {position}"
        self.run((f"UPDATE {self.events} SET state = %s WHERE {self.position} = %s",
                  (state.replace(old, new), position)))

    def remove_event(self, position: int) -> None:
        self.run((f"DELETE FROM {self.events} WHERE {self.position} = %s", (position,)))

    def insert_event(self, position: int, originator_id: UUID, topic: str, state: bytes) -> None:
        stored_id = str(originator_id) if self.postgres else originator_id.hex
        self.run((
            f"INSERT INTO {self.events} ({self.position}, originator_id, originator_version,"
            " topic, state) VALUES (%s, %s, %s, %s, %s)",
            (position, stored_id, 1, topic, state),
        ))

    def move_event(self, position: int, new_position: int) -> None:
        self.run((f"UPDATE {self.events} SET {self.position} = %s WHERE {self.position} = %s",
                  (new_position, position)))

    def swap_events(self, first: int, second: int) -> None:
        update = f"UPDATE {self.events} SET {self.position} = %s WHERE {self.position} = %s"
        self.run((update, (-1, first)), (update, (first, second)), (update, (second, -1)))

    def remove_link(self, position: int) -> None:
        self.run((f"DELETE FROM {CHAIN_TABLE} WHERE position = %s", (position,)))

    def set_link_hash(self, position: int, digest: str) -> None:
        self.run((f"UPDATE {CHAIN_TABLE} SET hash = %s WHERE position = %s", (digest, position)))

    def link(self, position: int) -> Link:
        (row,) = self.select(
            f"SELECT position, previous_position, originator_id, originator_version, hash"
            f" FROM {CHAIN_TABLE} WHERE position = %s", (position,)
        )
        return Link(*row)

    def relink_from(self, position: int, head: int) -> None:
        """Recompute every link from `position` to `head`, as an intruder who read this code can."""
        previous = self.link(position - 1) if position > 1 else None
        events = [self.event(p) for p in range(position, head + 1)]
        links = next_links(previous, events)
        self.run((f"DELETE FROM {CHAIN_TABLE} WHERE position >= %s", (position,)))
        for link in links:
            self.run((f"INSERT INTO {CHAIN_TABLE} VALUES (%s, %s, %s, %s, %s)", link_row(link)))
