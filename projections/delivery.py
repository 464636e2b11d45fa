"""The delivery metrics read model: deploys, lead time for changes, and time to release.

Everything here derives from events the ledger already records, so the
model is filled by replaying the ledger from position zero.

- A deploy counts once per project it names, at its `dateFinished`.
- The lead time of a commit, per project and environment, runs from the
  commit's timestamp to the first deploy to that environment, naming
  that project, of any release containing the commit. A commit is the
  pair (repository, id) within an organization; its timestamp is the
  earliest one given for it. Commits without a timestamp have no lead
  time.
- The time to release of a release runs from its creation (the time the
  ledger recorded it) to its current `dateReleased`.

Deleting a release removes its deploys, commits and release time from the
metrics, as it does from every other view. Creating the version again
starts a new lifetime. All times are stored as microseconds since the
epoch, UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import singledispatchmethod
from typing import Any

from eventsourcing.domain import DomainEvent

from domain.dates import parse_stored_datetime
from domain.release import Release
from projections.database import Cursor, Row
from projections.projection import PendingRows, Projection, to_micros

RELEASES = "delivery_v1_releases"
RELEASE_PROJECTS = "delivery_v1_release_projects"
COMMITS = "delivery_v1_commits"
DEPLOYS = "delivery_v1_deploys"
LEAD_TIMES = "delivery_v1_lead_times"
CHANGED_COMMITS = "delivery_v1_changed"


class DeliveryProjection(Projection):
    name = "delivery_v1"
    create_statements = (
        (
            f"CREATE TABLE IF NOT EXISTS {RELEASES} (id TEXT PRIMARY KEY, org_id TEXT NOT NULL,"
            " deleted BOOLEAN NOT NULL, created_at BIGINT NOT NULL, released_at BIGINT)"
        ),
        f"CREATE INDEX IF NOT EXISTS {RELEASES}_released ON {RELEASES} (org_id, released_at)",
        (
            f"CREATE TABLE IF NOT EXISTS {RELEASE_PROJECTS} (release_id TEXT NOT NULL,"
            " project_id TEXT NOT NULL, PRIMARY KEY (release_id, project_id))"
        ),
        (
            f"CREATE TABLE IF NOT EXISTS {COMMITS} (release_id TEXT NOT NULL,"
            " org_id TEXT NOT NULL, repository TEXT NOT NULL, commit_id TEXT NOT NULL,"
            " committed_at BIGINT, PRIMARY KEY (release_id, repository, commit_id))"
        ),
        (
            f"CREATE INDEX IF NOT EXISTS {COMMITS}_commit"
            f" ON {COMMITS} (org_id, repository, commit_id)"
        ),
        (
            f"CREATE TABLE IF NOT EXISTS {DEPLOYS} (position BIGINT NOT NULL,"
            " project_id TEXT NOT NULL, release_id TEXT NOT NULL, org_id TEXT NOT NULL,"
            " environment TEXT NOT NULL, finished_at BIGINT NOT NULL,"
            " PRIMARY KEY (position, project_id))"
        ),
        f"CREATE INDEX IF NOT EXISTS {DEPLOYS}_release ON {DEPLOYS} (release_id)",
        f"CREATE INDEX IF NOT EXISTS {DEPLOYS}_finished ON {DEPLOYS} (org_id, finished_at)",
        (
            f"CREATE TABLE IF NOT EXISTS {LEAD_TIMES} (org_id TEXT NOT NULL,"
            " repository TEXT NOT NULL, commit_id TEXT NOT NULL, project_id TEXT NOT NULL,"
            " environment TEXT NOT NULL, committed_at BIGINT NOT NULL,"
            " deployed_at BIGINT NOT NULL,"
            " PRIMARY KEY (org_id, repository, commit_id, project_id, environment))"
        ),
        (
            f"CREATE INDEX IF NOT EXISTS {LEAD_TIMES}_deployed"
            f" ON {LEAD_TIMES} (org_id, deployed_at)"
        ),
        # Scratch rows of the commits one batch touches, keyed by the position
        # of the event that marked them, and empty between batches. Reaching
        # them through the key skips the rows that earlier batches deleted,
        # which stay in the table as dead rows until it is vacuumed.
        (
            f"CREATE TABLE IF NOT EXISTS {CHANGED_COMMITS} (position BIGINT NOT NULL,"
            " org_id TEXT NOT NULL, repository TEXT NOT NULL, commit_id TEXT NOT NULL,"
            " PRIMARY KEY (position, org_id, repository, commit_id))"
        ),
    )

    query_indexes = frozenset((
        f"{RELEASES}_released",
        f"{DEPLOYS}_finished",
        f"{LEAD_TIMES}_deployed",
    ))

    def __init__(self) -> None:
        # The organization of each release this batch touched. It never changes.
        self._org_ids: dict[str, str] = {}
        # Releases created in this batch, with their later changes in the
        # batch, written at its end. Each would otherwise cost five statements.
        self._new: dict[str, NewRelease] = {}
        # Lead times follow from the commits and deploys as they stand, so
        # they are derived again once a batch, at its end, for every commit
        # the batch touched. Commits about to be removed are marked in the
        # scratch table as the batch goes. The commits of releases whose
        # commits or deploys changed are marked at the end.
        self._changed_releases: dict[str, None] = {}
        self._marked: tuple[int, int] | None = None
        self._new_deploys = PendingRows(DEPLOYS, (
            "position", "project_id", "release_id", "org_id", "environment", "finished_at",
        ))

    def begin_batch(self) -> None:
        self._org_ids.clear()
        self._new.clear()
        self._changed_releases.clear()
        self._marked = None
        self._new_deploys.clear()

    def end_batch(self, cursor: Cursor) -> None:
        self._write_new(cursor, list(self._new))
        self._new_deploys.flush(cursor)
        if self._marked is not None:
            first, last = self._marked
            released = list(self._changed_releases)
            if released:
                cursor.execute(
                    f"INSERT INTO {CHANGED_COMMITS} (position, org_id, repository, commit_id)"
                    f" SELECT %s, org_id, repository, commit_id FROM {COMMITS}"
                    f" WHERE release_id IN ({', '.join(['%s'] * len(released))})"
                    " ON CONFLICT DO NOTHING",
                    (last, *released),
                )
            self._recompute_lead_times(cursor, first, last)
        self.begin_batch()

    def _write_new(self, cursor: Cursor, release_ids: Sequence[str]) -> None:
        """Write releases created in this batch, with their projects and commits."""
        releases, links, commits = [], [], []
        for release_id in release_ids:
            new = self._new.pop(release_id)
            releases.append((release_id, new.org_id, False, new.created_at, new.released_at))
            links.extend((release_id, project_id) for project_id in new.project_ids)
            commits.extend(
                (release_id, new.org_id, repository, commit_id, committed_at)
                for (repository, commit_id), committed_at in new.commits.items()
            )
        for table, columns, rows in (
            (RELEASES, ("id", "org_id", "deleted", "created_at", "released_at"), releases),
            (RELEASE_PROJECTS, ("release_id", "project_id"), links),
            (COMMITS, ("release_id", "org_id", "repository", "commit_id", "committed_at"),
             commits),
        ):
            if rows:
                cursor.copy_rows(table, columns, rows)

    @singledispatchmethod
    def apply(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        """Other events leave the metrics unchanged."""

    @apply.register
    def _(self, event: Release.Created, cursor: Cursor, position: int) -> None:
        release_id, org_id = str(event.originator_id), str(event.org_id)
        self._new[release_id] = NewRelease(org_id, to_micros(event.timestamp))
        self._org_ids[release_id] = org_id

    @apply.register
    def _(self, event: Release.Recreated, cursor: Cursor, position: int) -> None:
        release_id = str(event.originator_id)
        self._remove_lifetime(cursor, release_id, position)
        cursor.execute(
            f"UPDATE {RELEASES} SET deleted = %s, created_at = %s, released_at = %s"
            " WHERE id = %s",
            (False, to_micros(event.timestamp), None, release_id),
        )

    @apply.register
    def _(self, event: Release.Deleted, cursor: Cursor, position: int) -> None:
        release_id = str(event.originator_id)
        self._remove_lifetime(cursor, release_id, position)
        cursor.execute(
            f"UPDATE {RELEASES} SET deleted = %s, released_at = %s WHERE id = %s",
            (True, None, release_id),
        )

    @apply.register
    def _(self, event: Release.ProjectAdded, cursor: Cursor, position: int) -> None:
        new = self._new.get(str(event.originator_id))
        if new is not None:
            new.project_ids.update(dict.fromkeys(str(p) for p in event.project_ids))
            return
        cursor.executemany(
            f"INSERT INTO {RELEASE_PROJECTS} (release_id, project_id) VALUES (%s, %s)",
            [(str(event.originator_id), str(project_id)) for project_id in event.project_ids],
        )

    @apply.register
    def _(self, event: Release.Released, cursor: Cursor, position: int) -> None:
        new = self._new.get(str(event.originator_id))
        if new is not None:
            new.released_at = to_micros(event.date_released)
            return
        cursor.execute(
            f"UPDATE {RELEASES} SET released_at = %s WHERE id = %s",
            (to_micros(event.date_released), str(event.originator_id)),
        )

    @apply.register
    def _(self, event: Release.CommitsSet, cursor: Cursor, position: int) -> None:
        release_id = str(event.originator_id)
        new = self._new.get(release_id)
        if new is not None:
            # Commits replaced before the batch ends never reached the table,
            # so no lead time was derived from them.
            new.commits = _commit_times(event.commits)
            self._note_changed(release_id, position)
            return
        org_id = self._org_id(cursor, release_id)
        self._mark_changed(cursor, release_id, position)
        cursor.execute(f"DELETE FROM {COMMITS} WHERE release_id = %s", (release_id,))
        cursor.executemany(
            f"INSERT INTO {COMMITS} (release_id, org_id, repository, commit_id, committed_at)"
            " VALUES (%s, %s, %s, %s, %s)",
            [(release_id, org_id, repository, commit_id, committed_at)
             for (repository, commit_id), committed_at in _commit_times(event.commits).items()],
        )
        self._note_changed(release_id, position)

    @apply.register
    def _(self, event: Release.DeployRecorded, cursor: Cursor, position: int) -> None:
        release_id = str(event.originator_id)
        org_id = self._org_id(cursor, release_id)
        finished_at = to_micros(event.date_finished)
        for project_id in dict.fromkeys(event.project_ids):
            self._new_deploys.add(position, str(project_id), release_id, org_id,
                                  event.environment, finished_at)
        self._note_changed(release_id, position)

    def _org_id(self, cursor: Cursor, release_id: str) -> str:
        org_id = self._org_ids.get(release_id)
        if org_id is not None:
            return org_id
        row = cursor.execute(
            f"SELECT org_id FROM {RELEASES} WHERE id = %s", (release_id,)
        ).fetchone()
        if row is None:
            raise LookupError(f"Release {release_id} changed before its creation.")
        self._org_ids[release_id] = row["org_id"]
        return row["org_id"]

    def _remove_lifetime(self, cursor: Cursor, release_id: str, position: int) -> None:
        """Remove the commits, deploys and projects of the release's ending lifetime."""
        if release_id in self._new:
            self._write_new(cursor, [release_id])
        self._mark_changed(cursor, release_id, position)
        self._new_deploys.flush(cursor)
        for table in (COMMITS, DEPLOYS, RELEASE_PROJECTS):
            cursor.execute(f"DELETE FROM {table} WHERE release_id = %s", (release_id,))

    def _mark_changed(self, cursor: Cursor, release_id: str, position: int) -> None:
        """Mark the release's current commits, before they are removed, for the batch's end."""
        cursor.execute(
            f"INSERT INTO {CHANGED_COMMITS} (position, org_id, repository, commit_id)"
            f" SELECT %s, org_id, repository, commit_id FROM {COMMITS} WHERE release_id = %s"
            " ON CONFLICT DO NOTHING",
            (position, release_id),
        )
        self._note_position(position)

    def _note_changed(self, release_id: str, position: int) -> None:
        """Note a release whose commits or deploys changed, so its commits are marked at the end."""
        self._changed_releases[release_id] = None
        self._note_position(position)

    def _note_position(self, position: int) -> None:
        first = position if self._marked is None else self._marked[0]
        self._marked = (first, position)

    @staticmethod
    def _recompute_lead_times(cursor: Cursor, first: int, last: int) -> None:
        """Derive the lead times of the commits marked from `first` to `last` again."""
        changed = (f"SELECT DISTINCT org_id, repository, commit_id FROM {CHANGED_COMMITS}"
                   " WHERE position BETWEEN %s AND %s")
        cursor.execute(
            f"DELETE FROM {LEAD_TIMES} WHERE (org_id, repository, commit_id) IN ({changed})",
            (first, last),
        )
        cursor.execute(
            f"INSERT INTO {LEAD_TIMES} (org_id, repository, commit_id, project_id, environment,"
            " committed_at, deployed_at)"
            " SELECT c.org_id, c.repository, c.commit_id, d.project_id, d.environment,"
            " MIN(c.committed_at), MIN(d.finished_at)"
            f" FROM ({changed}) changed"
            f" JOIN {COMMITS} c ON c.org_id = changed.org_id"
            " AND c.repository = changed.repository AND c.commit_id = changed.commit_id"
            f" JOIN {DEPLOYS} d ON d.release_id = c.release_id"
            " WHERE c.committed_at IS NOT NULL"
            " GROUP BY c.org_id, c.repository, c.commit_id, d.project_id, d.environment",
            (first, last),
        )
        cursor.execute(f"DELETE FROM {CHANGED_COMMITS} WHERE position BETWEEN %s AND %s",
                       (first, last))


@dataclass
class NewRelease:
    """A release created in the current batch, with the changes of the batch's events so far."""

    org_id: str
    created_at: int | None
    released_at: int | None = None
    project_ids: dict[str, None] = field(default_factory=dict)
    commits: dict[tuple[str, str], int | None] = field(default_factory=dict)


def _commit_times(commits: Sequence[dict[str, Any]]) -> dict[tuple[str, str], int | None]:
    """Return each distinct (repository, id) with its earliest timestamp in microseconds."""
    times: dict[tuple[str, str], int | None] = {}
    for commit in commits:
        key = (commit["repository"], commit["id"])
        timestamp = commit.get("timestamp")
        micros = to_micros(parse_stored_datetime(timestamp)) if timestamp else None
        known = times.get(key)
        if key not in times or (micros is not None and (known is None or micros < known)):
            times[key] = micros
    return times


class DeliveryQueries:
    """Reads from the delivery metrics read model; times are microseconds since the epoch."""

    def __init__(self, cursor: Cursor) -> None:
        self.cursor = cursor

    def deploys(
        self,
        org_id: str,
        project_ids: Sequence[str],
        environments: Sequence[str] | None,
        start: int,
        end: int,
    ) -> list[Row]:
        """Return (project_id, environment, finished_at) of deploys finished in [start, end)."""
        return self._select(
            f"SELECT project_id, environment, finished_at FROM {DEPLOYS}"
            " WHERE org_id = %s AND finished_at >= %s AND finished_at < %s",
            [org_id, start, end], project_ids, environments,
        )

    def lead_times(
        self,
        org_id: str,
        project_ids: Sequence[str],
        environments: Sequence[str] | None,
        start: int,
        end: int,
    ) -> list[Row]:
        """Return the commits first deployed in [start, end), per project and environment."""
        return self._select(
            "SELECT project_id, environment, committed_at, deployed_at"
            f" FROM {LEAD_TIMES} WHERE org_id = %s AND deployed_at >= %s AND deployed_at < %s",
            [org_id, start, end], project_ids, environments,
        )

    def release_times(
        self, org_id: str, project_ids: Sequence[str], start: int, end: int
    ) -> list[Row]:
        """Return (project_id, created_at, released_at) of releases released in [start, end)."""
        if not project_ids:
            return []
        test, values = self.cursor.any_of(project_ids)
        return self.cursor.execute(
            "SELECT p.project_id, r.created_at, r.released_at"
            f" FROM {RELEASES} r JOIN {RELEASE_PROJECTS} p ON p.release_id = r.id"
            " WHERE r.org_id = %s AND NOT r.deleted"
            " AND r.released_at >= %s AND r.released_at < %s"
            f" AND p.project_id {test}",
            [org_id, start, end, *values],
        ).fetchall()

    def _select(
        self,
        statement: str,
        params: list[Any],
        project_ids: Sequence[str],
        environments: Sequence[str] | None,
    ) -> list[Row]:
        if not project_ids or environments == []:
            return []
        test, values = self.cursor.any_of(project_ids)
        statement += f" AND project_id {test}"
        params = [*params, *values]
        if environments is not None:
            statement += f" AND environment IN ({', '.join(['%s'] * len(environments))})"
            params.extend(environments)
        return self.cursor.execute(statement, params).fetchall()
