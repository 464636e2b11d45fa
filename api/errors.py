"""Translation of errors into JSON responses, registered once by the app factory.

Every error body has the shape `{"detail": "..."}`, except field
validation errors, which have Sentry's `{"<field>": ["..."]}`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon
import psycopg.errors

from api.services import ReadModelFailedError
from domain.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidFieldError,
    InvalidRequestError,
    LedgerError,
    NotFoundError,
    PermissionDeniedError,
    ReferencedError,
)
from projections.database import UNAVAILABLE_ERRORS
from projections.projector import CatchUpTimeoutError

logger = logging.getLogger("api")

STATUS_BY_ERROR: dict[type[LedgerError], str] = {
    NotFoundError: falcon.HTTP_404,
    AlreadyExistsError: falcon.HTTP_409,
    ConflictError: falcon.HTTP_409,
    InvalidRequestError: falcon.HTTP_400,
    PermissionDeniedError: falcon.HTTP_403,
    ReferencedError: falcon.HTTP_400,
}
RETRY_AFTER_SECONDS = 2
RESULT_HEADERS = ("Link", "Location", "X-Ledger-Position")


def register_error_handlers(app: falcon.App) -> None:
    app.set_error_serializer(serialize_http_error)
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(LedgerError, handle_ledger_error)
    for error_class in UNAVAILABLE_ERRORS:
        app.add_error_handler(error_class, handle_unavailable)
    app.add_error_handler(CatchUpTimeoutError, handle_catch_up_timeout)
    app.add_error_handler(ReadModelFailedError, handle_read_model_failed)
    app.add_error_handler(psycopg.errors.UndefinedTable, handle_missing_table)


def serialize_http_error(
    req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError
) -> None:
    detail = error.description or (error.title or "Request failed.").split(" ", 1)[-1] + "."
    _write(resp, {"detail": detail})


def handle_ledger_error(
    req: falcon.Request, resp: falcon.Response, error: LedgerError, params: dict[str, Any]
) -> None:
    if isinstance(error, InvalidFieldError):
        resp.status = falcon.HTTP_400
        _write(resp, {error.field: [error.message]})
        return
    resp.status = STATUS_BY_ERROR.get(type(error), falcon.HTTP_400)
    _write(resp, {"detail": str(error)})


def handle_unavailable(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: dict[str, Any]
) -> None:
    logger.warning(
        "database unavailable",
        extra={"request_id": _request_id(req), "error": f"{type(error).__name__}: {error}"},
    )
    _unavailable(resp, "The database is unavailable; retry shortly.")


def handle_catch_up_timeout(
    req: falcon.Request, resp: falcon.Response, error: CatchUpTimeoutError, params: dict[str, Any]
) -> None:
    logger.warning(
        "read models behind",
        extra={"request_id": _request_id(req), "read_model": error.name,
               "position": error.position, "target": error.target},
    )
    _unavailable(resp, f"{error} Retry shortly.")


def handle_read_model_failed(
    req: falcon.Request, resp: falcon.Response, error: ReadModelFailedError,
    params: dict[str, Any],
) -> None:
    """Respond 503 naming the read model and event that failed, which the operator must fix."""
    cause = error.__cause__
    logger.error("read model failed during a request", extra={
        "request_id": _request_id(req), "read_model_error": str(error),
        "error": f"{type(cause).__name__}: {cause}" if cause else None,
    })
    _unavailable(resp, f"{error} An operator can see the failure with 'release-ledger"
                       " projections list'.")


def handle_missing_table(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: dict[str, Any]
) -> None:
    """Respond 503 when this version reads a table that the database does not have yet.

    That happens when new code serves before `release-ledger migrate` has
    created its read models' tables, as in a deploy without the release step.
    """
    logger.error(
        "table missing; run release-ledger migrate",
        extra={"request_id": _request_id(req), "error": str(error).splitlines()[0]},
    )
    _unavailable(resp, "The database lacks tables this version reads; an operator must run"
                       " 'release-ledger migrate'.")


def handle_unexpected(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: dict[str, Any]
) -> None:
    logger.exception("request failed", extra={"request_id": _request_id(req)})
    _discard_result_headers(resp)
    resp.status = falcon.HTTP_500
    _write(resp, {"detail": f"Internal server error; request id {_request_id(req)}."})


def _unavailable(resp: falcon.Response, detail: str) -> None:
    _discard_result_headers(resp)
    resp.status = falcon.HTTP_503
    resp.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
    _write(resp, {"detail": detail})


def _discard_result_headers(resp: falcon.Response) -> None:
    """Remove headers a resource set before failing; they describe a result not sent."""
    for name in RESULT_HEADERS:
        resp.delete_header(name)


def _write(resp: falcon.Response, body: dict[str, Any]) -> None:
    resp.content_type = falcon.MEDIA_JSON
    resp.data = json.dumps(body).encode()


def _request_id(req: falcon.Request) -> str:
    return getattr(req.context, "request_id", "-")
