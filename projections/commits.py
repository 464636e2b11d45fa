"""The commits read model: repositories, commits, authors, changed files and head commits.

A commit is one row per (organization, repository, id) however many
releases list it. Releases link to commits by position in their list.
Authors belong to the organization and are keyed by the lower-cased
email, which is stored as first given. Rows name a repository by the
aggregate id derived from the organization and the repository name, so
a commit list recorded before its repository existed still links up.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEvent

from domain.release import Release
from domain.repository import Repository
from projections.database import Cursor, Row
from projections.projection import Projection, RecentCache, to_text
from projections.releases import RELEASE_PROJECTS, RELEASES

REPOSITORIES = "commits_v1_repositories"
RELEASE_ORGS = "commits_v1_releases"
COMMITS = "commits_v1_commits"
AUTHORS = "commits_v1_authors"
FILES = "commits_v1_files"
RELEASE_COMMITS = "commits_v1_release_commits"
HEAD_COMMITS = "commits_v1_head_commits"
RELEASE_COMMIT_COLUMNS = ("release_id", "position", "org_id", "repository_id", "commit_id")
MAX_CACHED_RELEASES = 10_000


class CommitsProjection(Projection):
    name = "commits_v1"
    create_statements = (
        f"CREATE TABLE IF NOT EXISTS {REPOSITORIES} (id TEXT PRIMARY KEY,"
        " public_id BIGINT NOT NULL, org_id TEXT NOT NULL, name TEXT NOT NULL,"
        " name_lower TEXT NOT NULL, url TEXT, provider TEXT, date_created TEXT NOT NULL,"
        " UNIQUE (org_id, name_lower))",
        f"CREATE INDEX IF NOT EXISTS {REPOSITORIES}_order ON {REPOSITORIES} (org_id, public_id)",
        f"CREATE TABLE IF NOT EXISTS {RELEASE_ORGS} (id TEXT PRIMARY KEY, org_id TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {COMMITS} (org_id TEXT NOT NULL,"
        " repository_id TEXT NOT NULL, commit_id TEXT NOT NULL, repository TEXT NOT NULL,"
        " message TEXT, author_key TEXT, timestamp TEXT, date_added TEXT NOT NULL,"
        " PRIMARY KEY (org_id, repository_id, commit_id))",
        f"CREATE TABLE IF NOT EXISTS {AUTHORS} (org_id TEXT NOT NULL, email_key TEXT NOT NULL,"
        " email TEXT NOT NULL, name TEXT, PRIMARY KEY (org_id, email_key))",
        f"CREATE TABLE IF NOT EXISTS {FILES} (org_id TEXT NOT NULL,"
        " repository_id TEXT NOT NULL, commit_id TEXT NOT NULL, path TEXT NOT NULL,"
        " type TEXT NOT NULL, PRIMARY KEY (org_id, repository_id, commit_id, path))",
        f"CREATE TABLE IF NOT EXISTS {RELEASE_COMMITS} (release_id TEXT NOT NULL,"
        " position INTEGER NOT NULL, org_id TEXT NOT NULL, repository_id TEXT NOT NULL,"
        " commit_id TEXT NOT NULL, PRIMARY KEY (release_id, position))",
        f"CREATE TABLE IF NOT EXISTS {HEAD_COMMITS} (release_id TEXT NOT NULL,"
        " repository_id TEXT NOT NULL, commit_id TEXT NOT NULL, previous_commit TEXT,"
        " PRIMARY KEY (release_id, repository_id))",
        f"CREATE INDEX IF NOT EXISTS {HEAD_COMMITS}_repository"
        f" ON {HEAD_COMMITS} (repository_id, release_id)",
    )

    def __init__(self) -> None:
        # The organization of recent releases. A release id always names
        # the same organization, so an entry never goes stale, even when
        # the transaction that wrote its row rolls back.
        self._org_ids: RecentCache[str] = RecentCache(MAX_CACHED_RELEASES)
        # Each release's commit list as the batch last set it, written at
        # its end. Setting a list deletes the rows stored before.
        self._new_lists: dict[str, list[tuple[Any, ...]]] = {}

    def begin_batch(self) -> None:
        self._new_lists.clear()

    def end_batch(self, cursor: Cursor) -> None:
        rows = [row for rows in self._new_lists.values() for row in rows]
        if rows:
            cursor.copy_rows(RELEASE_COMMITS, RELEASE_COMMIT_COLUMNS, rows)
        self._new_lists.clear()

    @singledispatchmethod
    def apply(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        """Other events leave commits and repositories unchanged."""

    @apply.register
    def _(self, event: Repository.Created, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"INSERT INTO {REPOSITORIES} (id, public_id, org_id, name, name_lower, url, provider,"
            " date_created) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (str(event.originator_id), position, str(event.org_id), event.name,
             event.name.lower(), event.url, event.provider, to_text(event.timestamp)),
        )

    @apply.register
    def _(self, event: Repository.Updated, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"UPDATE {REPOSITORIES} SET url = %s, provider = %s WHERE id = %s",
            (event.url, event.provider, str(event.originator_id)),
        )

    @apply.register
    def _(self, event: Release.Created, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"INSERT INTO {RELEASE_ORGS} (id, org_id) VALUES (%s, %s)",
            (str(event.originator_id), str(event.org_id)),
        )
        self._org_ids.remember(str(event.originator_id), str(event.org_id))

    @apply.register
    def _(self, event: Release.Recreated, cursor: Cursor, position: int) -> None:
        self._unlink(cursor, str(event.originator_id))

    @apply.register
    def _(self, event: Release.Deleted, cursor: Cursor, position: int) -> None:
        self._unlink(cursor, str(event.originator_id))

    @apply.register
    def _(self, event: Release.CommitsSet, cursor: Cursor, position: int) -> None:
        release_id = str(event.originator_id)
        org_id = self._org_id(cursor, release_id)
        repository_ids = _repository_ids(org_id, event.commits)
        _upsert_authors(cursor, org_id, event.commits)
        _upsert_commits(cursor, org_id, repository_ids, event.commits, to_text(event.timestamp))
        cursor.executemany(
            f"INSERT INTO {FILES} (org_id, repository_id, commit_id, path, type)"
            " VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (org_id, repository_id, commit_id, path) DO NOTHING",
            _file_rows(org_id, repository_ids, event.commits),
        )
        cursor.execute(f"DELETE FROM {RELEASE_COMMITS} WHERE release_id = %s", (release_id,))
        self._new_lists[release_id] = [
            (release_id, index, org_id, repository_ids[commit["repository"]], commit["id"])
            for index, commit in enumerate(event.commits)
        ]

    @apply.register
    def _(self, event: Release.HeadCommitsSet, cursor: Cursor, position: int) -> None:
        release_id = str(event.originator_id)
        org_id = self._org_id(cursor, release_id)
        repository_ids = _repository_ids(org_id, event.head_commits)
        cursor.execute(f"DELETE FROM {HEAD_COMMITS} WHERE release_id = %s", (release_id,))
        cursor.executemany(
            f"INSERT INTO {HEAD_COMMITS} (release_id, repository_id, commit_id, previous_commit)"
            " VALUES (%s, %s, %s, %s)",
            [
                (release_id, repository_ids[head["repository"]], head["commit"],
                 head["previous_commit"])
                for head in event.head_commits
            ],
        )

    def _org_id(self, cursor: Cursor, release_id: str) -> str:
        cached = self._org_ids.get(release_id)
        if cached is not None:
            return cached
        row = cursor.execute(
            f"SELECT org_id FROM {RELEASE_ORGS} WHERE id = %s", (release_id,)
        ).fetchone()
        if row is None:
            raise LookupError(f"Commits for release {release_id} before its creation.")
        return self._org_ids.remember(release_id, row["org_id"])

    def _unlink(self, cursor: Cursor, release_id: str) -> None:
        """Drop the release's commit list and head commits, but keep the commits."""
        self._new_lists.pop(release_id, None)
        for table in (RELEASE_COMMITS, HEAD_COMMITS):
            cursor.execute(f"DELETE FROM {table} WHERE release_id = %s", (release_id,))


def _repository_ids(org_id: str, items: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Map each repository name in `items` to its repository's aggregate id."""
    names = {item["repository"] for item in items}
    return {name: str(Repository.create_id(UUID(org_id), name)) for name in names}


def _author_key(commit: dict[str, Any]) -> str | None:
    email = commit["author_email"]
    return email.lower() if email else None


def _upsert_authors(cursor: Cursor, org_id: str, commits: Sequence[dict[str, Any]]) -> None:
    """Record each author once. A name given now replaces the stored one.

    Deploy tools list the newest commit first, so the first name given for
    an email in the list is the author's latest.
    """
    authors: dict[str, tuple[str, str | None]] = {}
    for commit in commits:
        key = _author_key(commit)
        if key is None:
            continue
        email, name = authors.get(key, (commit["author_email"], None))
        authors[key] = (email, name or commit["author_name"])
    cursor.executemany(
        f"INSERT INTO {AUTHORS} (org_id, email_key, email, name) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (org_id, email_key) DO UPDATE SET"
        f" name = COALESCE(excluded.name, {AUTHORS}.name)",
        [(org_id, key, email, name) for key, (email, name) in sorted(authors.items())],
    )


def _upsert_commits(
    cursor: Cursor,
    org_id: str,
    repository_ids: dict[str, str],
    commits: Sequence[dict[str, Any]],
    date_added: str | None,
) -> None:
    """Record each commit once, keeping stored fields that this list leaves empty.

    A commit listed twice gets its fields from the first listing, filled in
    from later ones.
    """
    rows: dict[tuple[str, str], list[Any]] = {}
    for commit in commits:
        key = (repository_ids[commit["repository"]], commit["id"])
        fields = [commit["message"], _author_key(commit), commit["timestamp"]]
        if key in rows:
            rows[key][4:7] = [old if old is not None else new
                              for old, new in zip(rows[key][4:7], fields, strict=True)]
        else:
            rows[key] = [org_id, *key, commit["repository"], *fields, date_added]
    cursor.executemany(
        f"INSERT INTO {COMMITS} (org_id, repository_id, commit_id, repository, message,"
        " author_key, timestamp, date_added) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (org_id, repository_id, commit_id) DO UPDATE SET"
        f" message = COALESCE(excluded.message, {COMMITS}.message),"
        f" author_key = COALESCE(excluded.author_key, {COMMITS}.author_key),"
        f" timestamp = COALESCE(excluded.timestamp, {COMMITS}.timestamp)",
        list(rows.values()),
    )


def _file_rows(
    org_id: str, repository_ids: dict[str, str], commits: Sequence[dict[str, Any]]
) -> list[tuple[str, ...]]:
    """Return one row per changed file of each commit, each (commit, path) once."""
    rows: dict[tuple[str, str, str], str] = {}
    for commit in commits:
        for change in commit["patch_set"]:
            key = (repository_ids[commit["repository"]], commit["id"], change["path"])
            rows.setdefault(key, change["type"])
    return [(org_id, *key, change_type) for key, change_type in rows.items()]


# One page of a release's commit links, cut before any join.
_LINKS_PAGE = (
    f"SELECT * FROM {RELEASE_COMMITS} WHERE release_id = %s AND position > %s"
    " ORDER BY position LIMIT %s"
)


class CommitQueries:
    """Reads from the commits read model."""

    def __init__(self, cursor: Cursor) -> None:
        self.cursor = cursor

    def repository(self, org_id: str, name: str) -> Row | None:
        """Return the repository `name` names, compared case-insensitively."""
        return self.cursor.execute(
            f"SELECT * FROM {REPOSITORIES} WHERE org_id = %s AND name_lower = %s",
            (org_id, name.lower()),
        ).fetchone()

    def repository_by_public_id(self, org_id: str, public_id: int) -> Row | None:
        return self.cursor.execute(
            f"SELECT * FROM {REPOSITORIES} WHERE org_id = %s AND public_id = %s",
            (org_id, public_id),
        ).fetchone()

    def repositories(self, org_id: str, after: int, limit: int) -> list[Row]:
        """Return repositories in the order they were created, after a public id."""
        return self.cursor.execute(
            f"SELECT * FROM {REPOSITORIES} WHERE org_id = %s AND public_id > %s"
            " ORDER BY public_id LIMIT %s",
            (org_id, after, limit),
        ).fetchall()

    def release_commits(self, release_id: str, after: int, limit: int) -> list[Row]:
        """Return a release's commits in list order with author and repository columns.

        The page of links is cut in a subquery first, so each page costs
        the same however long the list is.
        """
        return self.cursor.execute(
            f"SELECT l.position, l.commit_id, c.repository, c.message, c.timestamp,"
            " a.email AS author_email, a.name AS author_name,"
            " r.public_id AS repository_public_id, r.name AS repository_name,"
            " r.url AS repository_url, r.provider AS repository_provider,"
            " r.date_created AS repository_date_created"
            f" FROM ({_LINKS_PAGE}) l"
            f" JOIN {COMMITS} c ON c.org_id = l.org_id AND c.repository_id = l.repository_id"
            " AND c.commit_id = l.commit_id"
            f" LEFT JOIN {AUTHORS} a ON a.org_id = c.org_id AND a.email_key = c.author_key"
            f" LEFT JOIN {REPOSITORIES} r ON r.id = l.repository_id"
            " ORDER BY l.position",
            (release_id, after, limit),
        ).fetchall()

    def release_files(
        self, release_id: str, after: tuple[int, str] | None, limit: int
    ) -> list[Row]:
        """Return the files changed by a release's commits, by commit position, then path.

        Commits are read in windows of `limit` links, so a page never joins
        the whole list, and windows whose commits changed no file are passed
        over until the page is full or the list ends. Paths sort by code
        point, which the keyset comparison in Python matches on every backend.
        """
        rows: list[Row] = []
        position = -1
        if after is not None:
            position, path = after
            rows = [row for row in self._files_window(release_id, position - 1, 1)
                    if row["path"] is not None and row["path"] > path]
        while len(rows) < limit:
            window = self._files_window(release_id, position, limit)
            rows.extend(row for row in window if row["path"] is not None)
            positions = {row["position"] for row in window}
            if len(positions) < limit:
                break
            position = max(positions)
        return rows[:limit]

    def _files_window(self, release_id: str, after: int, links: int) -> list[Row]:
        """Return the files of the `links` commits after a position.

        A commit without files gives one row whose path is None.
        """
        rows = self.cursor.execute(
            "SELECT l.position, l.commit_id, f.path, f.type, c.repository, c.message,"
            " a.email AS author_email, a.name AS author_name, r.name AS repository_name"
            f" FROM ({_LINKS_PAGE}) l"
            f" JOIN {COMMITS} c ON c.org_id = l.org_id AND c.repository_id = l.repository_id"
            " AND c.commit_id = l.commit_id"
            f" LEFT JOIN {FILES} f ON f.org_id = l.org_id AND f.repository_id = l.repository_id"
            " AND f.commit_id = l.commit_id"
            f" LEFT JOIN {AUTHORS} a ON a.org_id = c.org_id AND a.email_key = c.author_key"
            f" LEFT JOIN {REPOSITORIES} r ON r.id = l.repository_id"
            " ORDER BY l.position",
            (release_id, after, links),
        ).fetchall()
        # Sorted here rather than in SQL, because database collations order
        # paths differently from the code-point comparison of the keyset.
        return sorted(rows, key=lambda row: (row["position"], row["path"] or ""))

    def commit(self, org_id: str, repository_name: str, commit_id: str) -> Row | None:
        """Return one commit with its author's current name and email."""
        repository_id = str(Repository.create_id(UUID(org_id), repository_name))
        return self.cursor.execute(
            "SELECT c.*, a.email AS author_email, a.name AS author_name"
            f" FROM {COMMITS} c"
            f" LEFT JOIN {AUTHORS} a ON a.org_id = c.org_id AND a.email_key = c.author_key"
            " WHERE c.org_id = %s AND c.repository_id = %s AND c.commit_id = %s",
            (org_id, repository_id, commit_id),
        ).fetchone()

    def commit_count(self, org_id: str) -> int:
        row = self.cursor.execute(
            f"SELECT COUNT(*) AS count FROM {COMMITS} WHERE org_id = %s", (org_id,)
        ).fetchone()
        return row["count"] if row else 0

    def authors(self, org_id: str) -> list[Row]:
        return self.cursor.execute(
            f"SELECT email, name FROM {AUTHORS} WHERE org_id = %s ORDER BY email_key",
            (org_id,),
        ).fetchall()

    def head_commits(self, release_id: str) -> list[Row]:
        return self.cursor.execute(
            f"SELECT h.commit_id, h.previous_commit, r.name AS repository_name"
            f" FROM {HEAD_COMMITS} h LEFT JOIN {REPOSITORIES} r ON r.id = h.repository_id"
            " WHERE h.release_id = %s ORDER BY r.name_lower",
            (release_id,),
        ).fetchall()

    def previous_head_commit(
        self,
        org_id: str,
        repository_id: str,
        project_ids: Sequence[str],
        before: Row | None,
    ) -> str | None:
        """Return the head commit in a repository of the latest release before `before`.

        Only releases sharing one of `project_ids` count, in the release
        list's order: release date, else creation date. Without `before`,
        every release of the organization counts.
        """
        if not project_ids:
            return None
        test, values = self.cursor.any_of(project_ids)
        conditions = [
            "h.repository_id = %s",
            "r.org_id = %s",
            (
                f"EXISTS (SELECT 1 FROM {RELEASE_PROJECTS} p WHERE p.release_id = r.id"
                f" AND p.project_id {test})"
            ),
        ]
        params: list[Any] = [repository_id, org_id, *values]
        if before is not None:
            conditions.append(
                "r.id <> %s AND (r.sort_key < %s OR (r.sort_key = %s AND r.public_id < %s))"
            )
            params.extend([before["id"], before["sort_key"], before["sort_key"],
                           before["public_id"]])
        row = self.cursor.execute(
            f"SELECT h.commit_id FROM {HEAD_COMMITS} h JOIN {RELEASES} r ON r.id = h.release_id"
            f" WHERE {' AND '.join(conditions)}"
            " ORDER BY r.sort_key DESC, r.public_id DESC LIMIT 1",
            params,
        ).fetchone()
        return row["commit_id"] if row else None
