"""The activity read model: what happened to each project, newest first.

A RELEASE item is written when a project is linked to a release that has a
release date, and for each linked project when the date is set the first
time. A DEPLOY item is written per deployed project, and a
SET_RESOLVED_IN_RELEASE item when a commit of a release resolves an issue.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEvent

from domain.cause import Cause
from domain.issue import Issue
from domain.release import Release
from projections.database import Cursor, Row
from projections.projection import PendingRows, Projection, RecentCache, to_json, to_text

ITEMS = "activity_v1_items"
RELEASES = "activity_v1_releases"
MAX_CACHED_RELEASES = 10_000


class ActivityProjection(Projection):
    name = "activity_v1"
    create_statements = (
        f"CREATE TABLE IF NOT EXISTS {ITEMS} (position BIGINT NOT NULL,"
        " project_id TEXT NOT NULL, org_id TEXT NOT NULL, type TEXT NOT NULL,"
        " version TEXT NOT NULL, data TEXT NOT NULL, actor TEXT NOT NULL,"
        " date_created TEXT NOT NULL, PRIMARY KEY (position, project_id))",
        f"CREATE INDEX IF NOT EXISTS {ITEMS}_org ON {ITEMS} (org_id, position)",
        f"CREATE TABLE IF NOT EXISTS {RELEASES} (id TEXT PRIMARY KEY, org_id TEXT NOT NULL,"
        " version TEXT NOT NULL)",
    )

    def __init__(self) -> None:
        # Organization and version of recent releases, so that an activity
        # item needs no query to find them. A release id always names the
        # same organization and version, so an entry never goes stale, even
        # when the transaction that wrote its row rolls back.
        self._releases: RecentCache[tuple[str, str]] = RecentCache(MAX_CACHED_RELEASES)
        # Items are only ever added, so a batch's items go out together at its end.
        self._new_items = PendingRows(ITEMS, (
            "position", "project_id", "org_id", "type", "version", "data", "actor",
            "date_created",
        ))

    def begin_batch(self) -> None:
        self._new_items.clear()

    def end_batch(self, cursor: Cursor) -> None:
        self._new_items.flush(cursor)

    @singledispatchmethod
    def apply(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        """Other events add no activity."""

    @apply.register
    def _(self, event: Release.Created, cursor: Cursor, position: int) -> None:
        release_id = str(event.originator_id)
        cursor.execute(
            f"INSERT INTO {RELEASES} (id, org_id, version) VALUES (%s, %s, %s)",
            (release_id, str(event.org_id), event.version_str),
        )
        self._releases.remember(release_id, (str(event.org_id), event.version_str))

    @apply.register
    def _(self, event: Release.ProjectAdded, cursor: Cursor, position: int) -> None:
        if event.date_released is not None:
            self._add(cursor, event, position, "release", event.project_ids, {})

    @apply.register
    def _(self, event: Release.Released, cursor: Cursor, position: int) -> None:
        self._add(cursor, event, position, "release", event.project_ids, {})

    @apply.register
    def _(self, event: Release.DeployRecorded, cursor: Cursor, position: int) -> None:
        data = {"environment": event.environment, "deploy": str(position)}
        self._add(cursor, event, position, "deploy", event.project_ids, data)

    @apply.register
    def _(self, event: Issue.ResolvedInRelease, cursor: Cursor, position: int) -> None:
        data = {"issue": event.short_id, "commit": event.commit_id}
        self._add(cursor, event, position, "set_resolved_in_release", [event.project_id], data,
                  release_id=event.release_id)

    def _add(
        self,
        cursor: Cursor,
        event: Any,
        position: int,
        kind: str,
        project_ids: Sequence[UUID],
        data: dict[str, Any],
        release_id: UUID | None = None,
    ) -> None:
        """Add one item per project about the release `release_id`, default the event's."""
        release_id = release_id or event.originator_id
        org_id, version = self._release(cursor, str(release_id))
        item_data = to_json({"version": version, **data})
        actor = to_json(_actor(event.cause))
        date_created = to_text(event.timestamp)
        for project_id in dict.fromkeys(project_ids):
            self._new_items.add(position, str(project_id), org_id, kind, version, item_data,
                                actor, date_created)

    def _release(self, cursor: Cursor, release_id: str) -> tuple[str, str]:
        """Return the organization id and version of a release, from the cache if there."""
        cached = self._releases.get(release_id)
        if cached is not None:
            return cached
        row = cursor.execute(
            f"SELECT org_id, version FROM {RELEASES} WHERE id = %s", (release_id,)
        ).fetchone()
        if row is None:
            raise LookupError(f"Activity for release {release_id} before its creation.")
        return self._releases.remember(release_id, (row["org_id"], row["version"]))


def _actor(cause: Cause) -> dict[str, Any]:
    return {"type": cause.actor_type, "id": cause.actor_id, "email": cause.actor_email}


class ActivityQueries:
    """Reads from the activity read model."""

    def __init__(self, cursor: Cursor) -> None:
        self.cursor = cursor

    def page(
        self,
        org_id: str,
        project_ids: Sequence[str] | None,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[Row]:
        """Return items newest first, after the keyset (position, project id)."""
        conditions = ["org_id = %s"]
        params: list[Any] = [org_id]
        if project_ids is not None:
            if not project_ids:
                return []
            conditions.append(f"project_id IN ({', '.join(['%s'] * len(project_ids))})")
            params.extend(project_ids)
        if after is not None:
            conditions.append("(position < %s OR (position = %s AND project_id < %s))")
            params.extend([after[0], after[0], after[1]])
        params.append(limit)
        return self.cursor.execute(
            f"SELECT * FROM {ITEMS} WHERE {' AND '.join(conditions)}"
            " ORDER BY position DESC, project_id DESC LIMIT %s",
            params,
        ).fetchall()
