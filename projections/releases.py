"""The release read model: one row per live release, its projects, commits and deploys.

`sort_key` stores the list order (dateReleased, else dateCreated, in
microseconds) so listing never computes it per query; `public_id`, the
position of the event that started the release's current lifetime, breaks
ties and makes the order total.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from functools import singledispatchmethod
from typing import Any

from eventsourcing.domain import DomainEvent

from domain.release import Release
from projections.database import Cursor, Row
from projections.issues import ISSUES
from projections.projection import PendingRows, Projection, to_json, to_micros, to_text

RELEASES = "releases_v1_releases"
RELEASE_PROJECTS = "releases_v1_projects"
COMMITS = "releases_v1_commits"
DEPLOYS = "releases_v1_deploys"
IDENTITIES = "releases_v1_identities"
RELEASE_COLUMNS = (
    "id", "public_id", "org_id", "version", "version_lower", "ref", "url", "owner_id", "status",
    "date_created", "date_started", "date_released", "sort_key", "commit_count", "last_commit",
    "authors", "deploy_count", "last_deploy",
)
COMMIT_COLUMNS = (
    "release_id", "position", "commit_id", "repository", "message", "author_name",
    "author_email", "timestamp", "patch_set",
)
DEPLOY_COLUMNS = (
    "public_id", "release_id", "environment", "name", "url", "date_started", "date_finished",
    "project_ids",
)


class ReleasesProjection(Projection):
    name = "releases_v1"
    create_statements = (
        f"CREATE TABLE IF NOT EXISTS {RELEASES} (id TEXT PRIMARY KEY,"
        " public_id BIGINT NOT NULL, org_id TEXT NOT NULL, version TEXT NOT NULL,"
        " version_lower TEXT NOT NULL, ref TEXT, url TEXT, owner_id TEXT,"
        " status TEXT NOT NULL, date_created TEXT NOT NULL, date_started TEXT,"
        " date_released TEXT, sort_key BIGINT NOT NULL, commit_count INTEGER NOT NULL,"
        " last_commit TEXT, authors TEXT NOT NULL, deploy_count INTEGER NOT NULL,"
        " last_deploy TEXT, UNIQUE (org_id, version))",
        f"CREATE INDEX IF NOT EXISTS {RELEASES}_order"
        f" ON {RELEASES} (org_id, status, sort_key, public_id)",
        f"CREATE INDEX IF NOT EXISTS {RELEASES}_prefix"
        f" ON {RELEASES} (org_id, version_lower)",
        f"CREATE TABLE IF NOT EXISTS {RELEASE_PROJECTS} (release_id TEXT NOT NULL,"
        " project_id TEXT NOT NULL, PRIMARY KEY (release_id, project_id))",
        f"CREATE INDEX IF NOT EXISTS {RELEASE_PROJECTS}_project"
        f" ON {RELEASE_PROJECTS} (project_id, release_id)",
        f"CREATE TABLE IF NOT EXISTS {COMMITS} (release_id TEXT NOT NULL,"
        " position INTEGER NOT NULL, commit_id TEXT NOT NULL, repository TEXT NOT NULL,"
        " message TEXT, author_name TEXT, author_email TEXT, timestamp TEXT,"
        " patch_set TEXT NOT NULL, PRIMARY KEY (release_id, position))",
        f"CREATE TABLE IF NOT EXISTS {DEPLOYS} (public_id BIGINT PRIMARY KEY,"
        " release_id TEXT NOT NULL, environment TEXT NOT NULL, name TEXT, url TEXT,"
        " date_started TEXT, date_finished TEXT NOT NULL, project_ids TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {DEPLOYS}_release ON {DEPLOYS} (release_id, public_id)",
        f"CREATE TABLE IF NOT EXISTS {IDENTITIES} (id TEXT PRIMARY KEY, org_id TEXT NOT NULL,"
        " version TEXT NOT NULL)",
    )

    query_indexes = frozenset((
        f"{RELEASES}_order",
        f"{RELEASES}_prefix",
        f"{RELEASE_PROJECTS}_project",
    ))

    def __init__(self) -> None:
        # Release rows started in this batch, changed in memory by the
        # batch's later events and written at its end, with their commit
        # lists. Identities, project links and deploys wait too.
        self._new_rows: dict[str, dict[str, Any]] = {}
        self._new_commits: dict[str, Sequence[dict[str, Any]]] = {}
        self._new_identities = PendingRows(IDENTITIES, ("id", "org_id", "version"))
        self._new_links = PendingRows(RELEASE_PROJECTS, ("release_id", "project_id"))
        self._new_deploys = PendingRows(DEPLOYS, DEPLOY_COLUMNS)

    def begin_batch(self) -> None:
        self._new_rows.clear()
        self._new_commits.clear()
        for pending in (self._new_identities, self._new_links, self._new_deploys):
            pending.clear()

    def end_batch(self, cursor: Cursor) -> None:
        if self._new_rows:
            cursor.copy_rows(RELEASES, RELEASE_COLUMNS, [
                tuple(row[column] for column in RELEASE_COLUMNS)
                for row in self._new_rows.values()
            ])
        commits = CommitRows(self._new_commits.items())
        if len(commits):
            cursor.copy_rows(COMMITS, COMMIT_COLUMNS, commits)
        for pending in (self._new_identities, self._new_links, self._new_deploys):
            pending.flush(cursor)
        self.begin_batch()

    def _change(self, cursor: Cursor, release_id: str, statement: str, **values: Any) -> None:
        """Set columns of a release row: in memory if the batch started it, else by `statement`.

        `statement` sets the columns in the order of `values` and ends
        with `WHERE id = %s`.
        """
        row = self._new_rows.get(release_id)
        if row is not None:
            row.update(values)
        else:
            cursor.execute(statement, (*values.values(), release_id))

    @singledispatchmethod
    def apply(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        """Events of other aggregates leave the release list unchanged."""

    @apply.register
    def _(self, event: Release.Created, cursor: Cursor, position: int) -> None:
        # Deleted releases lose their row, so the identity is kept apart for
        # the Recreated event, which does not repeat it.
        self._new_identities.add(str(event.originator_id), str(event.org_id), event.version_str)
        self._start(cursor, event, position, str(event.org_id), event.version_str)

    @apply.register
    def _(self, event: Release.Recreated, cursor: Cursor, position: int) -> None:
        self._new_identities.flush(cursor)
        identity = cursor.execute(
            f"SELECT org_id, version FROM {IDENTITIES} WHERE id = %s",
            (str(event.originator_id),),
        ).fetchone()
        if identity is None:
            raise LookupError(f"Release {event.originator_id} was recreated but never created.")
        self._delete(cursor, str(event.originator_id))
        self._start(cursor, event, position, identity["org_id"], identity["version"])

    @apply.register
    def _(self, event: Release.ProjectAdded, cursor: Cursor, position: int) -> None:
        release_id = str(event.originator_id)
        if release_id in self._new_rows:
            for project_id in event.project_ids:
                self._new_links.add(release_id, str(project_id))
            return
        cursor.executemany(
            f"INSERT INTO {RELEASE_PROJECTS} (release_id, project_id) VALUES (%s, %s)",
            [(str(event.originator_id), str(project_id)) for project_id in event.project_ids],
        )

    @apply.register
    def _(self, event: Release.Released, cursor: Cursor, position: int) -> None:
        self._change(
            cursor, str(event.originator_id),
            f"UPDATE {RELEASES} SET date_released = %s, sort_key = %s WHERE id = %s",
            date_released=to_text(event.date_released), sort_key=to_micros(event.date_released),
        )

    @apply.register
    def _(self, event: Release.Updated, cursor: Cursor, position: int) -> None:
        self._change(
            cursor, str(event.originator_id),
            f"UPDATE {RELEASES} SET ref = %s, url = %s, owner_id = %s, date_started = %s"
            " WHERE id = %s",
            ref=event.ref, url=event.url, owner_id=_optional_id(event.owner_id),
            date_started=to_text(event.date_started),
        )

    @apply.register
    def _(self, event: Release.CommitsSet, cursor: Cursor, position: int) -> None:
        release_id = str(event.originator_id)
        if release_id in self._new_rows:
            self._new_commits[release_id] = event.commits
        else:
            cursor.execute(f"DELETE FROM {COMMITS} WHERE release_id = %s", (release_id,))
            if event.commits:
                cursor.copy_rows(COMMITS, COMMIT_COLUMNS,
                                 CommitRows([(release_id, event.commits)]))
        self._change(
            cursor, release_id,
            f"UPDATE {RELEASES} SET commit_count = %s, last_commit = %s, authors = %s"
            " WHERE id = %s",
            commit_count=len(event.commits), last_commit=_last_commit(event.commits),
            authors=to_json(_authors(event.commits)),
        )

    @apply.register
    def _(self, event: Release.Archived, cursor: Cursor, position: int) -> None:
        self._set_status(cursor, event, "archived")

    @apply.register
    def _(self, event: Release.Restored, cursor: Cursor, position: int) -> None:
        self._set_status(cursor, event, "open")

    @apply.register
    def _(self, event: Release.DeployRecorded, cursor: Cursor, position: int) -> None:
        deploy = deploy_summary(position, event.environment, event.name, event.url,
                                event.date_started, event.date_finished)
        release_id = str(event.originator_id)
        self._new_deploys.add(
            position, release_id, event.environment, event.name, event.url,
            deploy["dateStarted"], deploy["dateFinished"],
            to_json([str(project_id) for project_id in event.project_ids]),
        )
        row = self._new_rows.get(release_id)
        if row is not None:
            row["deploy_count"] += 1
            row["last_deploy"] = to_json(deploy)
        else:
            cursor.execute(
                f"UPDATE {RELEASES} SET deploy_count = deploy_count + 1, last_deploy = %s"
                " WHERE id = %s",
                (to_json(deploy), release_id),
            )

    @apply.register
    def _(self, event: Release.Deleted, cursor: Cursor, position: int) -> None:
        self._delete(cursor, str(event.originator_id))

    def _start(
        self, cursor: Cursor, event: Any, position: int, org_id: str, version: str
    ) -> None:
        release_id = str(event.originator_id)
        self._new_rows[release_id] = dict(zip(RELEASE_COLUMNS, (
            release_id, position, org_id, version, version.lower(),
            event.ref, event.url, _optional_id(event.owner_id), "open",
            to_text(event.timestamp), to_text(event.date_started), None,
            to_micros(event.timestamp), 0, None, "[]", 0, None,
        ), strict=True))

    def _set_status(self, cursor: Cursor, event: Any, status: str) -> None:
        self._change(cursor, str(event.originator_id),
                     f"UPDATE {RELEASES} SET status = %s WHERE id = %s", status=status)

    def _delete(self, cursor: Cursor, release_id: str) -> None:
        self._new_rows.pop(release_id, None)
        self._new_commits.pop(release_id, None)
        self._new_links.flush(cursor)
        self._new_deploys.flush(cursor)
        for table in (RELEASES, RELEASE_PROJECTS, COMMITS, DEPLOYS):
            key = "id" if table == RELEASES else "release_id"
            cursor.execute(f"DELETE FROM {table} WHERE {key} = %s", (release_id,))


def _optional_id(value: Any) -> str | None:
    return None if value is None else str(value)


class CommitRows:
    """The commits table's rows for the commit lists of some releases, made while they are read.

    A commit list can hold 100,000 commits. Making each row as the
    database driver takes it keeps one row in memory instead of all of them.
    """

    def __init__(self, lists: Iterable[tuple[str, Sequence[dict[str, Any]]]]) -> None:
        self._lists = list(lists)

    def __len__(self) -> int:
        return sum(len(commits) for _, commits in self._lists)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        for release_id, commits in self._lists:
            for index, commit in enumerate(commits):
                yield (release_id, index, commit["id"], commit["repository"], commit["message"],
                       commit["author_name"], commit["author_email"], commit["timestamp"],
                       to_json(commit["patch_set"]))


def _last_commit(commits: Sequence[dict[str, Any]]) -> str | None:
    """Return the first commit of the list as JSON: deploy tools send the newest first."""
    return to_json(commits[0]) if commits else None


def _authors(commits: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    authors: dict[str, dict[str, Any]] = {}
    for commit in commits:
        email = commit["author_email"]
        if email and email.lower() not in authors:
            authors[email.lower()] = {"name": commit["author_name"], "email": email}
    return list(authors.values())


class ReleaseQueries:
    """Reads from the release read model."""

    def __init__(self, cursor: Cursor) -> None:
        self.cursor = cursor

    def get(self, org_id: str, version: str) -> Row | None:
        return self.cursor.execute(
            f"SELECT * FROM {RELEASES} WHERE org_id = %s AND version = %s", (org_id, version)
        ).fetchone()

    def get_linked(self, org_id: str, version: str) -> tuple[Row | None, list[str]]:
        """Return a release and the ids of its projects, in one round trip."""
        return split_links(self.cursor.execute(
            f"SELECT r.*, p.project_id AS {LINKED_COLUMN} FROM {RELEASES} r"
            f" LEFT JOIN {RELEASE_PROJECTS} p ON p.release_id = r.id"
            " WHERE r.org_id = %s AND r.version = %s",
            (org_id, version),
        ).fetchall())

    def links_and_new_issues(
        self, release_ids: Sequence[str]
    ) -> tuple[dict[str, list[str]], dict[str, dict[str, int]]]:
        """Return each release's project ids and its new issue counts, in one round trip.

        A release's counts are its live issues first seen in it, per
        project, read from the issue read model in the same transaction.
        """
        if not release_ids:
            return {}, {}
        test, values = self.cursor.any_of(release_ids)
        rows = self.cursor.execute(
            f"SELECT 0 AS counted, release_id, project_id, 0 AS issues FROM {RELEASE_PROJECTS}"
            f" WHERE release_id {test}"
            " UNION ALL"
            f" SELECT 1, first_release_id, project_id, COUNT(*) FROM {ISSUES}"
            f" WHERE first_release_id {test} AND live = %s"
            " GROUP BY first_release_id, project_id",
            (*values, *values, True),
        ).fetchall()
        return split_links_and_counts(release_ids, rows)

    def project_ids(self, release_ids: Sequence[str]) -> dict[str, list[str]]:
        linked: dict[str, list[str]] = {release_id: [] for release_id in release_ids}
        if not release_ids:
            return linked
        test, values = self.cursor.any_of(release_ids)
        rows = self.cursor.execute(
            f"SELECT release_id, project_id FROM {RELEASE_PROJECTS} WHERE release_id {test}",
            values,
        ).fetchall()
        for row in rows:
            linked[row["release_id"]].append(row["project_id"])
        return linked

    def page(
        self,
        org_id: str,
        project_ids: Sequence[str] | None,
        status: str,
        prefix: str | None,
        after: tuple[int, int] | None,
        before: tuple[int, int] | None,
        limit: int,
    ) -> list[Row]:
        """Return up to `limit` releases in list order, after or before a keyset cursor.

        `project_ids` of None means every project of the organization. With
        `before`, rows are returned in list order all the same.
        """
        conditions = ["r.org_id = %s", "r.status = %s"]
        params: list[Any] = [org_id, status]
        if project_ids is not None:
            if not project_ids:
                return []
            test, values = self.cursor.any_of(project_ids)
            conditions.append(
                f"EXISTS (SELECT 1 FROM {RELEASE_PROJECTS} p WHERE p.release_id = r.id"
                f" AND p.project_id {test})"
            )
            params.extend(values)
        return page_in_list_order(self.cursor, RELEASES, conditions, params, prefix,
                                  after, before, limit)

    def commits(self, release_id: str, after: int, limit: int) -> list[Row]:
        return self.cursor.execute(
            f"SELECT * FROM {COMMITS} WHERE release_id = %s AND position > %s"
            " ORDER BY position LIMIT %s",
            (release_id, after, limit),
        ).fetchall()

    def previous_with_commits(self, release: Row, project_ids: Sequence[str]) -> Row | None:
        """Return the latest release with commits listed before `release`, or None.

        It must share one of `project_ids`, and the order is the release
        list's: release date, else creation date, then public id.
        """
        if not project_ids:
            return None
        test, values = self.cursor.any_of(project_ids)
        return self.cursor.execute(
            f"SELECT r.* FROM {RELEASES} r WHERE r.org_id = %s AND r.commit_count > 0"
            " AND r.id <> %s AND (r.sort_key < %s OR (r.sort_key = %s AND r.public_id < %s))"
            f" AND EXISTS (SELECT 1 FROM {RELEASE_PROJECTS} p WHERE p.release_id = r.id"
            f" AND p.project_id {test})"
            " ORDER BY r.sort_key DESC, r.public_id DESC LIMIT 1",
            (release["org_id"], release["id"], release["sort_key"], release["sort_key"],
             release["public_id"], *values),
        ).fetchone()

    def deploys(self, release_id: str) -> list[Row]:
        """Return the release's deploys, the latest `dateFinished` first."""
        return self.cursor.execute(
            f"SELECT * FROM {DEPLOYS} WHERE release_id = %s"
            " ORDER BY date_finished DESC, public_id DESC",
            (release_id,),
        ).fetchall()


# The column that carries a linked project's id beside the release's own columns.
LINKED_COLUMN = "linked__project_id"


def split_links(rows: Sequence[Row]) -> tuple[Row | None, list[str]]:
    """Split the rows of a release joined with its project links into the release and the ids."""
    if not rows:
        return None, []
    release = {key: value for key, value in rows[0].items() if key != LINKED_COLUMN}
    return release, [row[LINKED_COLUMN] for row in rows if row[LINKED_COLUMN] is not None]


def page_in_list_order(
    cursor: Cursor,
    table: str,
    conditions: list[str],
    params: list[Any],
    prefix: str | None,
    after: tuple[int, int] | None,
    before: tuple[int, int] | None,
    limit: int,
) -> list[Row]:
    """Read up to `limit` releases `r` of `table` that meet `conditions`, in list order.

    The list is newest first by (sort_key, public_id); `prefix` narrows it
    to versions that start with it, and `after` or `before` is a keyset
    cursor. Rows come in list order either way.
    """
    if prefix:
        conditions = [*conditions, "r.version_lower LIKE %s ESCAPE '!'"]
        params = [*params, _like_prefix(prefix.lower())]
    order = "DESC"
    # The first, redundant bound on sort_key lets the list-order index seek
    # to the cursor. Without it a page deep in the list scanned every
    # release before the cursor (160 ms at 10,000 releases deep).
    if after is not None:
        conditions = [*conditions, "r.sort_key <= %s AND (r.sort_key < %s"
                      " OR (r.sort_key = %s AND r.public_id < %s))"]
        params = [*params, after[0], after[0], after[0], after[1]]
    elif before is not None:
        conditions = [*conditions, "r.sort_key >= %s AND (r.sort_key > %s"
                      " OR (r.sort_key = %s AND r.public_id > %s))"]
        params = [*params, before[0], before[0], before[0], before[1]]
        order = "ASC"
    rows = cursor.execute(
        f"SELECT r.* FROM {table} r WHERE {' AND '.join(conditions)}"
        f" ORDER BY r.sort_key {order}, r.public_id {order} LIMIT %s",
        [*params, limit],
    ).fetchall()
    return rows if order == "DESC" else rows[::-1]


def split_links_and_counts(
    release_ids: Sequence[str], rows: Sequence[Row]
) -> tuple[dict[str, list[str]], dict[str, dict[str, int]]]:
    """Sort rows of links (`counted` 0) and of new issue counts (`counted` 1) by release."""
    links: dict[str, list[str]] = {release_id: [] for release_id in release_ids}
    counts: dict[str, dict[str, int]] = {release_id: {} for release_id in release_ids}
    for row in rows:
        if row["counted"]:
            counts[row["release_id"]][row["project_id"]] = int(row["issues"])
        else:
            links[row["release_id"]].append(row["project_id"])
    return links, counts


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return escaped + "%"


def deploy_summary(
    position: int,
    environment: str,
    name: str | None,
    url: str | None,
    date_started: datetime | None,
    date_finished: datetime,
) -> dict[str, Any]:
    """Return a deploy as the API shows it, from what its DeployRecorded event records."""
    return {
        "id": str(position),
        "environment": environment,
        "name": name,
        "url": url,
        "dateStarted": to_text(date_started),
        "dateFinished": to_text(date_finished),
    }
