"""The token check at /api/0/ and the directory endpoints Sentry also offers."""

from __future__ import annotations

import falcon

from api import response_schemas as bodies
from api import schemas
from api.auth import READ_SCOPES, OrganizationAccess, authenticate
from api.operations import Response, operation
from api.resource import Resource, set_position
from api.serializers import project_body, user_body
from domain.errors import NotFoundError, PermissionDeniedError

DIRECTORY_WRITE_SCOPES = frozenset({"org:write", "org:admin", "team:write", "team:admin",
                                    "project:write", "project:admin"})
CREATED_ORGANIZATION = Response("Created", bodies.ORGANIZATION,
                                headers=("X-Ledger-Position",))


class Index(Resource):
    """GET /api/0/: who the token belongs to and what it may do."""

    @operation("Describe the token's user and scopes", {200: bodies.INDEX}, public=True,
               errors=(401, 503),
               description="Without a token, user and auth are null; an invalid token is 401.")
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.services.read("directory") as queries:
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

    @operation("Create an organization (superusers only)", {201: CREATED_ORGANIZATION},
               body=schemas.ORGANIZATION_CREATE)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.context.body
        slug = body["slug"]
        name = body.get("name")
        with self.services.read("directory") as queries:
            caller = self.caller(queries, req)
        if not caller.is_superuser:
            raise PermissionDeniedError("Only superusers may create organizations.")
        outcome = self.services.ledger.create_organization(
            slug, name, bool(body.get("openMembership")), self.cause(req)
        )
        with self.services.read("directory") as queries:
            organization = queries.directory.organization(slug)
        resp.status = falcon.HTTP_201
        resp.media = organization_body(organization)
        set_position(resp, outcome.position)


class TeamCollection(Resource):
    """POST creates a team in an organization, for its owners and admins."""

    scopes = {"POST": DIRECTORY_WRITE_SCOPES}

    @operation("Create a team", {201: Response("Created", bodies.TEAM,
                                               headers=("X-Ledger-Position",))},
               body=schemas.TEAM_CREATE)
    def on_post(self, req: falcon.Request, resp: falcon.Response, org: str) -> None:
        body = req.context.body
        slug = body["slug"]
        name = body.get("name")
        with self.services.read("directory") as queries:
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

    @operation("Create a project owned by a team",
               {201: Response("Created", bodies.PROJECT, headers=("X-Ledger-Position",))},
               body=schemas.PROJECT_CREATE)
    def on_post(self, req: falcon.Request, resp: falcon.Response, org: str, team: str) -> None:
        body = req.context.body
        name = body.get("name")
        slug = body.get("slug") or (name or "").lower().replace(" ", "-")
        with self.services.read("directory") as queries:
            access = self.access(queries, req, org)
            check_admin(access)
        outcome = self.services.ledger.create_project(org, slug, name, [team], self.cause(req))
        with self.services.read("directory") as queries:
            project = queries.directory.project(access.org_id, slug)
        resp.status = falcon.HTTP_201
        resp.media = project_body(project)
        set_position(resp, outcome.position)


class OrganizationProjects(Resource):
    """GET lists the projects of an organization that the caller may use."""

    scopes = {"GET": READ_SCOPES | {"org:read"}}

    @operation("List the projects you may use", {200: bodies.listing(bodies.PROJECT)})
    def on_get(self, req: falcon.Request, resp: falcon.Response, org: str) -> None:
        with self.services.read("directory") as queries:
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
