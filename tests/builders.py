"""Test-data builders: a small organization like the ones deploy tooling talks to.

`acme` has no open membership and three projects, each owned by one team:
web (team frontend), api (team backend) and billing (team payments).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from api.services import Services
from domain.cause import Cause

CAUSE = Cause("system", "tests", None, "tests")
RELEASE_SCOPES = ("project:read", "project:write", "project:admin", "project:releases")


@dataclass
class World:
    """Slugs, emails and tokens of the directory a test runs against."""

    services: Services
    org: str = "acme"
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, who: str = "superuser") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def token(self, *, user: str | None = None, org: str | None = None,
              scopes: tuple[str, ...] = RELEASE_SCOPES) -> str:
        secret, _ = self.services.ledger.create_token(
            CAUSE, user_email=user, org_slug=org, scopes=scopes
        )
        return secret

    def user(self, *, teams: tuple[str, ...] = (), role: str = "member",
             org: str | None = None, superuser: bool = False,
             scopes: tuple[str, ...] = RELEASE_SCOPES) -> str:
        """Create a user with a unique email, make it a member, and return a token for it."""
        email = f"user-{uuid.uuid4().hex[:8]}@example.com"
        self.services.ledger.create_user(email, superuser, CAUSE)
        if not superuser:
            self.services.ledger.add_member(org or self.org, email, role, teams, CAUSE)
        return self.token(user=email, scopes=scopes)


def build_world(services: Services, org: str = "acme") -> World:
    ledger = services.ledger
    ledger.create_organization(org, "Acme", False, CAUSE)
    for team, project in (("frontend", "web"), ("backend", "api"), ("payments", "billing")):
        ledger.create_team(org, team, None, CAUSE)
        ledger.create_project(org, project, None, [team], CAUSE)
    world = World(services, org)
    world.tokens["superuser"] = world.user(superuser=True)
    world.tokens["frontend"] = world.user(teams=("frontend",))
    world.tokens["org"] = world.token(org=org, scopes=("org:ci",))
    return world


def release_body(version: str, *projects: str, **fields: Any) -> dict[str, Any]:
    return {"version": version, "projects": list(projects or ("web",)), **fields}
