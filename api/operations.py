"""The `@operation` decorator: what a responder accepts and returns, checked and documented.

The decorator validates the path parameters, the query string and a JSON
body against the schemas it names before the responder runs, and leaves
the results in `req.context.query` and `req.context.body`. The OpenAPI
document (`api.openapi`) is built from the same declarations.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import falcon

from api.requests import matches, read_json, read_query, validate
from api.schemas import PATH_PARAMETERS, RequestBody, Schema

JSON = "application/json"


@dataclass(frozen=True)
class Response:
    """A documented response: its description, and the schema and type of its body, if any."""

    description: str
    schema: Schema | None = None
    media_type: str = JSON
    headers: tuple[str, ...] = ()
    alternatives: Mapping[str, Schema] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    """What one responder accepts and returns.

    `large_body` selects LEDGER_MAX_RELEASE_BODY_BYTES over
    LEDGER_MAX_BODY_BYTES. Bodies of other media types, and JSON bodies
    with `reads_body` false, are read and checked by the responder.
    """

    summary: str
    responses: Mapping[int, Response]
    query: Schema | None = None
    bodies: tuple[RequestBody, ...] = ()
    large_body: bool = False
    reads_body: bool = True
    public: bool = False
    errors: tuple[int, ...] = ()
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


def operation(
    summary: str,
    responses: Mapping[int, Response | Schema | None],
    *,
    query: Schema | None = None,
    body: RequestBody | tuple[RequestBody, ...] | None = None,
    large_body: bool = False,
    reads_body: bool = True,
    public: bool = False,
    errors: tuple[int, ...] | None = None,
    description: str = "",
    tags: tuple[str, ...] = (),
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Declare a responder's inputs and responses; see the module docstring.

    `responses` maps success statuses to a Response, or to a JSON schema,
    or to None for no body. Without `errors`, the error statuses follow
    from the rest: 401, 403 and 404 unless public; 400 with a query or
    body; 413 and 415 with a body; 400 and 409 for writes; 503 always.
    """
    bodies = () if body is None else (body if isinstance(body, tuple) else (body,))

    def decorate(responder: Callable[..., None]) -> Callable[..., None]:
        writes = not responder.__name__.startswith("on_get")
        declared = Operation(
            summary=summary,
            responses={status: _response(status, value) for status, value in responses.items()},
            query=query,
            bodies=bodies,
            large_body=large_body,
            reads_body=reads_body,
            public=public,
            errors=errors if errors is not None else _errors(public, query, bodies, writes),
            description=description,
            tags=tags,
        )

        @functools.wraps(responder)
        def checked(resource: Any, req: falcon.Request, resp: falcon.Response, **params: Any
                    ) -> None:
            check_path(params)
            req.context.query = read_query(req, declared.query) if declared.query else {}
            with collector_paused(req.content_length):
                req.context.body = _read_body(resource, req, declared)
                responder(resource, req, resp, **params)

        checked.operation = declared  # type: ignore[attr-defined]
        return checked

    return decorate


# The body size from which a request is served with the cyclic garbage
# collector paused. 1 MiB of JSON is about 3,500 commits of 300 bytes.
LARGE_BODY_BYTES = 1 << 20


@contextmanager
def collector_paused(content_length: int | None) -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a request with a large body is served.

    Each full collection walks every live object, so a 100,000-commit PUT
    spent a quarter of its time in the collector, a larger share than a
    10,000-commit one. Reference counting still frees the request's
    objects as they go; cycles wait for the next collection after it.
    """
    if content_length is None or content_length < LARGE_BODY_BYTES or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def check_path(params: Mapping[str, Any]) -> None:
    """Raise the parameter's own error for a path value that cannot name anything."""
    for name, value in params.items():
        parameter = PATH_PARAMETERS.get(name)
        if parameter is not None and not matches(parameter.schema, value):
            raise parameter.error()


def _read_body(resource: Any, req: falcon.Request, declared: Operation) -> dict[str, Any]:
    json_bodies = [body for body in declared.bodies if body.media_type == JSON]
    if not json_bodies or not declared.reads_body:
        return {}
    settings = resource.services.settings
    limit = settings.max_release_body_bytes if declared.large_body else settings.max_body_bytes
    return validate(read_json(req, limit), json_bodies[0])


def _response(status: int, value: Response | Schema | None) -> Response:
    if isinstance(value, Response):
        return value
    description = {200: "OK", 201: "Created", 204: "No content",
                   208: "Already exists; the body is the same as for 201"}.get(status, "OK")
    return Response(description, value)


def _errors(public: bool, query: Schema | None, bodies: tuple[RequestBody, ...], writes: bool
            ) -> tuple[int, ...]:
    statuses = {404, 503}
    if not public:
        statuses |= {401, 403}
    if query or bodies:
        statuses.add(400)
    if bodies:
        statuses |= {413, 415}
    if writes:
        statuses |= {400, 409}
    return tuple(sorted(statuses))
