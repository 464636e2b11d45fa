"""Users, organizations, teams, projects, memberships and API tokens.

Each aggregate's id derives from its natural key (an email, a slug, a
token hash), so two concurrent creations of the same thing collide in the
event store instead of producing duplicates.
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.cause import Cause

ROLES = ("member", "admin", "owner")

# Scopes follow Sentry's names, so tokens made for Sentry tooling read the same.
SCOPES = (
    "org:read",
    "org:write",
    "org:admin",
    "org:ci",
    "project:read",
    "project:write",
    "project:admin",
    "project:releases",
    "team:read",
    "team:write",
    "team:admin",
    "member:read",
    "member:write",
    "member:admin",
    "event:read",
    "event:write",
    "event:admin",
)


def ledger_uuid(kind: str, *key: str) -> UUID:
    """Derive the id of an aggregate of `kind` from its natural key."""
    return uuid5(NAMESPACE_URL, "release-ledger:" + kind + ":" + "\x00".join(key))


class User(Aggregate):
    """A person who may hold tokens and belong to organizations."""

    @staticmethod
    def create_id(email: str) -> UUID:
        return ledger_uuid("user", email.lower())

    @event("Created")
    def __init__(self, email: str, is_superuser: bool, cause: Cause) -> None:
        self.email = email
        self.is_superuser = is_superuser


class Organization(Aggregate):
    """An organization owns teams, projects and releases."""

    @staticmethod
    def create_id(slug: str) -> UUID:
        return ledger_uuid("organization", slug)

    @event("Created")
    def __init__(self, slug: str, name: str, open_membership: bool, cause: Cause) -> None:
        self.slug = slug
        self.name = name
        self.open_membership = open_membership


class Team(Aggregate):
    """A team gives its members the use of its projects."""

    @staticmethod
    def create_id(org_id: UUID, slug: str) -> UUID:
        return ledger_uuid("team", str(org_id), slug)

    @event("Created")
    def __init__(self, org_id: UUID, slug: str, name: str, cause: Cause) -> None:
        self.org_id = org_id
        self.slug = slug
        self.name = name


class Project(Aggregate):
    """A project of an organization, owned by one or more teams."""

    @staticmethod
    def create_id(org_id: UUID, slug: str) -> UUID:
        return ledger_uuid("project", str(org_id), slug)

    @event("Created")
    def __init__(
        self, org_id: UUID, slug: str, name: str, team_ids: list[UUID], cause: Cause
    ) -> None:
        self.org_id = org_id
        self.slug = slug
        self.name = name
        self.team_ids = list(team_ids)
        self.hook_token: str | None = None

    @event("HookTokenRotated")
    def rotate_hook_token(self, hook_token: str, cause: Cause) -> None:
        """Replace the secret that signs the project's release-hook URLs."""
        self.hook_token = hook_token


class Member(Aggregate):
    """A user's membership of an organization: a role and a set of teams."""

    @staticmethod
    def create_id(org_id: UUID, user_id: UUID) -> UUID:
        return ledger_uuid("member", str(org_id), str(user_id))

    @event("Created")
    def __init__(self, org_id: UUID, user_id: UUID, role: str, cause: Cause) -> None:
        self.org_id = org_id
        self.user_id = user_id
        self.role = role
        self.team_ids: list[UUID] = []

    @event("TeamJoined")
    def join_team(self, team_id: UUID, cause: Cause) -> None:
        self.team_ids.append(team_id)

    @event("RoleChanged")
    def change_role(self, role: str, cause: Cause) -> None:
        self.role = role


class ApiToken(Aggregate):
    """A bearer token, stored only as the SHA-256 hash of its secret.

    A user token acts with its user's access; an organization token acts on
    every project of its organization.
    """

    @staticmethod
    def create_id(token_hash: str) -> UUID:
        return ledger_uuid("token", token_hash)

    @event("Created")
    def __init__(
        self,
        token_hash: str,
        user_id: UUID | None,
        org_id: UUID | None,
        scopes: list[str],
        label: str,
        cause: Cause,
    ) -> None:
        self.token_hash = token_hash
        self.user_id = user_id
        self.org_id = org_id
        self.scopes = list(scopes)
        self.label = label
        self.revoked = False

    @event("Revoked")
    def revoke(self, cause: Cause) -> None:
        self.revoked = True
