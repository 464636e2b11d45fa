"""Base class of read models and the helpers their handlers share."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import singledispatchmethod
from typing import Any, ClassVar, TypeVar

import orjson
from eventsourcing.domain import DomainEvent

from domain.dates import format_datetime
from projections.database import Cursor

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
_INDEX_NAME = re.compile(r"\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)",
                         re.IGNORECASE)
Value = TypeVar("Value")


class Projection:
    """A read model: its tables, and one handler per event type it uses.

    `name` is stable and carries a version (`releases_v1`); a change to the
    tables or to what a handler writes gets a new name, so the new model
    can be filled by replay beside the old one. Handlers run inside the
    transaction that also records the projection's position, so each event
    is applied exactly once.
    """

    name: ClassVar[str]
    create_statements: ClassVar[tuple[str, ...]] = ()
    # Per table, columns that no query filters, joins or sorts on. On
    # PostgreSQL the projector's ANALYZE leaves them out.
    unanalyzed_columns: ClassVar[dict[str, frozenset[str]]] = {}
    # Indexes of `create_statements` that only queries read, never a
    # handler. A fill from position zero builds them after its last batch,
    # in one sort each, instead of updating them row by row.
    query_indexes: ClassVar[frozenset[str]] = frozenset()
    # A query of one value that changes whenever the read model's content
    # does, or None. The check of the read models before a read returns it.
    version_query: ClassVar[str | None] = None
    # Event classes whose events never change the read model. A read model
    # behind the ledger by such events alone counts as current for reads.
    ignored_events: ClassVar[tuple[type[DomainEvent], ...]] = ()

    @property
    def tables(self) -> tuple[str, ...]:
        """Names of the tables this projection owns, in creation order."""
        return tuple(
            statement.split("(")[0].split()[-1]
            for statement in self.create_statements
            if statement.lstrip().upper().startswith("CREATE TABLE")
        )

    @property
    def query_index_statements(self) -> tuple[str, ...]:
        """The CREATE INDEX statements of `query_indexes`, in creation order."""
        return tuple(statement for statement in self.create_statements
                     if index_name(statement) in self.query_indexes)

    @singledispatchmethod
    def apply(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        """Apply one event; events without a handler leave the tables unchanged."""

    def begin_batch(self) -> None:
        """Forget the rows cached in the previous batch. The projector calls it before each batch.

        A projection may cache rows it read or wrote while it holds the
        read model's lock. Another process may change them once the lock
        is released, and a rolled-back batch never wrote them.
        """

    def end_batch(self, cursor: Cursor) -> None:
        """Write what the batch's handlers held back. The projector calls it after the last event.

        It runs in the batch's transaction, before the read model's new
        position is recorded, so rows held back are committed with it.
        """


class PendingRows:
    """Rows to append to one table, held until the end of the batch and sent in one stream.

    Sending a batch's rows together costs a few microseconds per row
    where one INSERT per row costs over ten. Only tables whose rows are
    never updated, read or deleted by a later event of the same batch
    may be held back, unless the handler reads `rows` as well.
    """

    def __init__(self, table: str, columns: Sequence[str]) -> None:
        self.table = table
        self.columns = tuple(columns)
        self.rows: list[tuple[Any, ...]] = []

    def add(self, *row: Any) -> None:
        self.rows.append(row)

    def flush(self, cursor: Cursor) -> None:
        if self.rows:
            cursor.copy_rows(self.table, self.columns, self.rows)
            self.rows = []

    def clear(self) -> None:
        self.rows = []


class RecentCache(dict[str, Value]):
    """A cache of values that never go stale, emptied whenever it reaches `limit` entries.

    Emptying it all at once bounds its memory at little cost, because a read
    model mostly meets the keys of recent events again.
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key: str, value: Value) -> Value:
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value


def events_of(aggregate: type) -> tuple[type[DomainEvent], ...]:
    """Return the event classes that `aggregate` defines itself."""
    return tuple(value for value in vars(aggregate).values()
                 if isinstance(value, type) and issubclass(value, DomainEvent))


def index_name(statement: str) -> str | None:
    """Return the name of the index a CREATE INDEX statement creates, else None."""
    match = _INDEX_NAME.match(statement)
    return None if match is None else match.group(1)


def to_micros(value: datetime | None) -> int | None:
    """Return microseconds since the epoch, the stored form of sort keys."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - EPOCH) // MICROSECOND


def to_text(value: datetime | None) -> str | None:
    """Return a datetime in the one stored and served format: UTC, microseconds, `Z`."""
    return None if value is None else format_datetime(value)


# json.dumps builds a new encoder on every call that passes options, so the
# fallback encoder is made once.
_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str)
# Datetimes and dataclasses go to `default` as with the standard library,
# where orjson would write them in formats of its own.
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def to_json(value: Any) -> str:
    """Return compact JSON with sorted keys, writing unknown types as their str().

    orjson does this several times faster than the standard library. What
    orjson rejects goes to the standard library: integers beyond 64 bits,
    keys that are not strings, and lone surrogates, which it escapes.
    """
    try:
        return orjson.dumps(value, default=str, option=_ORJSON_OPTIONS).decode()
    except TypeError:
        return _ENCODER.encode(value)
