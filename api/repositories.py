"""Repositories of an organization: listed for sentry-cli, registered by admins."""

from __future__ import annotations

from urllib.parse import quote
from uuid import UUID

import falcon

from api import response_schemas as bodies
from api import schemas
from api.auth import READ_SCOPES
from api.operations import Response, operation
from api.organizations import DIRECTORY_WRITE_SCOPES, check_admin
from api.pagination import Cursor, parse_cursor, per_page, set_link_header
from api.resource import Resource, set_position
from api.serializers import repository_body
from domain.errors import NotFoundError

LIST_SCOPES = READ_SCOPES | {"org:read"}


class RepositoryCollection(Resource):
    """GET lists repositories in the order they were created. POST registers one.

    sentry-cli's set-commits reads this list first and, when it is empty,
    falls back to reading the local git checkout even for --commit.
    """

    scopes = {"GET": LIST_SCOPES, "POST": DIRECTORY_WRITE_SCOPES}

    @operation("List repositories", {200: Response("One page of repositories",
                                                   bodies.page(bodies.REPOSITORY),
                                                   headers=("Link",))},
               query=schemas.PAGE)
    def on_get(self, req: falcon.Request, resp: falcon.Response, org: str) -> None:
        limit = per_page(req)
        cursor = parse_cursor(req)
        after = _cursor_key(cursor) if cursor else 0
        with self.services.read("directory", "commits") as queries:
            access = self.access(queries, req, org)
            rows = queries.commits.repositories(access.org_id, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        following = Cursor(str(rows[-1]["public_id"]), "0", False) if rows else cursor
        set_link_header(req, resp, None, False, following, more)
        resp.media = [repository_body(row) for row in rows]

    @operation("Register a repository, or change its URL and provider",
               {200: Response("Changed or unchanged", bodies.REPOSITORY,
                              headers=("X-Ledger-Position",)),
                201: Response("Registered", bodies.REPOSITORY,
                              headers=("Location", "X-Ledger-Position"))},
               body=schemas.REPOSITORY_CREATE)
    def on_post(self, req: falcon.Request, resp: falcon.Response, org: str) -> None:
        body = req.context.body
        name = body["name"]
        with self.services.read("directory") as queries:
            access = self.access(queries, req, org)
            check_admin(access)
        outcome = self.services.ledger.register_repository(
            UUID(access.org_id), name, body.get("url"), body.get("provider"), self.cause(req)
        )
        with self.services.read("commits") as queries:
            row = queries.commits.repository(access.org_id, name)
        if row is None:
            raise NotFoundError(f"Repository {name!r} not found.")
        resp.media = repository_body(row)
        if outcome.created:
            resp.status = falcon.HTTP_201
            resp.location = (
                f"/api/0/organizations/{quote(access.slug, safe='')}/repos/{row['public_id']}/"
            )
        set_position(resp, outcome.position)


class RepositoryDetail(Resource):
    """GET reads one repository by its id."""

    scopes = {"GET": LIST_SCOPES}

    @operation("Read a repository", {200: bodies.REPOSITORY})
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, org: str, repo_id: str
    ) -> None:
        with self.services.read("directory", "commits") as queries:
            access = self.access(queries, req, org)
            row = None
            if repo_id.isascii() and repo_id.isdigit():
                row = queries.commits.repository_by_public_id(access.org_id, int(repo_id))
        if row is None:
            raise NotFoundError("Repository not found.")
        resp.media = repository_body(row)


def _cursor_key(cursor: Cursor) -> int:
    try:
        return int(cursor.key)
    except ValueError:
        raise falcon.HTTPBadRequest(description="Invalid cursor.") from None
