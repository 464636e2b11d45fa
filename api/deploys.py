"""Deploys of a release: POST records one, GET lists them, the latest finished first."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import falcon

from api import requests
from api.auth import RELEASE_SCOPES, OrganizationAccess, project_for_slug
from api.resource import Resource, set_position
from api.serializers import deploy_body
from api.services import Queries
from domain.errors import InvalidFieldError
from projections.database import Row

MAX_ENVIRONMENT_LENGTH = 64
MAX_DEPLOY_NAME_LENGTH = 64


class DeployCollection(Resource):
    scopes = RELEASE_SCOPES

    def on_get(self, req: falcon.Request, resp: falcon.Response, org: str, version: str) -> None:
        with self.services.read() as queries:
            access = self.access(queries, req, org)
            release = self.visible_release(queries, access, version)
            resp.media = [deploy_body(row) for row in queries.releases.deploys(release["id"])]

    def on_post(self, req: falcon.Request, resp: falcon.Response, org: str, version: str) -> None:
        body = requests.read_json(req, self.services.settings.max_body_bytes)
        deploy = {
            "environment": _environment(body),
            "name": requests.optional_string(body, "name", MAX_DEPLOY_NAME_LENGTH),
            "url": requests.optional_string(body, "url", requests.MAX_URL_LENGTH),
            "date_started": requests.date(body, "dateStarted"),
            "date_finished": requests.date(body, "dateFinished") or datetime.now(UTC),
        }
        slugs = requests.project_slugs(body, required=False)
        with self.services.read() as queries:
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
        with self.services.read() as queries:
            resp.media = deploy_body(queries.releases.deploy(outcome.position))
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
    environment = requests.required_string(body, "environment")
    if not 1 <= len(environment) <= MAX_ENVIRONMENT_LENGTH:
        raise InvalidFieldError(
            "environment", f"Use 1 to {MAX_ENVIRONMENT_LENGTH} characters."
        )
    if "/" in environment or environment.strip() != environment:
        raise InvalidFieldError(
            "environment", "An environment cannot contain '/' or start or end with whitespace."
        )
    return environment
