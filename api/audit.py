"""A release's history and an organization's audit log, read from the audit read model."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import falcon

from api import response_schemas as bodies
from api import schemas
from api.auth import READ_SCOPES, Caller, OrganizationAccess
from api.json_bodies import dumps
from api.operations import Response, operation
from api.pagination import link_page, parse_position_cursor, per_page, position_cursor
from api.resource import RELEASE_NOT_FOUND, Resource
from api.services import Queries
from domain.dates import parse_datetime
from domain.errors import InvalidFieldError, NotFoundError, PermissionDeniedError
from domain.release import Release
from projections.audit import AuditFilter
from projections.database import Row
from projections.event_data import EVENT_TYPE_PATTERN
from projections.projection import to_micros

AUDIT_SCOPES = frozenset({"org:read", "org:write", "org:admin"})


def may_audit(caller: Caller, access: OrganizationAccess) -> bool:
    """Tell whether the caller may read the organization's whole record.

    Owners, admins and superusers may with a token that has an `org:read`,
    `org:write` or `org:admin` scope. An organization's own token may with
    any of those scopes.
    """
    if not caller.scopes & AUDIT_SCOPES:
        return False
    return caller.user is None or access.is_admin


def history_body(row: Row) -> dict[str, Any]:
    return {**history_fields(row), "data": json.loads(row["data"])}


def audit_body(row: Row) -> dict[str, Any]:
    """Render an audit-log entry: a history item plus what it happened to."""
    return {**audit_fields(row), "data": json.loads(row["data"])}


def history_fields(row: Row) -> dict[str, Any]:
    """Return a history item's fields other than its data."""
    return {
        "id": str(row["position"]),
        "type": row["type"],
        "sequence": row["sequence"],
        "dateCreated": row["date_created"],
        "actor": {"type": row["actor_type"], "id": row["actor_id"], "email": row["actor_email"]},
        "requestId": row["request_id"],
        "hash": row["hash"],
    }


def audit_fields(row: Row) -> dict[str, Any]:
    return {
        **history_fields(row),
        "target": {
            "type": row["subject_kind"],
            "id": str(row["subject_public_id"]),
            "name": row["subject_name"],
        },
    }


def json_items(rows: Sequence[Row], fields: Callable[[Row], dict[str, Any]]) -> bytes:
    """Return items as a JSON array, each one's `data` copied from its stored JSON text.

    The audit model stores each event's data as compact JSON already, so
    decoding it only to encode it again would cost more than the rest of
    the response. The items' other fields are encoded in one call, each
    ending in a placeholder `data` that is then replaced by the stored
    text. The placeholder cannot occur inside an encoded string, where
    every quote is escaped.
    """
    if not rows:
        return b"[]"
    encoded = dumps([{**fields(row), "data": ""} for row in rows])
    *parts, last = encoded[1:-1].split(_DATA_PLACEHOLDER)
    items = b"".join(
        b"%s\"data\":%s}" % (part, row["data"].encode())
        for part, row in zip(parts, rows, strict=True)
    )
    return b"[%s%s]" % (items, last)


# The end of an encoded item whose `data` is empty, which json_items replaces.
_DATA_PLACEHOLDER = b'"data":""}'


def audit_filter(
    queries: Queries,
    org_id: str,
    *,
    event_types: Sequence[str] = (),
    actor: str | None = None,
    project: str | None = None,
    version: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> AuditFilter:
    """Check the audit log's filters and resolve them to read-model terms."""
    for event_type in event_types:
        if not EVENT_TYPE_PATTERN.match(event_type):
            raise InvalidFieldError(
                "event", f"Invalid event type {event_type[:80]!r}: expected a type such as"
                " 'release.created'."
            )
    return AuditFilter(
        event_types=tuple(dict.fromkeys(event_types)),
        actor=actor,
        project_id=None if project is None else _project_id(queries, org_id, project),
        version=version,
        start=to_micros(parse_datetime("start", start)),
        end=to_micros(parse_datetime("end", end)),
    )


def _project_id(queries: Queries, org_id: str, project: str) -> str:
    """Return the id of the project a slug or public id names."""
    row = queries.directory.project_named(org_id, project)
    if row is None:
        raise InvalidFieldError("project", f"Project {project!r} not found.")
    return row["id"]


def _position(row: Row, backward: bool) -> Any:
    return position_cursor(row["position"], backward=backward)


class ReleaseHistory(Resource):
    """GET lists every event of a release, oldest first, across its lifetimes."""

    scopes = {"GET": READ_SCOPES | AUDIT_SCOPES}

    @operation("List every event of a release, oldest first",
               {200: Response("One page of events", bodies.page(bodies.HISTORY_ITEM),
                              headers=("Link",))},
               query=schemas.PAGE)
    def on_get(self, req: falcon.Request, resp: falcon.Response, org: str, version: str) -> None:
        limit = per_page(req)
        cursor, after, before = parse_position_cursor(req)
        with self.services.read("directory", "releases", "audit") as queries:
            access = self.access(queries, req, org)
            release_id = Release.create_id(UUID(access.org_id), version)
            self._check_readable(req.context.caller, queries, access, version, release_id)
            rows = queries.audit.history(release_id, after, before, limit + 1)
        page = link_page(req, resp, rows, cursor, limit, _position)
        resp.content_type = falcon.MEDIA_JSON
        resp.data = json_items(page, history_fields)

    def _check_readable(
        self,
        caller: Caller,
        queries: Queries,
        access: OrganizationAccess,
        version: str,
        release_id: UUID,
    ) -> None:
        """Raise NotFoundError unless the caller may read the release or audit the organization.

        Auditors may read the history of a deleted release too.
        """
        if caller.scopes & READ_SCOPES:
            try:
                self.visible_release(queries, access, version)
                return
            except NotFoundError:
                pass
        if may_audit(caller, access) and queries.audit.has_history(release_id):
            return
        raise NotFoundError(RELEASE_NOT_FOUND)


class AuditLog(Resource):
    """GET lists every event of an organization, newest first, with filters."""

    scopes = {"GET": AUDIT_SCOPES}

    @operation("List an organization's events, newest first",
               {200: Response("One page of events", bodies.page(bodies.AUDIT_ITEM),
                              headers=("Link",))},
               query=schemas.AUDIT_QUERY)
    def on_get(self, req: falcon.Request, resp: falcon.Response, org: str) -> None:
        limit = per_page(req)
        cursor, after, before = parse_position_cursor(req)
        with self.services.read("directory", "audit") as queries:
            access = self.access(queries, req, org)
            if not may_audit(req.context.caller, access):
                raise PermissionDeniedError(
                    "Only owners and admins of the organization, superusers and organization"
                    " tokens with org:read may read the audit log."
                )
            where = audit_filter(
                queries,
                access.org_id,
                event_types=req.context.query.get("event") or (),
                actor=req.context.query.get("actor"),
                project=req.context.query.get("project"),
                version=req.context.query.get("version"),
                start=req.context.query.get("start"),
                end=req.context.query.get("end"),
            )
            rows = queries.audit.page(access.org_id, where, after, before, limit + 1)
        page = link_page(req, resp, rows, cursor, limit, _position)
        resp.content_type = falcon.MEDIA_JSON
        resp.data = json_items(page, audit_fields)
