"""The directory read model: organizations, teams, projects, users, members and tokens.

Public ids are the ledger positions of the events that created each thing,
so they are integers, unique, and the same after every rebuild.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache, singledispatchmethod
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import DomainEvent

from domain.directory import ApiToken, Member, Organization, Project, Team, User
from domain.issue import Issue
from domain.release import Release
from projections.database import Cursor, Row
from projections.projection import Projection, RecentCache, events_of, to_text

USERS = "directory_v2_users"
ORGANIZATIONS = "directory_v2_organizations"
TEAMS = "directory_v2_teams"
PROJECTS = "directory_v2_projects"
PROJECT_TEAMS = "directory_v2_project_teams"
MEMBERS = "directory_v2_members"
MEMBER_TEAMS = "directory_v2_member_teams"
TOKENS = "directory_v2_tokens"
# One row: the ledger position of the last event that changed the directory.
CHANGES = "directory_v2_changes"
Value = TypeVar("Value")


class DirectoryProjection(Projection):
    """The directory, and the position of the last event that changed it.

    That position is the directory's version: two reads that find the
    same version read the same directory, so a result derived from it,
    such as a token's owner or a caller's membership, may be kept until
    the version changes.
    """

    name = "directory_v2"
    create_statements = (
        f"CREATE TABLE IF NOT EXISTS {USERS} (id TEXT PRIMARY KEY, public_id BIGINT NOT NULL,"
        " email TEXT NOT NULL, is_superuser BOOLEAN NOT NULL, date_created TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {ORGANIZATIONS} (id TEXT PRIMARY KEY,"
        " public_id BIGINT NOT NULL, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL,"
        " open_membership BOOLEAN NOT NULL, date_created TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {TEAMS} (id TEXT PRIMARY KEY, public_id BIGINT NOT NULL,"
        " org_id TEXT NOT NULL, slug TEXT NOT NULL, name TEXT NOT NULL,"
        " date_created TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {PROJECTS} (id TEXT PRIMARY KEY, public_id BIGINT NOT NULL,"
        " org_id TEXT NOT NULL, slug TEXT NOT NULL, name TEXT NOT NULL,"
        " date_created TEXT NOT NULL, UNIQUE (org_id, slug))",
        f"CREATE INDEX IF NOT EXISTS {PROJECTS}_public_id ON {PROJECTS} (public_id)",
        f"CREATE TABLE IF NOT EXISTS {PROJECT_TEAMS} (project_id TEXT NOT NULL,"
        " team_id TEXT NOT NULL, PRIMARY KEY (project_id, team_id))",
        f"CREATE INDEX IF NOT EXISTS {PROJECT_TEAMS}_team ON {PROJECT_TEAMS} (team_id)",
        f"CREATE TABLE IF NOT EXISTS {MEMBERS} (id TEXT PRIMARY KEY, org_id TEXT NOT NULL,"
        " user_id TEXT NOT NULL, role TEXT NOT NULL, UNIQUE (org_id, user_id))",
        f"CREATE TABLE IF NOT EXISTS {MEMBER_TEAMS} (org_id TEXT NOT NULL,"
        " user_id TEXT NOT NULL, team_id TEXT NOT NULL, PRIMARY KEY (org_id, user_id, team_id))",
        f"CREATE TABLE IF NOT EXISTS {TOKENS} (id TEXT PRIMARY KEY,"
        " token_hash TEXT NOT NULL UNIQUE,"
        " public_id BIGINT NOT NULL, user_id TEXT, org_id TEXT, scopes TEXT NOT NULL,"
        " label TEXT NOT NULL, revoked BOOLEAN NOT NULL, date_created TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {CHANGES} (id INTEGER PRIMARY KEY,"
        " position BIGINT NOT NULL)",
    )
    version_query = f"SELECT position FROM {CHANGES} WHERE id = 1"
    ignored_events = (*events_of(Release), *events_of(Issue))

    def __init__(self) -> None:
        self._changed_at: int | None = None

    def begin_batch(self) -> None:
        self._changed_at = None

    def end_batch(self, cursor: Cursor) -> None:
        if self._changed_at is not None:
            cursor.execute(
                f"INSERT INTO {CHANGES} (id, position) VALUES (1, %s)"
                " ON CONFLICT (id) DO UPDATE SET position = excluded.position",
                (self._changed_at,),
            )
        self._changed_at = None

    def apply(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        """Apply an event, noting its position if the directory has a handler for it."""
        handle = _handler(type(event))
        if handle is not _IGNORED:
            handle(self, event, cursor, position)
            self._changed_at = position

    @singledispatchmethod
    def _handle(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        """Events of other aggregates leave the directory unchanged."""

    @_handle.register
    def _(self, event: User.Created, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"INSERT INTO {USERS} (id, public_id, email, is_superuser, date_created)"
            " VALUES (%s, %s, %s, %s, %s)",
            (str(event.originator_id), position, event.email, event.is_superuser,
             to_text(event.timestamp)),
        )

    @_handle.register
    def _(self, event: Organization.Created, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"INSERT INTO {ORGANIZATIONS} (id, public_id, slug, name, open_membership,"
            " date_created) VALUES (%s, %s, %s, %s, %s, %s)",
            (str(event.originator_id), position, event.slug, event.name, event.open_membership,
             to_text(event.timestamp)),
        )

    @_handle.register
    def _(self, event: Team.Created, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"INSERT INTO {TEAMS} (id, public_id, org_id, slug, name, date_created)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (str(event.originator_id), position, str(event.org_id), event.slug, event.name,
             to_text(event.timestamp)),
        )

    @_handle.register
    def _(self, event: Project.Created, cursor: Cursor, position: int) -> None:
        project_id = str(event.originator_id)
        cursor.execute(
            f"INSERT INTO {PROJECTS} (id, public_id, org_id, slug, name, date_created)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (project_id, position, str(event.org_id), event.slug, event.name,
             to_text(event.timestamp)),
        )
        for team_id in event.team_ids:
            cursor.execute(
                f"INSERT INTO {PROJECT_TEAMS} (project_id, team_id) VALUES (%s, %s)",
                (project_id, str(team_id)),
            )

    @_handle.register
    def _(self, event: Member.Created, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"INSERT INTO {MEMBERS} (id, org_id, user_id, role) VALUES (%s, %s, %s, %s)",
            (str(event.originator_id), str(event.org_id), str(event.user_id), event.role),
        )

    @_handle.register
    def _(self, event: Member.TeamJoined, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"INSERT INTO {MEMBER_TEAMS} (org_id, user_id, team_id)"
            f" SELECT org_id, user_id, %s FROM {MEMBERS} WHERE id = %s",
            (str(event.team_id), str(event.originator_id)),
        )

    @_handle.register
    def _(self, event: Member.RoleChanged, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"UPDATE {MEMBERS} SET role = %s WHERE id = %s",
            (event.role, str(event.originator_id)),
        )

    @_handle.register
    def _(self, event: ApiToken.Created, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"INSERT INTO {TOKENS} (id, token_hash, public_id, user_id, org_id, scopes, label,"
            " revoked, date_created) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (str(event.originator_id), event.token_hash, position, _optional_id(event.user_id),
             _optional_id(event.org_id), " ".join(event.scopes), event.label, False,
             to_text(event.timestamp)),
        )

    @_handle.register
    def _(self, event: ApiToken.Revoked, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"UPDATE {TOKENS} SET revoked = %s WHERE id = %s", (True, str(event.originator_id))
        )


# The singledispatch registry of the directory's handlers.
_HANDLERS = DirectoryProjection.__dict__["_handle"].dispatcher
_IGNORED = _HANDLERS.dispatch(DomainEvent)


@cache
def _handler(event_class: type[DomainEvent]) -> Callable[..., None]:
    """Return the handler of an event class; `_IGNORED` for events of other aggregates."""
    return _HANDLERS.dispatch(event_class)


def _optional_id(value: UUID | None) -> str | None:
    return None if value is None else str(value)


class DirectoryQueries:
    """Reads from the directory read model."""

    def __init__(self, cursor: Cursor) -> None:
        self.cursor = cursor

    def token(self, token_hash: str) -> Row | None:
        return self.cursor.execute(
            f"SELECT * FROM {TOKENS} WHERE token_hash = %s", (token_hash,)
        ).fetchone()

    def token_and_user(self, token_hash: str) -> tuple[Row | None, Row | None]:
        """Return the token with a hash and the user it belongs to, in one round trip."""
        row = self.cursor.execute(
            f"SELECT t.*, u.id AS user__id, u.public_id AS user__public_id,"
            " u.email AS user__email, u.is_superuser AS user__is_superuser,"
            " u.date_created AS user__date_created"
            f" FROM {TOKENS} t LEFT JOIN {USERS} u ON u.id = t.user_id WHERE t.token_hash = %s",
            (token_hash,),
        ).fetchone()
        if row is None:
            return None, None
        token = {key: value for key, value in row.items() if not key.startswith("user__")}
        if row["user__id"] is None:
            return token, None
        user = {key[6:]: value for key, value in row.items() if key.startswith("user__")}
        return token, user

    def membership(self, slug: str, user_id: str) -> tuple[Row | None, Row | None, list[str]]:
        """Return an organization, the user's membership in it and the projects of their teams.

        One round trip: the organization's columns repeat on each row, one
        row per project that the user's teams own.
        """
        rows = self.cursor.execute(
            "SELECT o.*, m.role AS member__role, pt.project_id AS member__project_id"
            f" FROM {ORGANIZATIONS} o"
            f" LEFT JOIN {MEMBERS} m ON m.org_id = o.id AND m.user_id = %s"
            f" LEFT JOIN {MEMBER_TEAMS} mt ON mt.org_id = o.id AND mt.user_id = m.user_id"
            f" LEFT JOIN {PROJECT_TEAMS} pt ON pt.team_id = mt.team_id"
            " WHERE o.slug = %s",
            (user_id, slug),
        ).fetchall()
        if not rows:
            return None, None, []
        first = rows[0]
        organization = {key: value for key, value in first.items()
                        if not key.startswith("member__")}
        if first["member__role"] is None:
            return organization, None, []
        project_ids = sorted({row["member__project_id"] for row in rows
                              if row["member__project_id"] is not None})
        return organization, {"role": first["member__role"]}, project_ids

    def user(self, user_id: str) -> Row | None:
        return self.cursor.execute(f"SELECT * FROM {USERS} WHERE id = %s", (user_id,)).fetchone()

    def user_by_email(self, email: str) -> Row | None:
        return self.cursor.execute(
            f"SELECT * FROM {USERS} WHERE lower(email) = lower(%s)", (email,)
        ).fetchone()

    def users(self, user_ids: Sequence[str]) -> dict[str, Row]:
        return {row["id"]: row for row in self._select_in(USERS, "id", user_ids)}

    def organization(self, slug: str) -> Row | None:
        return self.cursor.execute(
            f"SELECT * FROM {ORGANIZATIONS} WHERE slug = %s", (slug,)
        ).fetchone()

    def member(self, org_id: str, user_id: str) -> Row | None:
        return self.cursor.execute(
            f"SELECT * FROM {MEMBERS} WHERE org_id = %s AND user_id = %s", (org_id, user_id)
        ).fetchone()

    def projects(self, org_id: str) -> list[Row]:
        return self.cursor.execute(
            f"SELECT * FROM {PROJECTS} WHERE org_id = %s ORDER BY slug", (org_id,)
        ).fetchall()

    def project(self, org_id: str, slug: str) -> Row | None:
        return self.cursor.execute(
            f"SELECT * FROM {PROJECTS} WHERE org_id = %s AND slug = %s", (org_id, slug)
        ).fetchone()

    def project_by_public_id(self, org_id: str, public_id: int) -> Row | None:
        return self.cursor.execute(
            f"SELECT * FROM {PROJECTS} WHERE org_id = %s AND public_id = %s", (org_id, public_id)
        ).fetchone()

    def project_named(self, org_id: str, name: str) -> Row | None:
        """Return the project whose slug is `name`, else the one whose public id it is."""
        public_id = int(name) if name.isascii() and name.isdigit() and len(name) <= 18 else None
        return self.cursor.execute(
            f"SELECT * FROM {PROJECTS} WHERE org_id = %s AND (slug = %s OR public_id = %s)"
            " ORDER BY slug = %s DESC LIMIT 1",
            (org_id, name, public_id, name),
        ).fetchone()

    def project_by_public_id_any(self, public_id: int) -> Row | None:
        """Return the project with this public id, whatever its organization."""
        return self.cursor.execute(
            f"SELECT * FROM {PROJECTS} WHERE public_id = %s", (public_id,)
        ).fetchone()

    def projects_by_id(self, project_ids: Sequence[str]) -> dict[str, Row]:
        return {row["id"]: row for row in self._select_in(PROJECTS, "id", project_ids)}

    def team_project_ids(self, org_id: str, user_id: str) -> list[str]:
        """Return the ids of the projects owned by the teams the user belongs to."""
        rows = self.cursor.execute(
            f"SELECT DISTINCT pt.project_id FROM {MEMBER_TEAMS} mt"
            f" JOIN {PROJECT_TEAMS} pt ON pt.team_id = mt.team_id"
            " WHERE mt.org_id = %s AND mt.user_id = %s",
            (org_id, user_id),
        ).fetchall()
        return [row["project_id"] for row in rows]

    def teams(self, org_id: str) -> list[Row]:
        return self.cursor.execute(
            f"SELECT * FROM {TEAMS} WHERE org_id = %s ORDER BY slug", (org_id,)
        ).fetchall()

    def _select_in(self, table: str, column: str, values: Sequence[str]) -> list[Row]:
        if not values:
            return []
        marks = ", ".join(["%s"] * len(values))
        return self.cursor.execute(
            f"SELECT * FROM {table} WHERE {column} IN ({marks})", tuple(values)
        ).fetchall()


class CachedDirectory(DirectoryQueries):
    """Directory reads that reuse results read at the same directory version.

    Authenticating a request reads its token and the caller's organization,
    and most requests then read a project. Those results cannot change
    while the version stays the same, so they come from `cache` when it
    contains them for this version. Cached rows are
    shared between requests, and callers do not change them. Results that
    find nothing are not kept, so guessed tokens or slugs cannot fill the
    cache.
    """

    def __init__(self, cursor: Cursor, cache: RecentCache[Any], version: object) -> None:
        super().__init__(cursor)
        self._cache = cache
        self._version = version

    def token_and_user(self, token_hash: str) -> tuple[Row | None, Row | None]:
        return self._remembered(
            f"token:{token_hash}",
            lambda: DirectoryQueries.token_and_user(self, token_hash),
            lambda found: found[0] is not None,
        )

    def membership(self, slug: str, user_id: str) -> tuple[Row | None, Row | None, list[str]]:
        return self._remembered(
            f"membership:{user_id}:{slug}",
            lambda: DirectoryQueries.membership(self, slug, user_id),
            lambda found: found[0] is not None,
        )

    def organization(self, slug: str) -> Row | None:
        return self._remembered(
            f"organization:{slug}",
            lambda: DirectoryQueries.organization(self, slug),
        )

    def project(self, org_id: str, slug: str) -> Row | None:
        return self._remembered(
            f"project:{org_id}:{slug}",
            lambda: DirectoryQueries.project(self, org_id, slug),
        )

    def project_by_public_id(self, org_id: str, public_id: int) -> Row | None:
        return self._remembered(
            f"project-id:{org_id}:{public_id}",
            lambda: DirectoryQueries.project_by_public_id(self, org_id, public_id),
        )

    def project_named(self, org_id: str, name: str) -> Row | None:
        return self._remembered(
            f"project-named:{org_id}:{name}",
            lambda: DirectoryQueries.project_named(self, org_id, name),
        )

    def projects_by_id(self, project_ids: Sequence[str]) -> dict[str, Row]:
        """Return the projects with these ids, reading only those not cached at this version."""
        found: dict[str, Row] = {}
        missing = []
        for project_id in project_ids:
            cached = self._cached(f"project-id:{project_id}")
            if cached is None:
                missing.append(project_id)
            else:
                found[project_id] = cached
        for project_id, row in DirectoryQueries.projects_by_id(self, missing).items():
            self._cache.remember(f"project-id:{project_id}", (self._version, row))
            found[project_id] = row
        return found

    def _cached(self, key: str) -> Any:
        """Return the value kept under `key` at this version, else None.

        Only values that found something are kept, so None means a miss.
        """
        cached = self._cache.get(key)
        if cached is not None and cached[0] == self._version:
            return cached[1]
        return None

    def _remembered(
        self, key: str, read: Callable[[], Value],
        keep: Callable[[Value], bool] = lambda found: found is not None,
    ) -> Value:
        cached = self._cached(key)
        if cached is not None:
            return cached
        value = read()
        if keep(value):
            self._cache.remember(key, (self._version, value))
        return value
