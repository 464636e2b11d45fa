"""Names and data of events as the audit log and release histories serve them.

An event's type is its aggregate and event class in snake case, such as
`release.commits_set` or `api_token.created`, so new events get a type
without a table to maintain. Its data is every field of the event except
the ones every event has, under API names. Fields named `*_id` and
`*_ids` hold aggregate ids, as UUIDs or as their text; those are replaced
by public ids where they are known.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from functools import cache, lru_cache
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEvent

from projections.projection import to_text

EVENT_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
COMMON_FIELDS = frozenset(
    {"originator_id", "originator_version", "originator_topic", "timestamp", "cause"}
)
RENAMED_FIELDS = {"version_str": "version", "org_id": "organization"}
# Values served as they are, checked first because most values are of these types.
_PLAIN = frozenset({str, int, float, bool})
# Field names whose properties are kept. Dict fields may carry names a
# client chose, so the caches are bounded.
_CACHED_FIELDS = 4096
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@lru_cache(maxsize=4096)
def id_text(value: UUID | str) -> str:
    """Return the text of an aggregate id.

    UUID.__str__ is written in Python, and a replay turns each event's
    ids into text several times, so the text of recent ids is kept. An
    entry takes about 350 bytes, and 65,536 of them raised the peak memory
    of a replay of 1,000,000 events from 50 to 73 MiB.
    """
    return str(value)


@lru_cache(maxsize=_CACHED_FIELDS)
def is_secret(field: str) -> bool:
    """Tell whether a field contains a secret or a value that works like one.

    A token's hash finds the token as surely as its secret, so neither is
    ever served.
    """
    return "secret" in field or field.endswith("hash") or field.endswith("token")


def snake_case(name: str) -> str:
    return _CAMEL_BOUNDARY.sub("_", name).lower()


def aggregate_kind(event: DomainEvent) -> str:
    """Return the snake-case name of the aggregate class that recorded `event`."""
    return _kind_name(type(event))


@cache
def _kind_name(event_class: type) -> str:
    return snake_case(event_class.__qualname__.split(".")[0])


def event_type(event: DomainEvent) -> str:
    return _type_name(type(event))


@cache
def _type_name(event_class: type) -> str:
    aggregate, _, name = event_class.__qualname__.rpartition(".")
    return f"{snake_case(aggregate.split('.')[0])}.{snake_case(name)}"


def api_name(field: str) -> str:
    """Return the API name of an event field: `owner_id` is `owner`, `project_ids` `projects`."""
    if field in RENAMED_FIELDS:
        return RENAMED_FIELDS[field]
    if field.endswith("_ids"):
        field = field[: -len("_ids")] + "s"
    elif field.endswith("_id"):
        field = field[: -len("_id")]
    head, *rest = field.split("_")
    return head + "".join(word.capitalize() for word in rest)


def event_fields(event: DomainEvent) -> dict[str, Any]:
    """Return the fields particular to `event`, secrets left out."""
    return {
        name: value
        for name, value in vars(event).items()
        if name not in COMMON_FIELDS and not is_secret(name)
    }


@lru_cache(maxsize=_CACHED_FIELDS)
def is_reference(field: str) -> bool:
    return field.endswith(("_id", "_ids"))


def referenced_ids(fields: Mapping[str, Any]) -> set[str]:
    """Return the text of every aggregate id that the reference fields hold."""
    ids: set[str] = set()
    for name, value in fields.items():
        if is_reference(name):
            _add_ids(ids, value)
    return ids


def _add_ids(ids: set[str], value: Any) -> None:
    """Add the text of the aggregate ids in one reference field's value to `ids`."""
    values = value if isinstance(value, (list, tuple)) else [value]
    ids.update(id_text(item) for item in values if isinstance(item, (UUID, str)))


def render(value: Any, public_ids: Mapping[str, str], *, reference: bool = False) -> Any:
    """Return a field value as JSON data: public ids, RFC 3339 datetimes, API names."""
    if not reference and (value is None or type(value) in _PLAIN):
        return value
    if reference and isinstance(value, (UUID, str)):
        text = id_text(value)
        return public_ids.get(text, text)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return to_text(value)
    if isinstance(value, (list, tuple)):
        return [render(item, public_ids, reference=reference) for item in value]
    if isinstance(value, dict):
        return _render_fields(value, public_ids, skip_secrets=True)
    return value


def _render_fields(
    fields: Mapping[str, Any], public_ids: Mapping[str, str], *, skip_secrets: bool
) -> dict[str, Any]:
    """Render each field under its API name, calling `render` only for values that need it.

    Most fields of most events are strings, numbers or None, and a replay
    renders every event, so the common case costs a lookup and a test.
    """
    rendered = {}
    for field, value in fields.items():
        name, secret, is_ref = _key_plan(field)
        if secret and skip_secrets:
            continue
        if not is_ref and (value is None or type(value) in _PLAIN):
            rendered[name] = value
        else:
            rendered[name] = render(value, public_ids, reference=is_ref)
    return rendered


@lru_cache(maxsize=_CACHED_FIELDS)
def _key_plan(field: str) -> tuple[str, bool, bool]:
    """Return a field's API name and whether it is secret and a reference, computed once."""
    return api_name(field), is_secret(field), is_reference(field)


def event_data(fields: Mapping[str, Any], public_ids: Mapping[str, str]) -> dict[str, Any]:
    """Render an event's fields, as `event_fields` returns them, as JSON data."""
    return _render_fields(fields, public_ids, skip_secrets=False)


class EventShape:
    """The fields of one kind of event that the audit log serves, worked out once.

    `fields` lists each served attribute with its API name and whether it
    is a reference, and `references` the attributes that are. A replay
    meets a few dozen shapes, one per event class, so an event's data is
    rendered and its references found without testing each attribute's
    name again.
    """

    __slots__ = ("fields", "references")

    def __init__(self, attributes: tuple[str, ...]) -> None:
        served = [name for name in attributes if name not in COMMON_FIELDS and not is_secret(name)]
        self.fields = tuple((name, api_name(name), is_reference(name)) for name in served)
        self.references = tuple(name for name in served if is_reference(name))

    def referenced_ids(self, values: Mapping[str, Any]) -> set[str]:
        """Return the text of every aggregate id in the reference fields of `values`."""
        ids: set[str] = set()
        for name in self.references:
            _add_ids(ids, values[name])
        return ids

    def render(self, values: Mapping[str, Any], public_ids: Mapping[str, str]) -> dict[str, Any]:
        """Return the data of an event with attributes `values`, as `event_data` renders it."""
        rendered = {}
        for attribute, name, reference in self.fields:
            value = values[attribute]
            if not reference and (value is None or type(value) in _PLAIN):
                rendered[name] = value
            else:
                rendered[name] = render(value, public_ids, reference=reference)
        return rendered


def event_shape(event: DomainEvent) -> EventShape:
    """Return the shape of `event`, kept per event class and set of attributes."""
    return _shape(type(event), tuple(vars(event)))


@lru_cache(maxsize=_CACHED_FIELDS)
def _shape(event_class: type, attributes: tuple[str, ...]) -> EventShape:
    return EventShape(attributes)
