"""The OpenAPI 3.1 document of the API, built from the app's routes and their `@operation`s.

Every responder of every route must be declared with `@operation`, so
building the document fails for a route that is not described.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
from typing import Any

import falcon

from api import response_schemas as bodies
from api.operations import Operation, Response, operation
from api.schemas import PATH_PARAMETERS, Schema

TITLE = "Release Ledger"
PARAMETER = re.compile(r"{(\w+)(?::\w+)?}")
ERROR_DESCRIPTIONS = {
    400: "The request is invalid: a field error or a detail.",
    401: "No valid token: missing, unknown or revoked.",
    403: "The token lacks the scope, or the caller the role, for this request.",
    404: "Not found, or not visible to the caller.",
    409: "A conflicting record exists, or concurrent writes won every retry; safe to retry.",
    411: "The upload has no Content-Length.",
    413: "The body exceeds its limit.",
    415: "The body has another media type than this operation takes.",
    503: "The database is unavailable or the read models are behind; retry after Retry-After.",
}
HEADERS: dict[str, Schema] = {
    "Link": {"description": "Sentry's pagination: rel previous and next, with results and"
             " cursor.", "schema": {"type": "string"}},
    "Location": {"description": "The path of what was created.", "schema": {"type": "string"}},
    "X-Ledger-Position": {"description": "Ledger position of the last event this write"
                          " recorded.", "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}},
}
METHODS = ("GET", "POST", "PUT", "DELETE")
# gunicorn sends this response itself, before the app runs, as an HTML page.
URI_TOO_LONG = {
    "description": "The request line exceeds gunicorn's limit_request_line (8190 bytes).",
    "content": {"text/html": {"schema": {"type": "string"}}},
}


class OpenApiDocument:
    """GET /api/0/openapi.json: the document, built once per process."""

    def __init__(self, app: falcon.App) -> None:
        self.app = app
        self._document: dict[str, Any] | None = None

    @operation("This OpenAPI document", {200: bodies.OPENAPI_DOCUMENT}, public=True,
               errors=())
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._document is None:
            self._document = build_document(self.app)
        resp.media = self._document


def build_document(app: falcon.App) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for template, method, resource, responder in routes(app):
        declared = getattr(responder, "operation", None)
        if not isinstance(declared, Operation):
            raise TypeError(f"{method} {template} has no @operation declaration.")
        path = PARAMETER.sub(r"{\1}", template)
        scopes = sorted(getattr(resource, "scopes", {}).get(method, ()))
        operation_id = f"{type(resource).__name__}.{responder.__name__}"
        paths.setdefault(path, {})[method.lower()] = _operation(
            template, declared, scopes, operation_id
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": "0",
            "description": "Sentry's release API, served from an append-only ledger."
            " Error bodies are {\"detail\": \"...\"} or, for an invalid field,"
            " {\"<field>\": [\"...\"]}. JSON bodies are limited to LEDGER_MAX_BODY_BYTES"
            " (default 1 MiB), release creates and updates to"
            " LEDGER_MAX_RELEASE_BODY_BYTES (default 16 MiB), file uploads to"
            " LEDGER_MAX_FILE_BYTES (default 40 MiB).",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer",
                          "description": "An API token from `release-ledger token create`."},
            },
        },
    }


def routes(app: falcon.App) -> Iterator[tuple[str, str, Any, Any]]:
    """Yield the URI template, method, resource and responder of every route.

    NOTE: this walks the nodes of Falcon's CompiledRouter, as falcon.inspect
    does, because Falcon 4 offers no public way to reach a route's resource.
    """
    def walk(nodes: list[Any], parent: str) -> Iterator[tuple[str, str, Any, Any]]:
        for node in nodes:
            path = f"{parent}/{node.raw_segment}"
            if node.resource is not None:
                for method, responder in sorted(node.method_map.items()):
                    function = responder.func if isinstance(responder, partial) else responder
                    if method in METHODS and not _internal(function):
                        yield path, method, node.resource, responder
            yield from walk(node.children or [], path)

    yield from walk(app._router._roots, "")


def _internal(function: Any) -> bool:
    return getattr(function, "__module__", "").startswith("falcon.")


def _operation(template: str, declared: Operation, scopes: list[str], operation_id: str
               ) -> dict[str, Any]:
    description = declared.description
    if scopes:
        description = (description + " " if description else "") + (
            "Token scopes that allow it: " + ", ".join(scopes) + "."
        )
    parameters = _parameters(template, declared)
    responses = _responses(declared)
    if parameters:
        responses["414"] = URI_TOO_LONG
    result: dict[str, Any] = {
        "operationId": operation_id,
        "summary": declared.summary,
        "parameters": parameters,
        "responses": dict(sorted(responses.items())),
    }
    if description:
        result["description"] = description
    if not declared.public:
        result["security"] = [{"token": []}]
    if declared.bodies:
        result["requestBody"] = {
            "required": True,
            "content": {body.media_type: {"schema": body.schema} for body in declared.bodies},
        }
    return result


def _parameters(template: str, declared: Operation) -> list[dict[str, Any]]:
    parameters = [
        {"name": name, "in": "path", "required": True,
         "schema": PATH_PARAMETERS[name].schema}
        for name in PARAMETER.findall(template)
    ]
    query = declared.query or {"properties": {}}
    for name, schema in query["properties"].items():
        parameter = {"name": name, "in": "query", "required": False, "schema": schema}
        if schema.get("type") in ("array", ["array", "null"]):
            parameter.update(style="form", explode=True)
        parameters.append(parameter)
    return parameters


def _responses(declared: Operation) -> dict[str, Any]:
    responses = {str(status): _response(response) for status, response in
                 declared.responses.items()}
    for status in declared.errors:
        schema = bodies.BAD_REQUEST if status == 400 else bodies.ERROR
        headers = ("Retry-After",) if status == 503 else ()
        responses[str(status)] = _response(
            Response(ERROR_DESCRIPTIONS[status], schema, headers=headers)
        )
    return dict(sorted(responses.items()))


def _response(response: Response) -> dict[str, Any]:
    result: dict[str, Any] = {"description": response.description}
    if response.schema is not None:
        result["content"] = {
            response.media_type: {"schema": response.schema},
            **{media_type: {"schema": schema}
               for media_type, schema in response.alternatives.items()},
        }
    if response.headers:
        result["headers"] = {name: HEADERS[name] for name in response.headers}
    return result

