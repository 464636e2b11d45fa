"""A release's commits, the files they changed, and the previous release with commits."""

from __future__ import annotations

import base64

import falcon

from api import response_schemas as bodies
from api import schemas
from api.auth import RELEASE_SCOPES
from api.operations import Response, operation
from api.pagination import Cursor, parse_cursor, parse_int64, per_page, set_link_header
from api.resource import Resource
from api.serializers import commit_file_body, commit_row_body, release_bodies

COMMITS = Response("One page of commits", bodies.page(bodies.COMMIT), headers=("Link",))


class ReleaseCommits(Resource):
    """GET lists a release's commits in the order they were given, paginated."""

    scopes = {"GET": RELEASE_SCOPES["GET"]}

    @operation("List a release's commits", {200: COMMITS}, query=schemas.PAGE)
    def on_get(self, req: falcon.Request, resp: falcon.Response, org: str, version: str) -> None:
        self.list_commits(req, resp, org, version, None)

    @operation("List the commits of a project's release", {200: COMMITS}, query=schemas.PAGE)
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
        after = _position(cursor.key) if cursor else -1
        with self.services.read("directory", "releases", "commits") as queries:
            access = self.access(queries, req, org)
            project = self.project(queries, access, project_slug) if project_slug else None
            release = self.visible_release(queries, access, version, project)
            rows = queries.commits.release_commits(release["id"], after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        following = Cursor(str(rows[-1]["position"]), "0", False) if rows else cursor
        set_link_header(req, resp, None, False, following, more)
        resp.media = [commit_row_body(row) for row in rows]


class ReleaseCommitFiles(Resource):
    """GET lists the files a release's commits changed, by commit, then path."""

    scopes = {"GET": RELEASE_SCOPES["GET"]}

    @operation("List the files a release's commits changed",
               {200: Response("One page of changed files", bodies.page(bodies.COMMIT_FILE),
                              headers=("Link",))},
               query=schemas.PAGE)
    def on_get(self, req: falcon.Request, resp: falcon.Response, org: str, version: str) -> None:
        limit = per_page(req)
        cursor = parse_cursor(req)
        after = (_position(cursor.key), _decode_path(cursor.tiebreak)) if cursor else None
        with self.services.read("directory", "releases", "commits") as queries:
            access = self.access(queries, req, org)
            release = self.visible_release(queries, access, version)
            rows = queries.commits.release_files(release["id"], after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        following = (
            Cursor(str(rows[-1]["position"]), _encode_path(rows[-1]["path"]), False)
            if rows else cursor
        )
        set_link_header(req, resp, None, False, following, more)
        resp.media = [commit_file_body(row) for row in rows]


class PreviousReleaseWithCommits(Resource):
    """GET returns the latest earlier release with commits that shares a project, or {}.

    sentry-cli reads exactly `{}` as "none" and walks local history back
    to the returned release's lastCommit otherwise.
    """

    scopes = {"GET": RELEASE_SCOPES["GET"]}

    @operation("Find the latest earlier release with commits",
               {200: Response("The release, or {} for none",
                              {"anyOf": [bodies.RELEASE, bodies.NO_RELEASE]})})
    def on_get(self, req: falcon.Request, resp: falcon.Response, org: str, version: str) -> None:
        with self.services.read("directory", "releases") as queries:
            access = self.access(queries, req, org)
            release = self.visible_release(queries, access, version)
            linked = queries.releases.project_ids([release["id"]])[release["id"]]
            usable = [project_id for project_id in linked if access.may_use(project_id)]
            previous = queries.releases.previous_with_commits(release, usable)
            resp.media = (
                release_bodies([previous], queries.releases, queries.directory)[0]
                if previous else {}
            )


def _encode_path(path: str) -> str:
    """Encode a file path for a cursor, because the Link header cannot carry quotes."""
    return base64.urlsafe_b64encode(path.encode()).decode().rstrip("=")


def _decode_path(value: str) -> str:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise falcon.HTTPBadRequest(description="Invalid cursor.") from None


def _position(key: str) -> int:
    return parse_int64(key)
