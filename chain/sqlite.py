"""The SQLite application recorder that keeps the hash chain.

Select it with APPLICATION_RECORDER_TOPIC=chain.sqlite:ChainedSQLiteApplicationRecorder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

from chain.links import CHAIN_TABLE, Link, RecordedEvent, link_row, originator_text
from chain.persistence import ChainRecorder

LINK_COLUMNS = "position, previous_position, originator_id, originator_version, hash"


class ChainedSQLiteApplicationRecorder(SQLiteApplicationRecorder, ChainRecorder):
    """Records events and their links in one transaction.

    SQLite's event table has no explicit position column: the position is
    the rowid, which the library reads back after each insert.
    """

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {CHAIN_TABLE} (position INTEGER PRIMARY KEY,"
            " previous_position INTEGER NOT NULL, originator_id TEXT NOT NULL,"
            " originator_version INTEGER NOT NULL, hash TEXT NOT NULL,"
            " UNIQUE (originator_id, originator_version))",
        ]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # The first INSERT takes SQLite's only write lock, which the
        # transaction holds until it commits, so the head read below is the
        # head no other writer can move.
        positions = super()._insert_events(c, stored_events, **kwargs)
        if positions:
            self._append_links(c, [
                RecordedEvent(position, originator_text(event.originator_id),
                              event.originator_version, event.topic, event.state)
                for position, event in zip(positions, stored_events, strict=True)
            ])
        return positions

    def select_recorded(self, start: int, limit: int, stop: int) -> list[RecordedEvent]:
        with self.datastore.transaction(commit=False) as c:
            return self._select_recorded(c, start, stop + 1, limit)

    def select_links(self, start: int, limit: int, stop: int) -> list[Link]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT {LINK_COLUMNS} FROM {CHAIN_TABLE}"
                " WHERE position > ? AND position <= ? ORDER BY position LIMIT ?",
                (start, stop, limit),
            )
            return [_link(row) for row in c.fetchall()]

    def select_link_of(self, originator_id: str, originator_version: int) -> Link | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT {LINK_COLUMNS} FROM {CHAIN_TABLE}"
                " WHERE originator_id = ? AND originator_version = ?",
                (originator_id, originator_version),
            )
            row = c.fetchone()
        return None if row is None else _link(row)

    def select_position_of(self, originator_id: str, originator_version: int) -> int | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT rowid FROM {self.events_table_name}"
                " WHERE originator_id = ? AND originator_version = ?",
                (self._stored_originator_id(originator_id), originator_version),
            )
            row = c.fetchone()
        return None if row is None else row["rowid"]

    def max_link_position(self) -> int | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT MAX(position) FROM {CHAIN_TABLE}")
            return c.fetchone()[0]

    def chain_earlier_events(self) -> int:
        with self.datastore.transaction(commit=True) as c:
            # An empty write takes the write lock before anything is read.
            c.execute(f"DELETE FROM {CHAIN_TABLE} WHERE position < 0")
            if self._select_head(c) is not None:
                return 0
            _, count = self._link_unlinked(c, before=None)
            return count

    def _select_head(self, cursor: SQLiteCursor) -> Link | None:
        cursor.execute(
            f"SELECT {LINK_COLUMNS} FROM {CHAIN_TABLE} ORDER BY position DESC LIMIT 1"
        )
        row = cursor.fetchone()
        return None if row is None else _link(row)

    def _select_recorded(
        self, cursor: SQLiteCursor, start: int, before: int | None, limit: int
    ) -> list[RecordedEvent]:
        statement = (
            f"SELECT rowid, originator_id, originator_version, topic, state"
            f" FROM {self.events_table_name} WHERE rowid > ?"
        )
        params: list[Any] = [start]
        if before is not None:
            statement += " AND rowid < ?"
            params.append(before)
        cursor.execute(statement + " ORDER BY rowid LIMIT ?", (*params, limit))
        return [
            RecordedEvent(
                row["rowid"],
                self._originator_text(row["originator_id"]),
                row["originator_version"],
                row["topic"],
                row["state"],
            )
            for row in cursor.fetchall()
        ]

    def _originator_text(self, stored: Any) -> str:
        """Return a stored originator id as links store it, or as stored when it is malformed."""
        try:
            return originator_text(self.convert_originator_id(stored))
        except (TypeError, ValueError):
            return str(stored)

    def _insert_links(self, cursor: SQLiteCursor, links: Sequence[Link]) -> None:
        cursor.executemany(
            f"INSERT INTO {CHAIN_TABLE} ({LINK_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
            [link_row(link) for link in links],
        )

    def _stored_originator_id(self, originator_id: str) -> str:
        """Return an originator id in the form the events table stores it."""
        if self.datastore.originator_id_type != "uuid":
            return originator_id
        try:
            return UUID(originator_id).hex
        except ValueError:
            return originator_id


def _link(row: Any) -> Link:
    return Link(
        position=row["position"],
        previous_position=row["previous_position"],
        originator_id=row["originator_id"],
        originator_version=row["originator_version"],
        hash=row["hash"],
    )
