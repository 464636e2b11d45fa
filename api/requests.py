"""Reading and validating request bodies."""

from __future__ import annotations

import json
from typing import Any

import falcon

from domain.commits import check_commits
from domain.dates import parse_datetime
from domain.errors import InvalidFieldError, InvalidRequestError
from domain.release import STATUSES

MAX_REF_LENGTH = 250
MAX_URL_LENGTH = 4096
MAX_PROJECTS = 1000
MAX_SLUG_LENGTH = 100


def read_json(req: falcon.Request, max_bytes: int) -> dict[str, Any]:
    """Return the request's JSON object; 413, 415 or 400 when it is not one."""
    length = req.content_length
    if length is not None and length > max_bytes:
        raise falcon.HTTPContentTooLarge(
            description=f"The request body has {length} bytes; the limit is {max_bytes}."
        )
    raw = req.bounded_stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise falcon.HTTPContentTooLarge(description=f"The request body exceeds {max_bytes} bytes.")
    if not raw.strip():
        return {}
    media_type = (req.content_type or "").split(";")[0].strip().lower()
    if media_type not in ("application/json", ""):
        raise falcon.HTTPUnsupportedMediaType(
            description=f"Send the body as application/json, not {media_type!r}."
        )
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidRequestError(f"The request body is not valid JSON: {error}.") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    return body


def optional_string(body: dict[str, Any], field: str, max_length: int) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidFieldError(field, "Expected a string.")
    if len(value) > max_length:
        raise InvalidFieldError(field, f"Use at most {max_length} characters.")
    return value


def required_string(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if value is None:
        raise InvalidFieldError(field, "This field is required.")
    if not isinstance(value, str):
        raise InvalidFieldError(field, "Expected a string.")
    return value


def project_slugs(body: dict[str, Any], *, required: bool) -> list[str | int]:
    """Return the `projects` list; sentry-cli sends digit-only slugs as numbers."""
    value = body.get("projects")
    if value is None:
        if required:
            raise InvalidFieldError("projects", "This field is required.")
        return []
    if not isinstance(value, list) or len(value) > MAX_PROJECTS:
        raise InvalidFieldError("projects", f"Expected a list of at most {MAX_PROJECTS} slugs.")
    for slug in value:
        if isinstance(slug, bool) or not isinstance(slug, str | int):
            raise InvalidFieldError("projects", "Invalid project slugs")
        if isinstance(slug, str) and len(slug) > MAX_SLUG_LENGTH:
            raise InvalidFieldError("projects", "Invalid project slugs")
    return value


def status(body: dict[str, Any]) -> str | None:
    value = body.get("status")
    if value is None:
        return None
    if value not in STATUSES:
        raise InvalidFieldError("status", f"Invalid status {value!r}: use 'open' or 'archived'.")
    return value


def date(body: dict[str, Any], field: str) -> Any:
    return parse_datetime(field, body.get(field))


def commits(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    value = body.get("commits")
    return None if value is None else check_commits(value)
