"""The ledger's PostgreSQL event store, with every failure bounded in time.

`eventsourcing` 9.5 retries each recorder call ten times on any
OperationalError, and each attempt may wait the pool's full checkout
timeout, so one call could outlast a gunicorn worker's timeout while the
database is down. This factory keeps the library's tables and SQL but
retries only after a lost connection, at most `ATTEMPTS` times, and gives
every connection a connect timeout, a statement timeout and a name.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg.errors
import psycopg_pool
from eventsourcing.persistence import OperationalError
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from eventsourcing.utils import EnvType

from api.config import DEFAULT_APPLICATION_NAME, libpq_connect_timeout
from chain.postgres import LARGE_MESSAGE_BYTES, ChainedPostgresApplicationRecorder
from projections.postgres import RECONNECT_TIMEOUT_SECONDS

logger = logging.getLogger(__name__)

ATTEMPTS = 3
RETRY_WAIT_SECONDS = 0.2

# Errors that a retry would only repeat after the same timeout: a statement
# or lock wait that timed out, and a pool that found no connection while it
# kept trying to connect for the whole checkout timeout.
_FINAL_CAUSES = (
    psycopg.errors.QueryCanceled,
    psycopg.errors.LockNotAvailable,
    psycopg_pool.PoolTimeout,
)

R = TypeVar("R")


def _attempt(call: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    attempt = 1
    while True:
        try:
            return call(*args, **kwargs)
        except OperationalError as error:
            if attempt >= ATTEMPTS or isinstance(error.__cause__, _FINAL_CAUSES):
                raise
            logger.warning(
                "event store call failed; retrying",
                extra={"call": call.__name__, "attempt": attempt, "error": str(error)},
            )
            time.sleep(RETRY_WAIT_SECONDS * attempt)
            attempt += 1


class LedgerPostgresRecorder(PostgresApplicationRecorder):
    """The library's application recorder with bounded retries."""

    def insert_events(self, stored_events: Sequence[Any], **kwargs: Any) -> Sequence[int] | None:
        # A retry after a commit whose reply was lost finds the events stored
        # and raises IntegrityError, which commands already treat as a lost race.
        return _attempt(_unwrapped("insert_events"), self, stored_events, **kwargs)

    def select_events(self, *args: Any, **kwargs: Any) -> Any:
        events = _attempt(_unwrapped("select_events"), self, *args, **kwargs)
        self._renew_after_large_read(events)
        return events

    def select_notifications(self, *args: Any, **kwargs: Any) -> Any:
        notifications = _attempt(_unwrapped("select_notifications"), self, *args, **kwargs)
        self._renew_after_large_read(notifications)
        return notifications

    def _renew_after_large_read(self, records: Sequence[Any]) -> None:
        """Replace the pool's connections after reading a state of LARGE_MESSAGE_BYTES or more.

        libpq keeps a connection's input buffer at the size of the largest
        message it received, until the connection closes. One that read a
        30 MiB value kept 60 MiB resident. Which connection read the state
        is not known here, so the pool replaces all of them, each once it
        is back.
        """
        if any(len(record.state) >= LARGE_MESSAGE_BYTES for record in records):
            self.datastore.pool.drain()

    def max_notification_id(self) -> int | None:
        return _attempt(_unwrapped("max_notification_id"), self)


class ChainedLedgerPostgresRecorder(LedgerPostgresRecorder, ChainedPostgresApplicationRecorder):
    """The bounded-retry recorder that also links every event into the hash chain."""

    def insert_events(self, stored_events: Sequence[Any], **kwargs: Any) -> Sequence[int] | None:
        return _attempt(self.append_events, stored_events, **kwargs)


def _unwrapped(name: str) -> Callable[..., Any]:
    """Return the library's method without its retry decorator."""
    return inspect.unwrap(getattr(PostgresApplicationRecorder, name))


class LedgerPostgresFactory(PostgresFactory):
    """Selected by PERSISTENCE_MODULE=api.event_store:LedgerPostgresFactory.

    Besides the library's POSTGRES_* settings it reads
    POSTGRES_STATEMENT_TIMEOUT (seconds) and POSTGRES_APPLICATION_NAME, and
    uses POSTGRES_CONNECT_TIMEOUT for opening connections as well as for
    the pool checkout, where the library uses it alone.
    """

    application_recorder_class = ChainedLedgerPostgresRecorder
    POSTGRES_STATEMENT_TIMEOUT = "POSTGRES_STATEMENT_TIMEOUT"
    POSTGRES_APPLICATION_NAME = "POSTGRES_APPLICATION_NAME"

    def __init__(self, env: EnvType | Any) -> None:
        super().__init__(env)
        connect_timeout = float(self.env.get(self.POSTGRES_CONNECT_TIMEOUT) or 5)
        statement_timeout = float(self.env.get(self.POSTGRES_STATEMENT_TIMEOUT) or 0)
        pool = self.datastore.pool
        pool.reconnect_timeout = RECONNECT_TIMEOUT_SECONDS
        # The pool opens its first connections when the first recorder is
        # made, after this constructor, so they get these parameters too.
        pool.kwargs.update(
            connect_timeout=libpq_connect_timeout(connect_timeout),
            application_name=self.env.get(self.POSTGRES_APPLICATION_NAME)
            or DEFAULT_APPLICATION_NAME,
            options=f"-c statement_timeout={int(statement_timeout * 1000)}",
        )

    def application_recorder(self) -> Any:
        """Make the recorder, which connects; close the pool if that fails.

        Otherwise each failed attempt to open the ledger would leave a pool
        behind that keeps reconnecting in the background.
        """
        try:
            return super().application_recorder()
        except Exception:
            self.close()
            raise
