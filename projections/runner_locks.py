"""Which projector process runs each read model, and how it hears of new events.

A runner holds one lock per read model for as long as it is active. On
PostgreSQL the lock is a session-level advisory lock on a connection used
for nothing else, so it is released when that session ends, also when
the process is killed with SIGKILL or its host stops responding to TCP
keepalives. The same connection LISTENs on the event store's channel.
On SQLite, which serves one host, the lock is an flock on a file beside
the database, released by the kernel when the process exits.
"""

from __future__ import annotations

import fcntl
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import IO

import psycopg
from psycopg import sql

from projections.database import Cursor
from projections.postgres import advisory_lock_key

# The server closes the session of a runner whose host vanished after about
# idle + interval * count seconds, so a standby can take over.
TCP_KEEPALIVE_OPTIONS = (
    "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3"
)


class RunnerLocks(ABC):
    """Read-model locks held by one projector process, and its wake-ups."""

    @abstractmethod
    def connect(self) -> None:
        """Open what the locks need, without taking any lock."""

    @abstractmethod
    def try_acquire(self, name: str) -> bool:
        """Take the lock on read model `name` if no other runner holds it."""

    @abstractmethod
    def check(self) -> None:
        """Raise a database error unless every lock taken is still held."""

    @abstractmethod
    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for new events; return whether some were announced."""

    @abstractmethod
    def close(self) -> None:
        """Release every lock."""


class PostgresRunnerLocks(RunnerLocks):
    """Advisory locks and LISTEN on one dedicated PostgreSQL session."""

    def __init__(self, conninfo: str, schema: str, channel: str) -> None:
        self.conninfo = conninfo
        self.schema = schema
        self.channel = channel
        self.connection: psycopg.Connection | None = None

    def connect(self) -> None:
        if self.connection is not None and not self.connection.closed:
            return
        self.connection = psycopg.connect(
            self.conninfo, autocommit=True, options=TCP_KEEPALIVE_OPTIONS
        )
        # NOTIFY channels are per database, not per schema. Runners of other
        # schemas in the same database therefore wake this one up too, at
        # the cost of one empty catch-up each.
        self.connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))

    def try_acquire(self, name: str) -> bool:
        row = self._connection.execute(
            "SELECT pg_try_advisory_lock(%s)", (self.key(name),)
        ).fetchone()
        return bool(row and row[0])

    def key(self, name: str) -> int:
        return self.key_of(self.schema, name)

    @staticmethod
    def key_of(schema: str, name: str) -> int:
        """Return the advisory lock key of the runner of read model `name` in `schema`."""
        return advisory_lock_key(schema, f"runner:{name}")

    def check(self) -> None:
        self._connection.execute("SELECT 1")

    def wait(self, timeout: float) -> bool:
        for _ in self._connection.notifies(timeout=timeout, stop_after=1):
            return True
        return False

    def close(self) -> None:
        if self.connection is not None:
            # Closing the session releases its advisory locks.
            self.connection.close()
            self.connection = None

    @property
    def _connection(self) -> psycopg.Connection:
        if self.connection is None or self.connection.closed:
            raise psycopg.OperationalError("The runner's lock connection is closed.")
        return self.connection


def active_runners(cursor: Cursor, schema: str, names: Sequence[str]) -> set[str]:
    """Return the read models among `names` whose runner lock some session holds."""
    keys = {PostgresRunnerLocks.key_of(schema, name): name for name in names}
    # pg_locks splits a bigint advisory key into classid (high 32 bits) and
    # objid (low 32 bits), and marks it with objsubid 1.
    rows = cursor.execute(
        "SELECT (classid::bigint << 32) | objid::bigint AS key FROM pg_locks"
        " WHERE locktype = 'advisory' AND objsubid = 1 AND granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchall()
    return {keys[row["key"]] for row in rows if row["key"] in keys}


class FileRunnerLocks(RunnerLocks):
    """flock()ed files named after the SQLite database; no notifications, so runners poll."""

    def __init__(self, database_path: str) -> None:
        self.database_path = database_path
        self.files: dict[str, IO[bytes]] = {}

    def connect(self) -> None:
        """Nothing to open: each lock is its own file."""

    def try_acquire(self, name: str) -> bool:
        if name in self.files:
            return True
        lock_file = open(f"{self.database_path}.{name}.runner-lock", "ab")  # noqa: SIM115
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            return False
        lock_file.truncate(0)
        lock_file.write(f"{os.getpid()}\n".encode())
        lock_file.flush()
        self.files[name] = lock_file
        return True

    def check(self) -> None:
        """Nothing to check: an flock lasts as long as the process."""

    def wait(self, timeout: float) -> bool:
        time.sleep(timeout)
        return False

    def close(self) -> None:
        for lock_file in self.files.values():
            lock_file.close()
        self.files.clear()
