"""The activity feed of an organization's projects, newest first."""

from __future__ import annotations

import falcon

from api import response_schemas as bodies
from api import schemas
from api.auth import READ_SCOPES
from api.operations import Response, operation
from api.pagination import Cursor, parse_cursor, parse_int64, per_page, set_link_header
from api.resource import Resource
from api.serializers import activity_body


class ActivityFeed(Resource):
    scopes = {"GET": READ_SCOPES}

    @operation("List activity, newest first",
               {200: Response("One page of activity", bodies.page(bodies.ACTIVITY),
                              headers=("Link",))},
               query=schemas.PAGE)
    def on_get(self, req: falcon.Request, resp: falcon.Response, org: str) -> None:
        limit = per_page(req)
        cursor = parse_cursor(req)
        after = None
        if cursor is not None:
            after = (parse_int64(cursor.key), cursor.tiebreak)
        with self.services.read("directory", "activity") as queries:
            access = self.access(queries, req, org)
            project_ids = None if access.project_ids is None else sorted(access.project_ids)
            rows = queries.activity.page(access.org_id, project_ids, after, limit + 1)
            more = len(rows) > limit
            rows = rows[:limit]
            projects = queries.directory.projects_by_id(sorted({r["project_id"] for r in rows}))
            resp.media = [activity_body(row, projects.get(row["project_id"])) for row in rows]
        following = cursor
        if rows:
            following = Cursor(str(rows[-1]["position"]), rows[-1]["project_id"], False)
        set_link_header(req, resp, None, False, following, more)
