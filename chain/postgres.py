"""The PostgreSQL application recorder that keeps the hash chain.

api.event_store combines it with bounded retries into the recorder the service uses.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import PersistenceError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier, Literal

from chain.arrays import BigintArray, ByteaArray, EncodedArray, TextArray, UUIDArray
from chain.links import CHAIN_TABLE, Link, RecordedEvent, link_row, originator_text
from chain.persistence import ChainRecorder

logger = logging.getLogger(__name__)

LINK_COLUMNS = SQL("position, previous_position, originator_id, originator_version, hash")
APPEND_FUNCTION = "ledger_append_events"
# The error code the append function raises when the chain has no head but
# the ledger has events. The service then links those events in Python.
UNLINKED_EVENTS_SQLSTATE = "LCH01"
UNDEFINED_FUNCTION_SQLSTATE = "42883"
# An append whose states add up to this many bytes is large. libpq's send
# buffer grows to hold it and keeps that size until its connection closes,
# so such a connection is closed rather than kept in the pool.
LARGE_MESSAGE_BYTES = 1024 * 1024
# A large append of up to this many events sends each state as a parameter
# of its own.
FEW_EVENTS = 8

# The function that inserts events and links them, under the table lock and
# in one statement, with the hashes of chain.links. Each part of an event's
# canonical bytes follows its length, which int8send writes as 8 big-endian bytes.
CREATE_APPEND_FUNCTION = """
CREATE OR REPLACE FUNCTION {function}(
    originator_ids {id_type}[], originator_versions bigint[], topics text[],
    states bytea[], lock_timeout text
) RETURNS SETOF bigint LANGUAGE plpgsql AS $body$
DECLARE
    previous_position bigint;
    previous_digest bytea;
    new_position bigint;
    id_text text;
    id_bytes bytea;
    version_text text;
    topic_bytes bytea;
    canonical bytea;
BEGIN
    PERFORM set_config('lock_timeout', lock_timeout, true);
    LOCK TABLE {events} IN EXCLUSIVE MODE;
    NOTIFY {channel};

    SELECT c.position, decode(c.hash, 'hex') INTO previous_position, previous_digest
    FROM {chain} AS c ORDER BY c.position DESC LIMIT 1;
    IF previous_position IS NULL THEN
        IF EXISTS (SELECT 1 FROM {events}) THEN
            RAISE EXCEPTION 'Events without links found; run release-ledger migrate.'
                USING ERRCODE = '{unlinked}';
        END IF;
        previous_position := 0;
        previous_digest := decode(repeat('0', 64), 'hex');
    END IF;

    FOR i IN 1 .. cardinality(originator_ids) LOOP
        INSERT INTO {events} (originator_id, originator_version, topic, state)
        VALUES (originator_ids[i], originator_versions[i], topics[i], states[i])
        RETURNING notification_id INTO new_position;
        -- Positions and versions are digits, one byte each in every encoding.
        id_text := originator_ids[i]::text;
        id_bytes := convert_to(id_text, 'UTF8');
        version_text := originator_versions[i]::text;
        topic_bytes := convert_to(topics[i], 'UTF8');
        canonical := int8send(octet_length(new_position::text)::bigint)
            || convert_to(new_position::text, 'UTF8')
            || int8send(length(id_bytes)::bigint) || id_bytes
            || int8send(octet_length(version_text)::bigint) || convert_to(version_text, 'UTF8')
            || int8send(length(topic_bytes)::bigint) || topic_bytes
            || int8send(length(states[i])::bigint) || states[i];
        previous_digest := sha256(previous_digest || canonical);
        INSERT INTO {chain} (position, previous_position, originator_id, originator_version, hash)
        VALUES (new_position, previous_position, id_text, originator_versions[i],
                encode(previous_digest, 'hex'));
        previous_position := new_position;
        RETURN NEXT new_position;
    END LOOP;
END
$body$
"""


class ChainedPostgresApplicationRecorder(PostgresApplicationRecorder, ChainRecorder):
    """Records events and their links in one transaction, under the events table lock."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.chain_table = SQL("{0}.{1}").format(
            Identifier(self.datastore.schema), Identifier(CHAIN_TABLE)
        )
        self.events_table = SQL("{0}.{1}").format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name)
        )
        self.sql_create_statements.append(self._format(
            "CREATE TABLE IF NOT EXISTS {chain} (position bigint PRIMARY KEY,"
            " previous_position bigint NOT NULL, originator_id text NOT NULL,"
            " originator_version bigint NOT NULL, hash text NOT NULL,"
            " UNIQUE (originator_id, originator_version))"
        ))
        self.append_function = SQL("{0}.{1}").format(
            Identifier(self.datastore.schema), Identifier(APPEND_FUNCTION)
        )
        self.sql_create_statements.append(SQL(CREATE_APPEND_FUNCTION).format(
            function=self.append_function,
            id_type=SQL(self.datastore.originator_id_type),
            events=self.events_table,
            chain=self.chain_table,
            channel=Identifier(self.channel_name),
            unlinked=SQL(UNLINKED_EVENTS_SQLSTATE),
        ))
        # Rendered to text once, because psycopg renders a composed statement on every execute.
        self.append_statement = SQL(
            "SELECT position FROM {0}(%b::{1}[], %b::bigint[], %b, %b, %b) AS position"
        ).format(self.append_function, SQL(self.datastore.originator_id_type)).as_string(None)
        # With one state parameter per event, the driver sends each state
        # as it is, where an array parameter is first copied into one
        # buffer: 27 MiB more for a list of 100,000 commits.
        self.append_few_statements = [
            SQL(
                "SELECT position FROM {0}(%b::{1}[], %b::bigint[], %b, ARRAY[{2}], %b)"
                " AS position"
            ).format(self.append_function, SQL(self.datastore.originator_id_type),
                     SQL(", ").join([SQL("%b::bytea")] * count)).as_string(None)
            for count in range(1, FEW_EVENTS + 1)
        ]

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any
                      ) -> Sequence[int] | None:
        return self.append_events(stored_events, **kwargs)

    def append_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any
                      ) -> Sequence[int] | None:
        """Insert and link events in one round trip; return their positions.

        Falls back to the library's transaction, which links in Python,
        when the database lacks the append function (tables created by an
        earlier version and not migrated yet) or when the chain has no head
        but the ledger has events.
        """
        if not stored_events:
            return []
        if self.datastore.originator_id_type == "uuid":
            originator_ids: EncodedArray | TextArray = UUIDArray(
                [e.originator_id for e in stored_events])
        else:
            originator_ids = TextArray([str(e.originator_id) for e in stored_events])
        identities = (
            originator_ids,
            BigintArray([e.originator_version for e in stored_events]),
            TextArray([e.topic for e in stored_events]),
        )
        lock_timeout = f"{self.datastore.lock_timeout}s"
        large = sum(len(e.state) for e in stored_events) >= LARGE_MESSAGE_BYTES
        if large and len(stored_events) <= FEW_EVENTS:
            statement = self.append_few_statements[len(stored_events) - 1]
            params = (*identities, *[e.state for e in stored_events], lock_timeout)
        else:
            statement = self.append_statement
            params = (*identities, ByteaArray([e.state for e in stored_events]), lock_timeout)
        try:
            with self.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(statement, params, prepare=True)
                positions = [row["position"] for row in curs.fetchall()]
                if large:
                    # The append is committed, and the pool replaces the closed connection.
                    conn.close()
                return positions
        except PersistenceError as error:
            sqlstate = _sqlstate(error)
            if sqlstate not in (UNLINKED_EVENTS_SQLSTATE, UNDEFINED_FUNCTION_SQLSTATE):
                raise
            logger.warning(
                "append function failed; linking in Python, run release-ledger migrate",
                extra={"sqlstate": sqlstate, "error": str(error).splitlines()[0]},
            )
        return _library_insert_events(self, stored_events, **kwargs)

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # This runs after the inserts, in their transaction, which keeps the
        # EXCLUSIVE lock on the events table until it commits, so no other
        # writer can append an event or a link in between.
        positions = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if positions:
            try:
                self._append_links(curs, self._recorded(curs, positions, stored_events))
            except BaseException as error:
                _abort_transaction(curs, error)
                raise
        return positions

    def _recorded(
        self, curs: Cursor[DictRow], positions: Sequence[int], stored_events: Sequence[StoredEvent]
    ) -> list[RecordedEvent]:
        """Pair each position with its event by reading back which event is stored there.

        The positions come from RETURNING, whose order PostgreSQL does not
        promise, so each is matched on the originator id and version. A
        single event needs no matching, which saves a round trip on most
        appends.
        """
        if len(positions) == 1 and len(stored_events) == 1:
            event = stored_events[0]
            return [RecordedEvent(
                positions[0], originator_text(event.originator_id), event.originator_version,
                event.topic, event.state,
            )]
        curs.execute(
            self._format("SELECT notification_id, originator_id, originator_version"
                         " FROM {events} WHERE notification_id = ANY(%s)"),
            (list(positions),),
        )
        by_identity = {
            (originator_text(e.originator_id), e.originator_version): e for e in stored_events
        }
        recorded = []
        for row in curs.fetchall():
            identity = (originator_text(row["originator_id"]), row["originator_version"])
            event = by_identity[identity]
            recorded.append(RecordedEvent(
                row["notification_id"], identity[0], identity[1], event.topic, event.state
            ))
        return recorded

    def select_links(self, start: int, limit: int, stop: int) -> list[Link]:
        return self._select_links(
            "WHERE position > %s AND position <= %s ORDER BY position LIMIT %s",
            (start, stop, limit),
        )

    def select_recorded(self, start: int, limit: int, stop: int) -> list[RecordedEvent]:
        with self.datastore.transaction(commit=False) as curs:
            return self._select_recorded(curs, start, stop + 1, limit)

    def select_link_of(self, originator_id: str, originator_version: int) -> Link | None:
        links = self._select_links(
            "WHERE originator_id = %s AND originator_version = %s",
            (originator_id, originator_version),
        )
        return links[0] if links else None

    def select_position_of(self, originator_id: str, originator_version: int) -> int | None:
        stored_id = self._stored_originator_id(originator_id)
        if stored_id is None:
            return None
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                self._format("SELECT notification_id FROM {events}"
                             " WHERE originator_id = %s AND originator_version = %s"),
                (stored_id, originator_version),
            )
            row = curs.fetchone()
        return None if row is None else row["notification_id"]

    def max_link_position(self) -> int | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._format("SELECT MAX(position) AS position FROM {chain}"))
            row = curs.fetchone()
        return None if row is None else row["position"]

    def chain_earlier_events(self) -> int:
        with self.datastore.transaction(commit=True) as curs:
            self._lock_table(curs)
            if self._select_head(curs) is not None:
                return 0
            _, count = self._link_unlinked(curs, before=None)
            return count

    def _select_links(self, condition: str, params: Sequence[Any]) -> list[Link]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                self._format("SELECT {columns} FROM {chain} " + condition), tuple(params)
            )
            return [Link(**row) for row in curs.fetchall()]

    def _select_head(self, cursor: Cursor[DictRow]) -> Link | None:
        cursor.execute(
            self._format("SELECT {columns} FROM {chain} ORDER BY position DESC LIMIT 1")
        )
        row = cursor.fetchone()
        return None if row is None else Link(**row)

    def _select_recorded(
        self, cursor: Cursor[DictRow], start: int, before: int | None, limit: int
    ) -> list[RecordedEvent]:
        cursor.execute(
            self._format(
                "SELECT notification_id, originator_id, originator_version, topic, state"
                " FROM {events} WHERE notification_id > %s"
                " AND notification_id < COALESCE(%s, 9223372036854775807)"
                " ORDER BY notification_id LIMIT %s"
            ),
            (start, before, limit),
        )
        return [
            RecordedEvent(
                row["notification_id"],
                originator_text(row["originator_id"]),
                row["originator_version"],
                row["topic"],
                None if row["state"] is None else bytes(row["state"]),
            )
            for row in cursor.fetchall()
        ]

    def _insert_links(self, cursor: Cursor[DictRow], links: Sequence[Link]) -> None:
        cursor.executemany(
            self._format("INSERT INTO {chain} ({columns}) VALUES (%s, %s, %s, %s, %s)"),
            [link_row(link) for link in links],
        )

    def _stored_originator_id(self, originator_id: str) -> UUID | str | None:
        """Return an originator id as the events table's column type takes it, or None."""
        if self.datastore.originator_id_type != "uuid":
            return originator_id
        try:
            return UUID(originator_id)
        except ValueError:
            return None

    def _format(self, statement: str) -> Composed:
        return SQL(statement).format(
            chain=self.chain_table, events=self.events_table, columns=LINK_COLUMNS
        )


def _sqlstate(error: BaseException) -> str | None:
    cause = error.__cause__
    return cause.sqlstate if isinstance(cause, psycopg.Error) else None


# The library's insert_events without its retry decorator; callers retry.
_library_insert_events = inspect.unwrap(PostgresApplicationRecorder.insert_events)


def _abort_transaction(curs: Cursor[DictRow], error: BaseException) -> None:
    """Fail the transaction on the server, so that it rolls back instead of committing.

    The library's insert_events catches what this recorder raises and ends
    the transaction block normally before raising it again. A transaction
    that a failed statement aborted rolls back there, but after an error
    in Python code it would commit events without their links.
    """
    message = f"Appending to the hash chain failed: {type(error).__name__}: {error}"
    statement = SQL("DO $$ BEGIN RAISE EXCEPTION {0}; END $$").format(
        Literal(message.replace("%", "%%"))
    )
    with contextlib.suppress(psycopg.Error):
        curs.execute(statement)
