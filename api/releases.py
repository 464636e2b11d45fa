"""Release resources under /organizations/{org}/ and /projects/{org}/{project}/."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

import falcon

from api import requests, schemas
from api import response_schemas as bodies
from api.auth import RELEASE_SCOPES, OrganizationAccess, project_for_slug
from api.files import release_file_sha1s, remove_unused_blobs
from api.operations import Response, operation
from api.pagination import (
    Cursor,
    parse_cursor,
    parse_integer_key,
    per_page,
    set_link_header,
)
from api.refs import apply_refs, plan_refs
from api.resource import Resource, release_location
from api.serializers import release_bodies
from api.services import Queries
from domain.application import ReleaseChanges
from domain.commits import check_commits
from domain.dates import parse_datetime
from domain.errors import InvalidFieldError
from projections.database import Row

LIST = Response("One page of releases, newest first", bodies.page(bodies.RELEASE),
                headers=("Link",))
CREATED = Response("Created, or a project was added", bodies.RELEASE,
                   headers=("Location", "X-Ledger-Position"))
EXISTING = Response("The release exists and has every project named",
                    bodies.RELEASE, headers=("X-Ledger-Position",))
RELEASE = Response("The release", bodies.RELEASE, headers=("X-Ledger-Position",))


class ReleaseCollection(Resource):
    """GET lists releases, POST creates one or adds projects to it."""

    scopes = RELEASE_SCOPES

    @operation("List an organization's releases", {200: LIST},
               query=schemas.RELEASE_LIST_QUERY)
    def on_get(self, req: falcon.Request, resp: falcon.Response, org: str) -> None:
        self.list_releases(req, resp, org, None)

    @operation("Create a release, or add projects to it", {201: CREATED, 208: EXISTING},
               body=schemas.RELEASE_CREATE, large_body=True)
    def on_post(self, req: falcon.Request, resp: falcon.Response, org: str) -> None:
        self.create_release(req, resp, org, None)

    @operation("List a project's releases", {200: LIST}, query=schemas.RELEASE_LIST_QUERY)
    def on_get_project(
        self, req: falcon.Request, resp: falcon.Response, org: str, project: str
    ) -> None:
        self.list_releases(req, resp, org, project)

    @operation("Create a release of a project, or add projects to it",
               {201: CREATED, 208: EXISTING}, body=schemas.PROJECT_RELEASE_CREATE,
               large_body=True)
    def on_post_project(
        self, req: falcon.Request, resp: falcon.Response, org: str, project: str
    ) -> None:
        self.create_release(req, resp, org, project)

    def list_releases(
        self, req: falcon.Request, resp: falcon.Response, org: str, project_slug: str | None
    ) -> None:
        status = req.context.query["status"]
        prefix = req.context.query.get("query", "")
        limit = per_page(req)
        cursor = parse_cursor(req)
        at = instant(req)
        with self.services.read(*release_groups(at)) as queries:
            queries = replace(queries, at=at)
            access = self.access(queries, req, org)
            project_ids = self._project_filter(req, queries, access, project_slug)
            key = parse_integer_key(cursor) if cursor else None
            rows = queries.releases.page(
                access.org_id,
                project_ids,
                status,
                prefix,
                after=key if cursor and not cursor.backward else None,
                before=key if cursor and cursor.backward else None,
                limit=limit + 1,
            )
            resp.media = self._page(req, resp, rows, cursor, limit, queries)

    def _page(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        rows: list[Row],
        cursor: Cursor | None,
        limit: int,
        queries: Queries,
    ) -> list[dict[str, Any]]:
        backward = cursor is not None and cursor.backward
        more = len(rows) > limit
        if more:
            rows = rows[1:] if backward else rows[:limit]
        has_next = more if not backward else True
        has_previous = (more if backward else cursor is not None) and bool(rows)
        first = _cursor(rows[0], backward=True) if rows else None
        last = _cursor(rows[-1], backward=False) if rows else cursor
        set_link_header(req, resp, first, has_previous, last, has_next and bool(rows))
        return release_bodies(rows, queries.releases, queries.directory)

    def _project_filter(
        self,
        req: falcon.Request,
        queries: Queries,
        access: OrganizationAccess,
        project_slug: str | None,
    ) -> list[str] | None:
        """Return the project ids to list, or None for every project of the organization."""
        if project_slug is not None:
            return [self.project(queries, access, project_slug)["id"]]
        requested = req.context.query.get("project") or []
        if not requested:
            return None if access.project_ids is None else sorted(access.project_ids)
        project_ids = []
        for public_id in requested:
            project = queries.directory.project_by_public_id(access.org_id, int(public_id))
            if project is not None and access.may_use(project["id"]):
                project_ids.append(project["id"])
        return project_ids

    def create_release(
        self, req: falcon.Request, resp: falcon.Response, org: str, project_slug: str | None
    ) -> None:
        body = req.context.body
        version = body["version"]
        status = body.get("status")
        slugs = body.get("projects") or []
        with self.services.read(*create_groups(body, project_slug)) as queries:
            access = self.access(queries, req, org)
            if project_slug is not None:
                # A project in the path that the caller may not use is not found,
                # like every other path the caller may not see.
                self.project(queries, access, project_slug)
                slugs = [project_slug, *slugs]
            project_ids = self._usable_project_ids(queries, access, slugs)
            changes = _changes(body, queries, access, for_create=True)
            changes.project_ids = project_ids
            if not project_ids:
                # An empty list only archives or restores an existing release.
                if status is None:
                    raise InvalidFieldError("projects", "Name at least one project.")
                self.visible_release(queries, access, version)
            planned_refs = plan_refs(body, queries, access.org_id, version, project_ids)
        apply_refs(changes, planned_refs)
        outcome = self.services.ledger.create_release(
            UUID(access.org_id), version, changes, self.cause(req)
        )
        status_code = falcon.HTTP_201 if outcome.created else falcon.HTTP_208
        if outcome.created:
            resp.location = release_location(access.slug, version)
        self.respond_with_release(req, resp, access.org_id, version, outcome.position, status_code,
                                  written_at=outcome.aggregate.modified_on)

    @staticmethod
    def _usable_project_ids(
        queries: Queries, access: OrganizationAccess, slugs: Sequence[str | int]
    ) -> list[UUID]:
        project_ids = []
        for slug in slugs:
            project = project_for_slug(queries.directory, access, slug)
            if project is None:
                raise InvalidFieldError("projects", "Invalid project slugs")
            project_ids.append(UUID(project["id"]))
        return project_ids


class ReleaseDetail(Resource):
    """GET reads a release, PUT changes it, DELETE deletes it."""

    scopes = RELEASE_SCOPES

    @operation("Read a release", {200: RELEASE}, query=schemas.RELEASE_QUERY)
    def on_get(self, req: falcon.Request, resp: falcon.Response, org: str, version: str) -> None:
        self.show(req, resp, org, version, None)

    @operation("Change a release", {200: RELEASE}, body=schemas.RELEASE_UPDATE,
               large_body=True)
    def on_put(self, req: falcon.Request, resp: falcon.Response, org: str, version: str) -> None:
        self.update(req, resp, org, version, None)

    @operation("Delete a release", {204: Response("Deleted", headers=("X-Ledger-Position",))})
    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, org: str, version: str
    ) -> None:
        self.delete(req, resp, org, version, None)

    @operation("Read a release of a project", {200: RELEASE}, query=schemas.RELEASE_QUERY)
    def on_get_project(
        self, req: falcon.Request, resp: falcon.Response, org: str, project: str, version: str
    ) -> None:
        self.show(req, resp, org, version, project)

    @operation("Change a release of a project", {200: RELEASE}, body=schemas.RELEASE_UPDATE,
               large_body=True)
    def on_put_project(
        self, req: falcon.Request, resp: falcon.Response, org: str, project: str, version: str
    ) -> None:
        self.update(req, resp, org, version, project)

    @operation("Delete a release of a project",
               {204: Response("Deleted", headers=("X-Ledger-Position",))})
    def on_delete_project(
        self, req: falcon.Request, resp: falcon.Response, org: str, project: str, version: str
    ) -> None:
        self.delete(req, resp, org, version, project)

    def show(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        org: str,
        version: str,
        project_slug: str | None,
    ) -> None:
        at = instant(req)
        with self.services.read(*release_groups(at)) as queries:
            queries = replace(queries, at=at)
            row = self._release(req, queries, org, version, project_slug)
            resp.media = release_bodies([row], queries.releases, queries.directory)[0]

    def update(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        org: str,
        version: str,
        project_slug: str | None,
    ) -> None:
        org_id, position, written_at = self._apply_update(req, org, version, project_slug)
        self.respond_with_release(req, resp, org_id, version, position, written_at=written_at)

    def _apply_update(
        self, req: falcon.Request, org: str, version: str, project_slug: str | None
    ) -> tuple[str, int | None, datetime]:
        """Record the body's changes.

        Returns the organization's id, the ledger position and the time
        of the release's last event.

        The parsed body is freed before the command runs, and the
        command's objects when this returns, before the response is read.
        With 100,000 commits each takes about 100 MiB.
        """
        body = req.context.body
        req.context.body = None
        slugs = body.get("projects") or []
        with self.services.read(*write_groups(body)) as queries:
            self._release(req, queries, org, version, project_slug)
            access = self.access(queries, req, org)
            changes = _changes(body, queries, access, for_create=False)
            changes.project_ids = ReleaseCollection._usable_project_ids(queries, access, slugs)
            planned_refs = plan_refs(body, queries, access.org_id, version, changes.project_ids)
        del body
        apply_refs(changes, planned_refs)
        outcome = self.services.ledger.update_release(
            UUID(access.org_id), version, changes, self.cause(req)
        )
        return access.org_id, outcome.position, outcome.aggregate.modified_on

    def delete(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        org: str,
        version: str,
        project_slug: str | None,
    ) -> None:
        with self.services.read("directory", "releases") as queries:
            row = self._release(req, queries, org, version, project_slug)
        outcome = self.services.ledger.delete_release(
            UUID(row["org_id"]), version, self.cause(req)
        )
        remove_unused_blobs(
            self.services, release_file_sha1s(outcome.aggregate), req.context.request_id
        )
        resp.status = falcon.HTTP_204
        if outcome.position is not None:
            resp.set_header("X-Ledger-Position", str(outcome.position))

    def _release(
        self,
        req: falcon.Request,
        queries: Queries,
        org: str,
        version: str,
        project_slug: str | None,
    ) -> Row:
        access = self.access(queries, req, org)
        project = self.project(queries, access, project_slug) if project_slug else None
        return self.visible_release(queries, access, version, project)


def release_groups(at: datetime | None) -> tuple[str, ...]:
    """Return the query groups that reading releases uses, now or at instant `at`."""
    return ("directory", "releases") if at is None else ("directory", "timeline")


def write_groups(body: dict[str, Any]) -> tuple[str, ...]:
    """Return the query groups that checking a release's create or update body uses."""
    if body.get("refs") is None:
        return ("directory", "releases")
    return ("directory", "releases", "commits")


def create_groups(body: dict[str, Any], project_slug: str | None) -> tuple[str, ...]:
    """Return the query groups that checking a create body uses.

    Naming projects, a create reads only the directory: whether the
    release exists is for the ledger to decide.
    """
    if (body.get("projects") or project_slug) and body.get("refs") is None:
        return ("directory",)
    return write_groups(body)


def instant(req: falcon.Request) -> datetime | None:
    """Return the `at` parameter, the instant to read the state at, or None for the present."""
    value = req.context.query.get("at")
    return None if value is None else parse_datetime("at", value)


def _changes(
    body: dict[str, Any], queries: Queries, access: OrganizationAccess, *, for_create: bool
) -> ReleaseChanges:
    """Read the release fields of a request body; absent fields stay UNSET.

    A null `dateReleased`, `status` or `commits` is read as absent, since
    none of them can be cleared.
    """
    changes = ReleaseChanges()
    if "ref" in body:
        changes.ref = body["ref"]
    if "url" in body:
        changes.url = body["url"]
    if "owner" in body:
        changes.owner_id = _owner_id(body, queries, access)
    if "dateStarted" in body:
        changes.date_started = requests.date(body, "dateStarted")
    if body.get("dateReleased") is not None:
        changes.date_released = requests.date(body, "dateReleased")
    if body.get("status") is not None:
        changes.status = body["status"]
    if body.get("commits") is not None:
        changes.commits = check_commits(body["commits"])
    return changes


def _owner_id(body: dict[str, Any], queries: Queries, access: OrganizationAccess) -> Any:
    """Return the id of the member whose email `owner` holds, or None for a null owner."""
    email = body["owner"]
    if email is None:
        return None
    user = queries.directory.user_by_email(email)
    member = user and (
        user["is_superuser"] or queries.directory.member(access.org_id, user["id"])
    )
    if not member:
        raise InvalidFieldError("owner", f"User {email!r} is not a member of this organization.")
    return UUID(user["id"])


def _cursor(row: Row, *, backward: bool) -> Cursor:
    return Cursor(str(row["sort_key"]), str(row["public_id"]), backward)

