"""Reading request bodies and query strings, and validating them against their schemas.

A value that breaks a schema becomes `{"<field>": ["<message>"]}`, the
shape Sentry uses for field errors; a body that is not a JSON object
becomes `{"detail": "..."}`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import falcon
import jsonschema_rs

from api.schemas import NO_NUL, RequestBody, Schema
from domain.dates import parse_datetime
from domain.errors import InvalidFieldError, InvalidRequestError

TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
}
TRUE_VALUES = ("true", "t", "yes", "y", "on", "1")
FALSE_VALUES = ("false", "f", "no", "n", "off", "0")
INTEGER_TEXT = re.compile(r"^-?[0-9]{1,19}$")
# A JSON escape of a UTF-16 surrogate; only such escapes can produce an unpaired one.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

_validators: dict[int, tuple[Schema, jsonschema_rs.Validator]] = {}


def read_json(req: falcon.Request, max_bytes: int) -> dict[str, Any]:
    """Return the request's JSON object; 413, 415 or 400 when it is not one.

    An empty body reads as {}.
    """
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
            description=f"Send the body as application/json, not {media_type[:80]!r}."
        )
    return parse_json(raw)


def parse_json(raw: bytes) -> dict[str, Any]:
    """Parse a UTF-8 JSON object that PostgreSQL can store every string of."""
    try:
        text = raw.decode("utf-8")
        body = json.loads(text)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidRequestError(f"The request body is not valid JSON: {error}.") from None
    except RecursionError:
        raise InvalidRequestError("The request body is not valid JSON: it nests too deeply.")\
            from None
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    if SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequestError(
                "The request body is not valid JSON: it contains an unpaired UTF-16 surrogate."
            ) from None
    return body


def validate(instance: dict[str, Any], request_body: RequestBody) -> dict[str, Any]:
    """Return `instance` if it matches the body's schema, else raise the error for its first fault.

    A field with a domain check gets that check's error when it breaks the
    schema, so its message is the same whichever layer notices.
    """
    validator = _validator(request_body.schema)
    if validator.is_valid(instance):
        return instance
    error = next(iter(validator.iter_errors(instance)))
    path = list(error.instance_path)
    kind = type(error.kind).__name__
    if kind == "Required":
        path.append(error.kind.property)
    field = str(path[0]) if path else "detail"
    check = request_body.checks.get(field)
    if check is not None and field in instance:
        check(instance[field])
    message = _message(kind, error)
    if len(path) > 1:
        message = f"{_where(path)}: {message[0].lower()}{message[1:]}"
    if not path:
        raise InvalidRequestError(message)
    raise InvalidFieldError(field, message)


def read_query(req: falcon.Request, schema: Schema) -> dict[str, Any]:
    """Return the query parameters the schema names, typed, with their defaults filled in.

    A parameter given more than once takes its last value, unless the
    schema makes it a list. Parameters the schema does not name are ignored.
    """
    values: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        raw = req.params.get(name)
        if raw is None:
            continue
        if "array" in _types(prop):
            items = raw if isinstance(raw, list) else [raw]
            values[name] = [_typed(name, item, prop["items"]) for item in items]
        else:
            values[name] = _typed(name, raw[-1] if isinstance(raw, list) else raw, prop)
    validate(values, RequestBody(schema))
    for name, prop in schema["properties"].items():
        if name not in values and "default" in prop:
            values[name] = prop["default"]
    return values


def date(body: Mapping[str, Any], field: str) -> Any:
    return parse_datetime(field, body.get(field))


def _typed(name: str, value: str, prop: Schema) -> Any:
    types = _types(prop)
    if "integer" in types:
        if not INTEGER_TEXT.match(value):
            raise InvalidFieldError(name, "Expected an integer.")
        return int(value)
    if "boolean" in types:
        if value.lower() in TRUE_VALUES:
            return True
        if value.lower() in FALSE_VALUES:
            return False
        raise InvalidFieldError(name, "Expected true or false.")
    return value


def _types(schema: Schema) -> list[str]:
    kind = schema.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def matches(schema: Schema, value: Any) -> bool:
    return _validator(schema).is_valid(value)


def _validator(schema: Schema) -> jsonschema_rs.Validator:
    """Return the compiled validator of a schema; schemas are module constants, compiled once."""
    cached = _validators.get(id(schema))
    if cached is None or cached[0] is not schema:
        cached = (schema, jsonschema_rs.validator_for(schema))
        _validators[id(schema)] = cached
    return cached[1]


def _message(kind: str, error: jsonschema_rs.ValidationError) -> str:
    details = error.kind
    match kind:
        case "Required":
            return "This field is required."
        case "Type":
            names = sorted(map(str, details.types), key=lambda name: name == "null")
            expected = [TYPE_NAMES.get(name, name) for name in names]
            return f"Expected {' or '.join(expected)}."
        case "MaxLength":
            return f"Use at most {details.limit} characters."
        case "MinLength":
            return "This field cannot be empty." if details.limit == 1 else \
                f"Use at least {details.limit} characters."
        case "MaxItems":
            return f"Send at most {details.limit} items."
        case "MinItems":
            return f"Send at least {details.limit} items."
        case "Maximum" | "Minimum":
            return f"{error.message[0].upper()}{error.message[1:]}."
        case "Enum":
            options = ", ".join(json.dumps(option) for option in details.options)
            return f"Invalid value {_shown(error.instance)}: use one of {options}."
        case "Pattern":
            if details.pattern == NO_NUL:
                return "Text cannot contain the character U+0000."
            return f"Invalid value {_shown(error.instance)}: it must match {details.pattern}."
    return f"Invalid value {_shown(error.instance)}: {error.message}."


def _shown(value: Any) -> str:
    return repr(value[:80]) if isinstance(value, str) else json.dumps(value)[:80]


def _where(path: list[str | int]) -> str:
    where = str(path[0])
    for step in path[1:]:
        where += f"[{step}]" if isinstance(step, int) else f".{step}"
    return where
