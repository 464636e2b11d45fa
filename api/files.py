"""Files uploaded with a release, such as source maps, under the release's `files/` path.

The ledger records each file's metadata as events on the release; the
bytes live in the blob store under their SHA-1 digest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import quote
from uuid import UUID

import falcon

from api import response_schemas as bodies
from api import schemas
from api.auth import RELEASE_SCOPES
from api.operations import Response, operation
from api.pagination import (
    Cursor,
    parse_cursor,
    parse_integer_key,
    per_page,
    set_link_header,
)
from api.resource import Resource, set_position
from api.serializers import file_body, file_fields
from api.services import Queries, Services
from api.uploads import Upload, check_dist, check_file_name, content_type, read_upload
from domain.application import Outcome
from domain.cause import Cause
from domain.errors import NotFoundError
from domain.release import Release
from projections.database import Row
from projections.projection import to_text

logger = logging.getLogger("api.files")

FILE_NOT_FOUND = "File not found."
UPLOADED = Response("Uploaded", bodies.FILE, headers=("Location", "X-Ledger-Position"))
UPLOAD_ERRORS = (400, 401, 403, 404, 409, 411, 413, 415, 503)
FILE = Response("The file, or its content with download=1", bodies.FILE,
                alternatives={"*/*": bodies.BINARY})
DELETED = Response("Deleted", headers=("X-Ledger-Position",))
CHANGED = Response("Changed", bodies.FILE, headers=("X-Ledger-Position",))


class ReleaseFileCollection(Resource):
    """GET lists a release's files in upload order; POST uploads one."""

    scopes = RELEASE_SCOPES

    @operation("List a release's files in upload order",
               {200: Response("One page of files", bodies.page(bodies.FILE),
                              headers=("Link",))},
               query=schemas.PAGE)
    def on_get(self, req: falcon.Request, resp: falcon.Response, org: str, version: str) -> None:
        self.list_files(req, resp, org, version, None)

    @operation("Upload a release file", {201: UPLOADED}, body=schemas.FILE_UPLOAD,
               reads_body=False, errors=UPLOAD_ERRORS)
    def on_post(self, req: falcon.Request, resp: falcon.Response, org: str, version: str) -> None:
        self.upload(req, resp, org, version, None)

    @operation("List a release's files in upload order",
               {200: Response("One page of files", bodies.page(bodies.FILE),
                              headers=("Link",))},
               query=schemas.PAGE)
    def on_get_project(
        self, req: falcon.Request, resp: falcon.Response, org: str, project: str, version: str
    ) -> None:
        self.list_files(req, resp, org, version, project)

    @operation("Upload a release file", {201: UPLOADED}, body=schemas.FILE_UPLOAD,
               reads_body=False, errors=UPLOAD_ERRORS)
    def on_post_project(
        self, req: falcon.Request, resp: falcon.Response, org: str, project: str, version: str
    ) -> None:
        self.upload(req, resp, org, version, project)

    def list_files(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        org: str,
        version: str,
        project_slug: str | None,
    ) -> None:
        limit = per_page(req)
        cursor = parse_cursor(req)
        after = parse_integer_key(cursor)[0] if cursor else 0
        with self.services.read("directory", "releases", "files") as queries:
            release = self._release(req, queries, org, version, project_slug)
            rows = queries.files.page(release["id"], after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        following = Cursor(str(rows[-1]["public_id"]), "0", False) if rows else cursor
        set_link_header(req, resp, None, False, following, more)
        resp.media = [file_body(row) for row in rows]

    def upload(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        org: str,
        version: str,
        project_slug: str | None,
    ) -> None:
        with self.services.read("directory", "releases") as queries:
            release = self._release(req, queries, org, version, project_slug)
        settings = self.services.settings
        upload = read_upload(req, settings.max_file_bytes, self.services.blobs.scratch_dir)
        try:
            outcome = store_file(self.services, UUID(release["org_id"]), version, upload,
                                 self.cause(req))
        finally:
            upload.content.discard()
        # The body comes from the recorded values. Reading them back could
        # wait for the files read model, and a 503 then would make clients
        # retry an upload that was stored.
        assert outcome.position is not None
        resp.media = file_fields(
            outcome.position, upload.name, upload.dist, dict(upload.headers),
            upload.content.size, upload.content.sha1, to_text(outcome.aggregate.modified_on),
        )
        resp.status = falcon.HTTP_201
        resp.location = file_location(org, version, outcome.position)
        set_position(resp, outcome.position)

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


class ReleaseFileDetail(Resource):
    """GET reads a file, or its bytes with `?download=1`; PUT renames it; DELETE removes it."""

    scopes = RELEASE_SCOPES

    @operation("Read a release file or download its content", {200: FILE},
               query=schemas.FILE_QUERY)
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, org: str, version: str, file_id: int
    ) -> None:
        self.show(req, resp, org, version, None, file_id)

    @operation("Rename a release file", {200: CHANGED}, body=schemas.FILE_UPDATE)
    def on_put(
        self, req: falcon.Request, resp: falcon.Response, org: str, version: str, file_id: int
    ) -> None:
        self.update(req, resp, org, version, None, file_id)

    @operation("Delete a release file", {204: DELETED})
    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, org: str, version: str, file_id: int
    ) -> None:
        self.delete(req, resp, org, version, None, file_id)

    @operation("Read a project's release file or download its content", {200: FILE},
               query=schemas.FILE_QUERY)
    def on_get_project(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        org: str,
        project: str,
        version: str,
        file_id: int,
    ) -> None:
        self.show(req, resp, org, version, project, file_id)

    @operation("Rename a project's release file", {200: CHANGED}, body=schemas.FILE_UPDATE)
    def on_put_project(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        org: str,
        project: str,
        version: str,
        file_id: int,
    ) -> None:
        self.update(req, resp, org, version, project, file_id)

    @operation("Delete a project's release file", {204: DELETED})
    def on_delete_project(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        org: str,
        project: str,
        version: str,
        file_id: int,
    ) -> None:
        self.delete(req, resp, org, version, project, file_id)

    def show(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        org: str,
        version: str,
        project_slug: str | None,
        file_id: int,
    ) -> None:
        with self.services.read("directory", "releases", "files") as queries:
            _, row = self._file(req, queries, org, version, project_slug, file_id)
        if not req.context.query["download"]:
            resp.media = file_body(row)
            return
        try:
            resp.stream = self.services.blobs.open(row["sha1"])
        except FileNotFoundError:
            logger.error(
                "blob missing",
                extra={"request_id": req.context.request_id, "sha1": row["sha1"],
                       "file": row["public_id"]},
            )
            raise NotFoundError(
                "The content of this file is missing from the blob store."
            ) from None
        resp.content_type = content_type(_headers(row))
        resp.content_length = row["size"]
        resp.downloadable_as = row["name"].rstrip("/").rsplit("/", 1)[-1] or "file"

    def update(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        org: str,
        version: str,
        project_slug: str | None,
        file_id: int,
    ) -> None:
        body = req.context.body
        with self.services.read("directory", "releases", "files") as queries:
            release, row = self._file(req, queries, org, version, project_slug, file_id)
        name = check_file_name(body["name"]) if "name" in body else row["name"]
        dist = check_dist(body["dist"]) if "dist" in body else row["dist"]
        outcome = self.services.ledger.update_release_file(
            UUID(release["org_id"]), version, UUID(row["id"]), name, dist, self.cause(req)
        )
        with self.services.read("files") as queries:
            updated = queries.files.get(release["id"], file_id)
            if updated is None:
                raise NotFoundError(FILE_NOT_FOUND)
            resp.media = file_body(updated)
        set_position(resp, outcome.position)

    def delete(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        org: str,
        version: str,
        project_slug: str | None,
        file_id: int,
    ) -> None:
        with self.services.read("directory", "releases", "files") as queries:
            release, row = self._file(req, queries, org, version, project_slug, file_id)
        outcome = self.services.ledger.remove_release_file(
            UUID(release["org_id"]), version, UUID(row["id"]), self.cause(req)
        )
        remove_unused_blobs(self.services, [row["sha1"]], req.context.request_id)
        resp.status = falcon.HTTP_204
        set_position(resp, outcome.position)

    def _file(
        self,
        req: falcon.Request,
        queries: Queries,
        org: str,
        version: str,
        project_slug: str | None,
        file_id: int,
    ) -> tuple[Row, Row]:
        access = self.access(queries, req, org)
        project = self.project(queries, access, project_slug) if project_slug else None
        release = self.visible_release(queries, access, version, project)
        row = queries.files.get(release["id"], file_id)
        if row is None:
            raise NotFoundError(FILE_NOT_FOUND)
        return release, row


def store_file(
    services: Services, org_id: UUID, version: str, upload: Upload, cause: Cause
) -> Outcome[Release]:
    """Add the upload's content to the blob store and record the file.

    The blob's lock is held until the file is recorded, so a concurrent
    removal cannot take the blob away in between. A blob this call added
    is removed again when recording fails, for example on a name conflict.
    """
    sha1 = upload.content.sha1
    with services.blobs.lock(sha1):
        added = services.blobs.add(sha1, upload.content.path)
        try:
            return services.ledger.add_release_file(
                org_id, version, upload.name, upload.dist, upload.headers, upload.content.size,
                sha1, cause,
            )
        except BaseException:
            if added:
                services.blobs.remove(sha1)
            raise


def remove_unused_blobs(services: Services, sha1s: Iterable[str], request_id: str) -> int:
    """Remove each blob that no file refers to any more; return how many were removed.

    The read models are caught up under the blob's lock, so a file
    recorded by a concurrent upload of the same bytes keeps its blob.
    """
    removed = 0
    for sha1 in sorted(set(sha1s)):
        with services.blobs.lock(sha1):
            with services.read("files") as queries:
                in_use = queries.files.sha1_in_use(sha1)
            if not in_use:
                services.blobs.remove(sha1)
                removed += 1
                logger.info("blob removed", extra={"request_id": request_id, "sha1": sha1})
    return removed


def release_file_sha1s(release: Release) -> list[str]:
    """Return the blobs that a release's files refer to."""
    return [file["sha1"] for file in release.files.values()]


def file_location(org_slug: str, version: str, public_id: int) -> str:
    return (
        f"/api/0/organizations/{quote(org_slug, safe='')}/releases/{quote(version, safe='')}"
        f"/files/{public_id}/"
    )


def _headers(row: Row) -> dict[str, str]:
    return file_body(row)["headers"]

