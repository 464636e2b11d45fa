"""What every API resource shares: the services, authentication and visibility rules."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

import falcon

from api.auth import Caller, OrganizationAccess, authenticate, organization_access
from api.serializers import release_bodies
from api.services import Queries, Services
from domain.cause import Cause
from domain.errors import NotFoundError
from projections.database import Row

RELEASE_NOT_FOUND = "Release not found."


class Resource:
    """Base of the API's resources.

    `scopes` maps an HTTP method to the token scopes that allow it; a
    token needs one of them.
    """

    scopes: ClassVar[dict[str, Collection[str]]] = {}

    def __init__(self, services: Services) -> None:
        self.services = services

    def caller(self, queries: Queries, req: falcon.Request) -> Caller:
        caller = authenticate(queries.directory, req.get_header("Authorization"))
        if caller is None:
            raise falcon.HTTPUnauthorized(
                description="Authentication credentials were not provided."
            )
        caller.check_scopes(self.scopes.get(req.method, ()))
        req.context.caller = caller
        return caller

    def access(self, queries: Queries, req: falcon.Request, org: str) -> OrganizationAccess:
        caller = self.caller(queries, req)
        return organization_access(queries.directory, caller, org)

    def cause(self, req: falcon.Request) -> Cause:
        return req.context.caller.cause(req.context.request_id)

    def project(self, queries: Queries, access: OrganizationAccess, slug: str) -> Row:
        """Return a project the caller may use; 404 as if absent otherwise."""
        project = queries.directory.project(access.org_id, slug)
        if project is None or not access.may_use(project["id"]):
            raise NotFoundError("Project not found.")
        return project

    def visible_release(
        self,
        queries: Queries,
        access: OrganizationAccess,
        version: str,
        project: Row | None = None,
    ) -> Row:
        """Return a release sharing a project with the caller (and with `project`, if given).

        Any other release, existing or not, is reported as not found.
        """
        row, linked = queries.releases.get_linked(access.org_id, version)
        if row is None:
            raise NotFoundError(RELEASE_NOT_FOUND)
        if project is not None and project["id"] not in linked:
            raise NotFoundError(RELEASE_NOT_FOUND)
        if not any(access.may_use(project_id) for project_id in linked):
            raise NotFoundError(RELEASE_NOT_FOUND)
        return row

    def respond_with_release(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        org_id: str,
        version: str,
        position: int | None,
        status: str = falcon.HTTP_200,
        written_at: datetime | None = None,
    ) -> None:
        """Respond to a write with the release as it is now.

        A delete by another request may land between the write and this
        read. With `written_at`, the time of the write's last event, the
        response is then the release as the write left it, from the
        timeline, rather than a 404 for a write that was recorded.
        """
        with self.services.read("directory", "releases") as queries:
            row = queries.releases.get(org_id, version)
            if row is not None:
                resp.media = release_bodies([row], queries.releases, queries.directory)[0]
        if row is None:
            if written_at is None:
                raise NotFoundError(RELEASE_NOT_FOUND)
            resp.media = self._release_at(org_id, version, written_at)
        resp.status = status
        set_position(resp, position)

    def _release_at(self, org_id: str, version: str, instant: datetime) -> dict[str, Any]:
        with self.services.read("directory", "timeline") as queries:
            past = replace(queries, at=instant).releases
            row = past.get(org_id, version)
            if row is None:
                raise NotFoundError(RELEASE_NOT_FOUND)
            return release_bodies([row], past, queries.directory)[0]


def set_position(resp: falcon.Response, position: int | None) -> None:
    """Tell the client the ledger position of the last event its write recorded."""
    if position is not None:
        resp.set_header("X-Ledger-Position", str(position))


def release_location(org_slug: str, version: str) -> str:
    return f"/api/0/organizations/{quote(org_slug, safe='')}/releases/{quote(version, safe='')}/"


def present(body: dict[str, Any], field: str) -> bool:
    return field in body
