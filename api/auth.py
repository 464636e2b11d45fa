"""Bearer-token authentication and what each caller may see."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import falcon

from domain.application import hash_token
from domain.cause import Cause
from domain.errors import NotFoundError
from projections.database import Row
from projections.directory import DirectoryQueries

READ_SCOPES = frozenset(
    {"project:read", "project:write", "project:admin", "project:releases", "org:ci"}
)
WRITE_SCOPES = frozenset({"project:write", "project:admin", "project:releases", "org:ci"})
DELETE_SCOPES = frozenset({"project:admin", "project:releases"})
RELEASE_SCOPES = {"GET": READ_SCOPES, "POST": WRITE_SCOPES, "PUT": WRITE_SCOPES,
                  "DELETE": DELETE_SCOPES}
ADMIN_ROLES = ("admin", "owner")


@dataclass(frozen=True)
class Caller:
    """The holder of a valid token: a user, or an organization for organization tokens."""

    token_id: str
    scopes: frozenset[str]
    user: Row | None
    org_id: str | None

    @property
    def is_superuser(self) -> bool:
        return bool(self.user and self.user["is_superuser"])

    def cause(self, request_id: str | None) -> Cause:
        if self.user is not None:
            return Cause("user", str(self.user["public_id"]), self.user["email"], request_id)
        return Cause("token", self.token_id, None, request_id)

    def check_scopes(self, allowed: Collection[str]) -> None:
        if not self.scopes & frozenset(allowed):
            raise falcon.HTTPForbidden(
                description="This token lacks the scope for this request; it needs one of: "
                + ", ".join(sorted(allowed))
                + "."
            )


@dataclass(frozen=True)
class OrganizationAccess:
    """An organization as one caller sees it."""

    organization: Row
    project_ids: frozenset[str] | None
    role: str | None

    @property
    def org_id(self) -> str:
        return self.organization["id"]

    @property
    def slug(self) -> str:
        return self.organization["slug"]

    def may_use(self, project_id: str) -> bool:
        return self.project_ids is None or project_id in self.project_ids

    @property
    def is_admin(self) -> bool:
        return self.role in ADMIN_ROLES


def authenticate(directory: DirectoryQueries, authorization: str | None) -> Caller | None:
    """Return the caller named by an `Authorization: Bearer` header, or None without one.

    Raises 401 for a header that names no valid token. Tokens are looked up
    by their SHA-256 hash, so the secret itself is never compared or stored.
    """
    if not authorization:
        return None
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip().split("\n")[0]
    if scheme.lower() != "bearer" or not secret:
        raise falcon.HTTPUnauthorized(description="Use an 'Authorization: Bearer <token>' header.")
    token, user = directory.token_and_user(hash_token(secret))
    if token is None or token["revoked"]:
        raise falcon.HTTPUnauthorized(description="Invalid token.")
    return Caller(
        token_id=str(token["public_id"]),
        scopes=frozenset(token["scopes"].split()),
        user=user,
        org_id=token["org_id"],
    )


def organization_access(
    directory: DirectoryQueries, caller: Caller, slug: str
) -> OrganizationAccess:
    """Return the caller's view of an organization; 404 when it may not see it at all."""
    if caller.user is not None and not caller.is_superuser and caller.org_id is None:
        organization, member, team_project_ids = directory.membership(slug, caller.user["id"])
        if organization is None or member is None:
            raise NotFoundError("Organization not found.")
        if organization["open_membership"]:
            return OrganizationAccess(organization, None, member["role"])
        return OrganizationAccess(organization, frozenset(team_project_ids), member["role"])
    organization = directory.organization(slug)
    if organization is None:
        raise NotFoundError("Organization not found.")
    if caller.org_id is not None:
        if caller.org_id != organization["id"]:
            raise NotFoundError("Organization not found.")
        return OrganizationAccess(organization, None, None)
    if caller.user is None:
        raise NotFoundError("Organization not found.")
    return OrganizationAccess(organization, None, "owner")


def project_for_slug(
    directory: DirectoryQueries, access: OrganizationAccess, slug: Any
) -> Row | None:
    """Return the project a slug names, if the caller may use it.

    sentry-cli sends a slug made only of digits as a JSON number, so an
    integer is read as a slug first and as a public id second.
    """
    project = directory.project(access.org_id, str(slug))
    if project is None and isinstance(slug, int):
        project = directory.project_by_public_id(access.org_id, slug)
    if project is None or not access.may_use(project["id"]):
        return None
    return project
