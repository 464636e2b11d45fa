"""The issue read model: live issues, their first releases, and where commits resolved them.

A deleted issue keeps its row with `live` false, because Recreated does
not repeat the organization and short id. `public_id` is the position of
the event that started the issue's current lifetime.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEvent

from domain.issue import Issue
from domain.release import Release
from projections.database import Cursor, Row
from projections.projection import Projection, events_of, to_text

ISSUES = "issues_v1_issues"
RESOLUTIONS = "issues_v1_resolutions"


class IssuesProjection(Projection):
    name = "issues_v1"
    create_statements = (
        f"CREATE TABLE IF NOT EXISTS {ISSUES} (id TEXT PRIMARY KEY,"
        " public_id BIGINT NOT NULL, org_id TEXT NOT NULL, project_id TEXT NOT NULL,"
        " short_id TEXT NOT NULL, title TEXT NOT NULL, status TEXT NOT NULL,"
        " first_release TEXT, first_release_id TEXT, live BOOLEAN NOT NULL,"
        " date_created TEXT NOT NULL, UNIQUE (org_id, short_id))",
        f"CREATE INDEX IF NOT EXISTS {ISSUES}_project ON {ISSUES} (project_id, public_id)",
        f"CREATE INDEX IF NOT EXISTS {ISSUES}_first_release"
        f" ON {ISSUES} (first_release_id, project_id)",
        f"CREATE TABLE IF NOT EXISTS {RESOLUTIONS} (release_id TEXT NOT NULL,"
        " issue_id TEXT NOT NULL, position BIGINT NOT NULL, commit_id TEXT NOT NULL,"
        " date_resolved TEXT NOT NULL, PRIMARY KEY (release_id, issue_id))",
        f"CREATE INDEX IF NOT EXISTS {RESOLUTIONS}_issue ON {RESOLUTIONS} (issue_id)",
    )
    ignored_events = tuple(event for event in events_of(Release) if event is not Release.Deleted)

    @singledispatchmethod
    def apply(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        """Other events leave the issues unchanged."""

    @apply.register
    def _(self, event: Issue.Created, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"INSERT INTO {ISSUES} (id, public_id, org_id, project_id, short_id, title, status,"
            " first_release, first_release_id, live, date_created)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (str(event.originator_id), position, str(event.org_id), str(event.project_id),
             event.short_id, event.title, "unresolved", event.first_release,
             _release_id(event.org_id, event.first_release), True, to_text(event.timestamp)),
        )

    @apply.register
    def _(self, event: Issue.Recreated, cursor: Cursor, position: int) -> None:
        issue_id = str(event.originator_id)
        row = cursor.execute(f"SELECT org_id FROM {ISSUES} WHERE id = %s", (issue_id,)).fetchone()
        if row is None:
            raise LookupError(f"Issue {issue_id} was recreated but never created.")
        cursor.execute(
            f"UPDATE {ISSUES} SET public_id = %s, project_id = %s, title = %s, status = %s,"
            " first_release = %s, first_release_id = %s, live = %s, date_created = %s"
            " WHERE id = %s",
            (position, str(event.project_id), event.title, "unresolved", event.first_release,
             _release_id(UUID(row["org_id"]), event.first_release), True,
             to_text(event.timestamp), issue_id),
        )

    @apply.register
    def _(self, event: Issue.StatusChanged, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"UPDATE {ISSUES} SET status = %s WHERE id = %s",
            (event.status, str(event.originator_id)),
        )

    @apply.register
    def _(self, event: Issue.ResolvedInRelease, cursor: Cursor, position: int) -> None:
        issue_id = str(event.originator_id)
        cursor.execute(
            f"UPDATE {ISSUES} SET status = %s WHERE id = %s", ("resolved", issue_id)
        )
        # An issue reopened and resolved again in the same release keeps one
        # row there, with the latest resolution.
        cursor.execute(
            f"INSERT INTO {RESOLUTIONS} (release_id, issue_id, position, commit_id,"
            " date_resolved) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (release_id, issue_id) DO UPDATE SET position = excluded.position,"
            " commit_id = excluded.commit_id, date_resolved = excluded.date_resolved",
            (str(event.release_id), issue_id, position, event.commit_id,
             to_text(event.timestamp)),
        )

    @apply.register
    def _(self, event: Issue.Deleted, cursor: Cursor, position: int) -> None:
        issue_id = str(event.originator_id)
        cursor.execute(f"UPDATE {ISSUES} SET live = %s WHERE id = %s", (False, issue_id))
        cursor.execute(f"DELETE FROM {RESOLUTIONS} WHERE issue_id = %s", (issue_id,))

    @apply.register
    def _(self, event: Release.Deleted, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"DELETE FROM {RESOLUTIONS} WHERE release_id = %s", (str(event.originator_id),)
        )


def _release_id(org_id: UUID, version: str | None) -> str | None:
    return None if version is None else str(Release.create_id(org_id, version))


class IssueQueries:
    """Reads from the issue read model."""

    def __init__(self, cursor: Cursor) -> None:
        self.cursor = cursor

    def get(self, org_id: str, short_id: str) -> Row | None:
        return self.cursor.execute(
            f"SELECT * FROM {ISSUES} WHERE org_id = %s AND short_id = %s AND live = %s",
            (org_id, short_id.upper(), True),
        ).fetchone()

    def page(self, project_id: str, before: int | None, limit: int) -> list[Row]:
        """Return the project's live issues, newest first, older than public id `before`."""
        conditions = ["project_id = %s", "live = %s"]
        params: list[Any] = [project_id, True]
        if before is not None:
            conditions.append("public_id < %s")
            params.append(before)
        params.append(limit)
        return self.cursor.execute(
            f"SELECT * FROM {ISSUES} WHERE {' AND '.join(conditions)}"
            " ORDER BY public_id DESC LIMIT %s",
            params,
        ).fetchall()

    def resolved(
        self, release_id: str, project_ids: Sequence[str] | None, after: int, limit: int
    ) -> list[Row]:
        """Return live issues resolved in a release, in resolution order, after a position.

        `project_ids` of None means every project. Each row is the issue
        with the resolution's `position` and `commit_id`.
        """
        conditions = ["r.release_id = %s", "r.position > %s", "i.live = %s"]
        params: list[Any] = [release_id, after, True]
        if project_ids is not None:
            if not project_ids:
                return []
            conditions.append(f"i.project_id IN ({', '.join(['%s'] * len(project_ids))})")
            params.extend(project_ids)
        params.append(limit)
        return self.cursor.execute(
            f"SELECT i.*, r.position, r.commit_id FROM {RESOLUTIONS} r"
            f" JOIN {ISSUES} i ON i.id = r.issue_id WHERE {' AND '.join(conditions)}"
            " ORDER BY r.position LIMIT %s",
            params,
        ).fetchall()
