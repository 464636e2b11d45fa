"""The token check at /api/0/ and the directory endpoints Sentry also offers."""

from __future__ import annotations

import falcon

from api import requests
from api.auth import READ_SCOPES, OrganizationAccess, authenticate
from api.resource import Resource, set_position
from api.serializers import project_body, user_body
from domain.errors import NotFoundError, PermissionDeniedError

DIRECTORY_WRITE_SCOPES = frozenset({"org:write", "org:admin", "team:write", "team:admin",
                                    "project:write", "project:admin"})
MAX_NAME_LENGTH = 100


class Index(Resource):
    """GET /api/0/: who the token belongs to and what it may do."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.services.read() as queries:
            caller = authenticate(queries.directory, req.get_header("Authorization"))
        if caller is None:
            resp.media = {"version": "0", "user": None, "auth": None}
            return
        resp.media = {
            "version": "0",
            "user": user_body(caller.user) if caller.user else None,
            "auth": {"scopes": sorted(caller.scopes)},
        }


class OrganizationCollection(Resource):
    """POST creates an organization; only superusers may."""

    scopes = {"POST": DIRECTORY_WRITE_SCOPES}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = requests.read_json(req, self.services.settings.max_body_bytes)
        slug = requests.required_string(body, "slug")
        name = requests.optional_string(body, "name", MAX_NAME_LENGTH)
        with self.services.read() as queries:
            caller = self.caller(queries, req)
        if not caller.is_superuser:
            raise PermissionDeniedError("Only superusers may create organizations.")
        outcome = self.services.ledger.create_organization(
            slug, name, bool(body.get("openMembership", False)), self.cause(req)
        )
        with self.services.read() as queries:
            organization = queries.directory.organization(slug)
        resp.status = falcon.HTTP_201
        resp.media = organization_body(organization)
        set_position(resp, outcome.position)


class TeamCollection(Resource):
    """POST creates a team in an organization, for its owners and admins."""

    scopes = {"POST": DIRECTORY_WRITE_SCOPES}

    def on_post(self, req: falcon.Request, resp: falcon.Response, org: str) -> None:
        body = requests.read_json(req, self.services.settings.max_body_bytes)
        slug = requests.required_string(body, "slug")
        name = requests.optional_string(body, "name", MAX_NAME_LENGTH)
        with self.services.read() as queries:
            check_admin(self.access(queries, req, org))
        outcome = self.services.ledger.create_team(org, slug, name, self.cause(req))
        resp.status = falcon.HTTP_201
        resp.media = {
            "id": str(outcome.position),
            "slug": slug,
            "name": name or slug,
        }
        set_position(resp, outcome.position)


class TeamProjectCollection(Resource):
    """POST creates a project owned by a team, for organization owners and admins."""

    scopes = {"POST": DIRECTORY_WRITE_SCOPES}

    def on_post(self, req: falcon.Request, resp: falcon.Response, org: str, team: str) -> None:
        body = requests.read_json(req, self.services.settings.max_body_bytes)
        name = requests.optional_string(body, "name", MAX_NAME_LENGTH)
        slug = requests.optional_string(body, "slug", 50) or (name or "").lower().replace(" ", "-")
        with self.services.read() as queries:
            access = self.access(queries, req, org)
            check_admin(access)
        outcome = self.services.ledger.create_project(org, slug, name, [team], self.cause(req))
        with self.services.read() as queries:
            project = queries.directory.project(access.org_id, slug)
        resp.status = falcon.HTTP_201
        resp.media = project_body(project)
        set_position(resp, outcome.position)


class OrganizationProjects(Resource):
    """GET lists the projects of an organization that the caller may use."""

    scopes = {"GET": READ_SCOPES | {"org:read"}}

    def on_get(self, req: falcon.Request, resp: falcon.Response, org: str) -> None:
        with self.services.read() as queries:
            access = self.access(queries, req, org)
            projects = queries.directory.projects(access.org_id)
        resp.media = [project_body(p) for p in projects if access.may_use(p["id"])]


def check_admin(access: OrganizationAccess) -> None:
    if not access.is_admin:
        raise PermissionDeniedError(
            "Only owners and admins of the organization and superusers may do this."
        )


def organization_body(organization: dict) -> dict:
    if organization is None:
        raise NotFoundError("Organization not found.")
    return {
        "id": str(organization["public_id"]),
        "slug": organization["slug"],
        "name": organization["name"],
        "openMembership": bool(organization["open_membership"]),
        "dateCreated": organization["date_created"],
    }
