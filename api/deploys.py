"""Deploys of a release: POST records one, GET lists them, the latest finished first."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import falcon

from api import requests, schemas
from api import response_schemas as bodies
from api.auth import RELEASE_SCOPES, OrganizationAccess, project_for_slug
from api.operations import Response, operation
from api.resource import Resource, set_position
from api.serializers import deploy_body
from api.services import Queries
from domain.errors import InvalidFieldError
from projections.database import Row
from projections.releases import deploy_summary


class DeployCollection(Resource):
    scopes = RELEASE_SCOPES

    @operation("List a release's deploys", {200: bodies.listing(bodies.DEPLOY)})
    def on_get(self, req: falcon.Request, resp: falcon.Response, org: str, version: str) -> None:
        with self.services.read("directory", "releases") as queries:
            access = self.access(queries, req, org)
            release = self.visible_release(queries, access, version)
            resp.media = [deploy_body(row) for row in queries.releases.deploys(release["id"])]

    @operation("Record a deploy of a release",
               {201: Response("Recorded", bodies.DEPLOY, headers=("X-Ledger-Position",))},
               body=schemas.DEPLOY_CREATE)
    def on_post(self, req: falcon.Request, resp: falcon.Response, org: str, version: str) -> None:
        body = req.context.body
        deploy = {
            "environment": _environment(body),
            "name": body.get("name"),
            "url": body.get("url"),
            "date_started": requests.date(body, "dateStarted"),
            "date_finished": requests.date(body, "dateFinished") or datetime.now(UTC),
        }
        slugs = body.get("projects") or []
        with self.services.read("directory", "releases") as queries:
            access = self.access(queries, req, org)
            release = self.visible_release(queries, access, version)
            project_ids = _deployed_project_ids(queries, access, release, slugs)
        outcome = self.services.ledger.record_deploy(
            UUID(access.org_id),
            version,
            deploy,
            [UUID(project_id) for project_id in project_ids],
            self.cause(req),
        )
        # The body comes from the recorded values, not from reading them back,
        # because a concurrent delete may already have removed the release.
        assert outcome.position is not None
        resp.media = deploy_summary(outcome.position, **deploy)
        resp.status = falcon.HTTP_201
        set_position(resp, outcome.position)


def _deployed_project_ids(
    queries: Queries, access: OrganizationAccess, release: Row, slugs: list[str | int]
) -> list[str]:
    """Return the ids of the projects a deploy applies to, each once.

    Without slugs these are the release's projects the caller may use; a
    slug must name such a project, or the request is invalid.
    """
    linked = queries.releases.project_ids([release["id"]])[release["id"]]
    if not slugs:
        return [project_id for project_id in linked if access.may_use(project_id)]
    project_ids = []
    for slug in slugs:
        project = project_for_slug(queries.directory, access, slug)
        if project is None or project["id"] not in linked:
            raise InvalidFieldError("projects", "Invalid project slugs")
        project_ids.append(project["id"])
    return list(dict.fromkeys(project_ids))


def _environment(body: dict) -> str:
    """Return the environment; the schema has checked its type and length."""
    environment = body["environment"]
    if "/" in environment or environment.strip() != environment:
        raise InvalidFieldError(
            "environment", "An environment cannot contain '/' or start or end with whitespace."
        )
    return environment
