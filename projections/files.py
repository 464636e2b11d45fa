"""The release file read model: each live file's metadata and the blob it refers to.

`public_id` is the position of the FileAdded event. A deleted release
loses its files, so a blob that no row names any more can be removed.
"""

from __future__ import annotations

from functools import singledispatchmethod

from eventsourcing.domain import DomainEvent

from domain.release import Release
from projections.database import Cursor, Row
from projections.projection import Projection, to_json, to_text

FILES = "files_v1_files"


class FilesProjection(Projection):
    name = "files_v1"
    create_statements = (
        f"CREATE TABLE IF NOT EXISTS {FILES} (public_id BIGINT PRIMARY KEY,"
        " id TEXT NOT NULL UNIQUE, release_id TEXT NOT NULL, name TEXT NOT NULL, dist TEXT,"
        " headers TEXT NOT NULL, size BIGINT NOT NULL, sha1 TEXT NOT NULL,"
        " date_created TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {FILES}_release ON {FILES} (release_id, public_id)",
        f"CREATE INDEX IF NOT EXISTS {FILES}_sha1 ON {FILES} (sha1)",
    )

    @singledispatchmethod
    def apply(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        """Other events leave the files unchanged."""

    @apply.register
    def _(self, event: Release.FileAdded, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"INSERT INTO {FILES} (public_id, id, release_id, name, dist, headers, size, sha1,"
            " date_created) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (position, str(event.file_id), str(event.originator_id), event.name, event.dist,
             to_json(event.headers), event.size, event.sha1, to_text(event.timestamp)),
        )

    @apply.register
    def _(self, event: Release.FileUpdated, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"UPDATE {FILES} SET name = %s, dist = %s WHERE id = %s",
            (event.name, event.dist, str(event.file_id)),
        )

    @apply.register
    def _(self, event: Release.FileRemoved, cursor: Cursor, position: int) -> None:
        cursor.execute(f"DELETE FROM {FILES} WHERE id = %s", (str(event.file_id),))

    @apply.register
    def _(self, event: Release.Deleted, cursor: Cursor, position: int) -> None:
        cursor.execute(f"DELETE FROM {FILES} WHERE release_id = %s", (str(event.originator_id),))


class FileQueries:
    """Reads from the release file read model."""

    def __init__(self, cursor: Cursor) -> None:
        self.cursor = cursor

    def get(self, release_id: str, public_id: int) -> Row | None:
        return self.cursor.execute(
            f"SELECT * FROM {FILES} WHERE release_id = %s AND public_id = %s",
            (release_id, public_id),
        ).fetchone()

    def page(self, release_id: str, after: int, limit: int) -> list[Row]:
        """Return the release's files in upload order, after public id `after`."""
        return self.cursor.execute(
            f"SELECT * FROM {FILES} WHERE release_id = %s AND public_id > %s"
            " ORDER BY public_id LIMIT %s",
            (release_id, after, limit),
        ).fetchall()

    def sha1_in_use(self, sha1: str) -> bool:
        """Return whether any live file, in any release, refers to blob `sha1`."""
        row = self.cursor.execute(
            f"SELECT 1 AS used FROM {FILES} WHERE sha1 = %s LIMIT 1", (sha1,)
        ).fetchone()
        return row is not None
