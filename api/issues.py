"""Issues that an error tracker reports for a project, and the issues a release resolved."""

from __future__ import annotations

from urllib.parse import quote
from uuid import UUID

import falcon

from api import response_schemas as bodies
from api import schemas
from api.auth import READ_SCOPES
from api.operations import Response, operation
from api.pagination import (
    Cursor,
    parse_cursor,
    parse_integer_key,
    per_page,
    set_link_header,
)
from api.resource import Resource, set_position
from api.serializers import issue_body
from api.services import Queries
from domain.errors import NotFoundError
from projections.database import Row

EVENT_READ_SCOPES = frozenset({"event:read", "event:write", "event:admin"})
EVENT_WRITE_SCOPES = frozenset({"project:write", "project:admin", "event:write", "event:admin"})
ISSUE_SCOPES = {
    "GET": READ_SCOPES | EVENT_READ_SCOPES,
    "POST": EVENT_WRITE_SCOPES,
    "PUT": EVENT_WRITE_SCOPES,
    "DELETE": frozenset({"project:admin", "event:admin"}),
}
RESOLVED_SCOPES = {"GET": ISSUE_SCOPES["GET"]}
ISSUE_NOT_FOUND = "Issue not found."


class IssueCollection(Resource):
    """GET lists a project's issues, newest first; POST creates one."""

    scopes = ISSUE_SCOPES

    @operation("List a project's issues",
               {200: Response("One page of issues", bodies.page(bodies.ISSUE),
                              headers=("Link",))},
               query=schemas.PAGE)
    def on_get(self, req: falcon.Request, resp: falcon.Response, org: str, project: str) -> None:
        limit = per_page(req)
        cursor = parse_cursor(req)
        before = parse_integer_key(cursor)[0] if cursor else None
        with self.services.read("directory", "issues") as queries:
            access = self.access(queries, req, org)
            project_row = self.project(queries, access, project)
            rows = queries.issues.page(project_row["id"], before, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        following = Cursor(str(rows[-1]["public_id"]), "0", False) if rows else cursor
        set_link_header(req, resp, None, False, following, more)
        resp.media = [issue_body(row, project_row) for row in rows]

    @operation("Report an issue",
               {201: Response("Created", bodies.ISSUE, headers=("Location", "X-Ledger-Position"))},
               body=schemas.ISSUE_CREATE)
    def on_post(self, req: falcon.Request, resp: falcon.Response, org: str, project: str) -> None:
        body = req.context.body
        short_id = body["shortId"]
        title = body["title"]
        first_release = body.get("firstRelease")
        with self.services.read("directory", "issues") as queries:
            access = self.access(queries, req, org)
            project_row = self.project(queries, access, project)
        outcome = self.services.ledger.create_issue(
            UUID(access.org_id), UUID(project_row["id"]), short_id, title, first_release,
            self.cause(req),
        )
        short_id = outcome.aggregate.short_id
        with self.services.read("directory", "issues") as queries:
            resp.media = issue_body(_issue(queries, access.org_id, short_id), project_row)
        resp.status = falcon.HTTP_201
        resp.location = issue_location(access.slug, project_row["slug"], short_id)
        set_position(resp, outcome.position)


class IssueDetail(Resource):
    """GET reads an issue, PUT changes its status, DELETE removes it."""

    scopes = ISSUE_SCOPES

    @operation("Read an issue", {200: bodies.ISSUE})
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, org: str, project: str, short_id: str
    ) -> None:
        with self.services.read("directory", "issues") as queries:
            access = self.access(queries, req, org)
            project_row = self.project(queries, access, project)
            row = _project_issue(queries, access.org_id, project_row, short_id)
            resp.media = issue_body(row, project_row)

    @operation("Change an issue's status",
               {200: Response("Changed", bodies.ISSUE, headers=("X-Ledger-Position",))},
               body=schemas.ISSUE_UPDATE)
    def on_put(
        self, req: falcon.Request, resp: falcon.Response, org: str, project: str, short_id: str
    ) -> None:
        status = req.context.body["status"]
        with self.services.read("directory", "issues") as queries:
            access = self.access(queries, req, org)
            project_row = self.project(queries, access, project)
            _project_issue(queries, access.org_id, project_row, short_id)
        outcome = self.services.ledger.change_issue_status(
            UUID(access.org_id), UUID(project_row["id"]), short_id, status, self.cause(req)
        )
        with self.services.read("directory", "issues") as queries:
            row = _issue(queries, access.org_id, short_id)
            resp.media = issue_body(row, project_row)
        set_position(resp, outcome.position)

    @operation("Delete an issue", {204: Response("Deleted", headers=("X-Ledger-Position",))})
    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, org: str, project: str, short_id: str
    ) -> None:
        with self.services.read("directory", "issues") as queries:
            access = self.access(queries, req, org)
            project_row = self.project(queries, access, project)
            _project_issue(queries, access.org_id, project_row, short_id)
        outcome = self.services.ledger.delete_issue(
            UUID(access.org_id), UUID(project_row["id"]), short_id, self.cause(req)
        )
        resp.status = falcon.HTTP_204
        set_position(resp, outcome.position)


class ResolvedIssues(Resource):
    """GET lists the issues that commits of a release resolved, in resolution order."""

    scopes = RESOLVED_SCOPES

    @operation("List the issues a release's commits resolved",
               {200: Response("One page of issues", bodies.page(bodies.ISSUE),
                              headers=("Link",))},
               query=schemas.PAGE)
    def on_get(self, req: falcon.Request, resp: falcon.Response, org: str, version: str) -> None:
        limit = per_page(req)
        cursor = parse_cursor(req)
        after = parse_integer_key(cursor)[0] if cursor else 0
        with self.services.read("directory", "releases", "issues") as queries:
            access = self.access(queries, req, org)
            release = self.visible_release(queries, access, version)
            project_ids = None if access.project_ids is None else sorted(access.project_ids)
            rows = queries.issues.resolved(release["id"], project_ids, after, limit + 1)
            more = len(rows) > limit
            rows = rows[:limit]
            projects = queries.directory.projects_by_id(sorted({r["project_id"] for r in rows}))
        following = Cursor(str(rows[-1]["position"]), "0", False) if rows else cursor
        set_link_header(req, resp, None, False, following, more)
        resp.media = [issue_body(row, projects[row["project_id"]]) for row in rows]


def issue_location(org_slug: str, project_slug: str, short_id: str) -> str:
    return (
        f"/api/0/projects/{quote(org_slug, safe='')}/{quote(project_slug, safe='')}"
        f"/issues/{quote(short_id, safe='')}/"
    )


def _issue(queries: Queries, org_id: str, short_id: str) -> Row:
    row = queries.issues.get(org_id, short_id)
    if row is None:
        raise NotFoundError(ISSUE_NOT_FOUND)
    return row


def _project_issue(queries: Queries, org_id: str, project: Row, short_id: str) -> Row:
    """Return a live issue of `project`; an issue of another project is not found."""
    row = _issue(queries, org_id, short_id)
    if row["project_id"] != project["id"]:
        raise NotFoundError(ISSUE_NOT_FOUND)
    return row
