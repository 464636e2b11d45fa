"""The directory read model: organizations, teams, projects, users, members and tokens.

Public ids are the ledger positions of the events that created each thing,
so they are integers, unique, and the same after every rebuild.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import singledispatchmethod
from uuid import UUID

from eventsourcing.domain import DomainEvent

from domain.directory import ApiToken, Member, Organization, Project, Team, User
from projections.database import Cursor, Row
from projections.projection import Projection, to_text

USERS = "directory_v1_users"
ORGANIZATIONS = "directory_v1_organizations"
TEAMS = "directory_v1_teams"
PROJECTS = "directory_v1_projects"
PROJECT_TEAMS = "directory_v1_project_teams"
MEMBERS = "directory_v1_members"
MEMBER_TEAMS = "directory_v1_member_teams"
TOKENS = "directory_v1_tokens"


class DirectoryProjection(Projection):
    name = "directory_v1"
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
    )

    @singledispatchmethod
    def apply(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        """Events of other aggregates leave the directory unchanged."""

    @apply.register
    def _(self, event: User.Created, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"INSERT INTO {USERS} (id, public_id, email, is_superuser, date_created)"
            " VALUES (%s, %s, %s, %s, %s)",
            (str(event.originator_id), position, event.email, event.is_superuser,
             to_text(event.timestamp)),
        )

    @apply.register
    def _(self, event: Organization.Created, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"INSERT INTO {ORGANIZATIONS} (id, public_id, slug, name, open_membership,"
            " date_created) VALUES (%s, %s, %s, %s, %s, %s)",
            (str(event.originator_id), position, event.slug, event.name, event.open_membership,
             to_text(event.timestamp)),
        )

    @apply.register
    def _(self, event: Team.Created, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"INSERT INTO {TEAMS} (id, public_id, org_id, slug, name, date_created)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (str(event.originator_id), position, str(event.org_id), event.slug, event.name,
             to_text(event.timestamp)),
        )

    @apply.register
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

    @apply.register
    def _(self, event: Member.Created, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"INSERT INTO {MEMBERS} (id, org_id, user_id, role) VALUES (%s, %s, %s, %s)",
            (str(event.originator_id), str(event.org_id), str(event.user_id), event.role),
        )

    @apply.register
    def _(self, event: Member.TeamJoined, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"INSERT INTO {MEMBER_TEAMS} (org_id, user_id, team_id)"
            f" SELECT org_id, user_id, %s FROM {MEMBERS} WHERE id = %s",
            (str(event.team_id), str(event.originator_id)),
        )

    @apply.register
    def _(self, event: Member.RoleChanged, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"UPDATE {MEMBERS} SET role = %s WHERE id = %s",
            (event.role, str(event.originator_id)),
        )

    @apply.register
    def _(self, event: ApiToken.Created, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"INSERT INTO {TOKENS} (id, token_hash, public_id, user_id, org_id, scopes, label,"
            " revoked, date_created) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (str(event.originator_id), event.token_hash, position, _optional_id(event.user_id),
             _optional_id(event.org_id), " ".join(event.scopes), event.label, False,
             to_text(event.timestamp)),
        )

    @apply.register
    def _(self, event: ApiToken.Revoked, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"UPDATE {TOKENS} SET revoked = %s WHERE id = %s", (True, str(event.originator_id))
        )


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
