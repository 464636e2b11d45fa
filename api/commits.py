"""The commits of a release, in the order they were given, paginated."""

from __future__ import annotations

import falcon

from api.auth import RELEASE_SCOPES
from api.pagination import Cursor, parse_cursor, per_page, set_link_header
from api.resource import Resource
from api.serializers import commit_row_body


class ReleaseCommits(Resource):
    scopes = {"GET": RELEASE_SCOPES["GET"]}

    def on_get(self, req: falcon.Request, resp: falcon.Response, org: str, version: str) -> None:
        self.list_commits(req, resp, org, version, None)

    def on_get_project(
        self, req: falcon.Request, resp: falcon.Response, org: str, project: str, version: str
    ) -> None:
        self.list_commits(req, resp, org, version, project)

    def list_commits(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        org: str,
        version: str,
        project_slug: str | None,
    ) -> None:
        limit = per_page(req)
        cursor = parse_cursor(req)
        after = -1
        if cursor is not None:
            try:
                after = int(cursor.key)
            except ValueError:
                raise falcon.HTTPBadRequest(description="Invalid cursor.") from None
        with self.services.read() as queries:
            access = self.access(queries, req, org)
            project = self.project(queries, access, project_slug) if project_slug else None
            release = self.visible_release(queries, access, version, project)
            rows = queries.releases.commits(release["id"], after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        following = Cursor(str(rows[-1]["position"]), "0", False) if rows else cursor
        set_link_header(req, resp, None, False, following, more)
        resp.media = [commit_row_body(row) for row in rows]
