"""Request ids and access logging."""

from __future__ import annotations

import logging
import re
import time
import uuid

import falcon

from api.logs import current_request_id

logger = logging.getLogger("api.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestIdMiddleware:
    """Take the request id from X-Request-ID, or make one, and return it in the response."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.get_header("X-Request-ID") or ""
        req.context.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        req.context.started = time.perf_counter()
        req.context.log_context = current_request_id.set(req.context.request_id)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        request_id = getattr(req.context, "request_id", None) or uuid.uuid4().hex
        resp.set_header("X-Request-ID", request_id)
        if resp.status_code == 204:
            # A 204 carries no body, so it carries no Content-Type either.
            resp.content_type = None
        elif (
            resp.stream is None
            and not getattr(resp.context, "keep_content_type", False)
            and (resp.content_type is None or resp.content_type.startswith("text/"))
        ):
            # Streamed bodies such as downloads keep their type, and so does
            # a resource that sets keep_content_type (GET /metrics serves text).
            resp.content_type = falcon.MEDIA_JSON
        elapsed = time.perf_counter() - getattr(req.context, "started", time.perf_counter())
        logger.info(
            "request",
            extra={
                "request_id": request_id,
                "method": req.method,
                "path": req.path,
                "status": resp.status_code,
                "duration_ms": round(elapsed * 1000, 1),
            },
        )
        log_context = getattr(req.context, "log_context", None)
        if log_context is not None:
            current_request_id.reset(log_context)
