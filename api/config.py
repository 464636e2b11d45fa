"""Settings, read from the environment in this one place."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from psycopg.conninfo import make_conninfo

DEFAULT_DATABASE_URL = "sqlite:///var/ledger.sqlite3"
DEFAULT_PORT = 8000
DEFAULT_BLOB_DIR = "var/blobs"
DEFAULT_MAX_FILE_BYTES = 40 * 1024 * 1024
# Recorders that bind every event into the hash chain as it is recorded.
SQLITE_RECORDER_TOPIC = "chain.sqlite:ChainedSQLiteApplicationRecorder"
DEFAULT_APPLICATION_NAME = "release-ledger"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# Release writes may carry a commit list; 10,000 commits with messages and
# changed files fit in 16 MiB.
DEFAULT_MAX_RELEASE_BODY_BYTES = 16 * 1024 * 1024


class ConfigurationError(ValueError):
    """Raised when an environment variable holds an unusable value."""


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment.

    LEDGER_DATABASE_URL   sqlite:///relative/path, sqlite:////absolute/path, or
                          postgresql://user:password@host:port/dbname?schema=name;
                          add &application_name=NAME to name the sessions in
                          pg_stat_activity (default release-ledger)
    PORT                  the port `make run` and gunicorn listen on
    LEDGER_PUBLIC_URL     the base URL printed for sentry-cli, default from PORT
    LEDGER_POOL_SIZE      PostgreSQL connections each process keeps open, per pool
    LEDGER_POOL_MAX       PostgreSQL connections each pool may open at most; every
                          process has two pools (events, read models), and a
                          projector also holds one connection for locks and LISTEN
    LEDGER_MAX_BODY_BYTES the largest JSON request body accepted, default 1 MiB
    LEDGER_MAX_RELEASE_BODY_BYTES  the largest body of a release create or update,
                          which may carry commits, default 16 MiB
    LEDGER_BLOB_DIR       the folder that stores release file contents, default var/blobs
    LEDGER_MAX_FILE_BYTES the largest release file accepted, default 40 MiB

    Time bounds, in seconds (fractions allowed), kept well under gunicorn's
    WEB_TIMEOUT so that a request answers 503 before its worker is killed:

    LEDGER_DB_CONNECT_TIMEOUT   how long opening a PostgreSQL connection, or
                                waiting for a free one in a pool, may take (3)
    LEDGER_DB_STATEMENT_TIMEOUT how long one PostgreSQL statement, or the wait
                                for the ledger's append lock, may take (10)
    LEDGER_READ_TIMEOUT         how long a read waits for the read models to reach
                                the ledger position current when it started (5)
    LEDGER_READY_MAX_LAG        events a read model may be behind the ledger
                                before GET /readyz answers 503 (1000)
    LEDGER_PROJECTOR_POLL_INTERVAL  how often a projector checks the ledger and
                                the read-model locks without a notification (1)

    PROMETHEUS_MULTIPROC_DIR    the folder where gunicorn workers share metrics;
                                gunicorn.conf.py makes a temporary one when unset
    """

    database_url: str = DEFAULT_DATABASE_URL
    port: int = DEFAULT_PORT
    public_url: str = ""
    pool_size: int = 1
    pool_max: int = 4
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_release_body_bytes: int = DEFAULT_MAX_RELEASE_BODY_BYTES
    blob_dir: str = DEFAULT_BLOB_DIR
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    db_connect_timeout: float = 3.0
    db_statement_timeout: float = 10.0
    read_timeout: float = 5.0
    ready_max_lag: int = 1000
    projector_poll_interval: float = 1.0
    metrics_dir: str = ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        port = _integer(environ, "PORT", DEFAULT_PORT)
        pool_size = _integer(environ, "LEDGER_POOL_SIZE", 1)
        pool_max = _integer(environ, "LEDGER_POOL_MAX", 4)
        if pool_size < 0 or pool_max < 1 or pool_size > pool_max:
            raise ConfigurationError(
                f"LEDGER_POOL_SIZE={pool_size} and LEDGER_POOL_MAX={pool_max} are invalid:"
                " LEDGER_POOL_MAX must be at least 1, and LEDGER_POOL_SIZE between 0 and it."
            )
        return cls(
            database_url=environ.get("LEDGER_DATABASE_URL") or DEFAULT_DATABASE_URL,
            port=port,
            public_url=environ.get("LEDGER_PUBLIC_URL") or f"http://127.0.0.1:{port}/",
            pool_size=pool_size,
            pool_max=pool_max,
            max_body_bytes=_integer(environ, "LEDGER_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            max_release_body_bytes=_integer(
                environ, "LEDGER_MAX_RELEASE_BODY_BYTES", DEFAULT_MAX_RELEASE_BODY_BYTES
            ),
            blob_dir=environ.get("LEDGER_BLOB_DIR") or DEFAULT_BLOB_DIR,
            max_file_bytes=_integer(environ, "LEDGER_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES),
            db_connect_timeout=_seconds(environ, "LEDGER_DB_CONNECT_TIMEOUT", 3.0),
            db_statement_timeout=_seconds(environ, "LEDGER_DB_STATEMENT_TIMEOUT", 10.0),
            read_timeout=_seconds(environ, "LEDGER_READ_TIMEOUT", 5.0),
            ready_max_lag=_integer(environ, "LEDGER_READY_MAX_LAG", 1000),
            projector_poll_interval=_seconds(environ, "LEDGER_PROJECTOR_POLL_INTERVAL", 1.0),
            metrics_dir=environ.get("PROMETHEUS_MULTIPROC_DIR", ""),
        )

    @property
    def backend(self) -> str:
        scheme = urlsplit(self.database_url).scheme
        if scheme == "sqlite":
            return "sqlite"
        if scheme in ("postgres", "postgresql"):
            return "postgresql"
        raise ConfigurationError(
            f"LEDGER_DATABASE_URL {self.database_url!r} is not supported:"
            " use sqlite:///PATH or postgresql://HOST/DBNAME."
        )

    @property
    def sqlite_path(self) -> str:
        """Path of the SQLite file; sqlite:///a/b is relative, sqlite:////a/b absolute."""
        path = unquote(urlsplit(self.database_url).path)[1:]
        if not path:
            raise ConfigurationError("LEDGER_DATABASE_URL names no SQLite file.")
        return path

    @property
    def postgres(self) -> PostgresSettings:
        parts = urlsplit(self.database_url)
        query = parse_qs(parts.query)
        return PostgresSettings(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            dbname=unquote(parts.path.lstrip("/")) or "postgres",
            user=unquote(parts.username or "") or "postgres",
            password=unquote(parts.password or ""),
            schema=query.get("schema", ["public"])[0],
            application_name=query.get("application_name", [DEFAULT_APPLICATION_NAME])[0],
            connect_timeout=self.db_connect_timeout,
        )

    def eventsourcing_env(self, *, create_table: bool) -> dict[str, str]:
        """Return the environment of the `eventsourcing` application for this database."""
        env = {"CREATE_TABLE": "y" if create_table else "n"}
        if self.backend == "sqlite":
            Path(self.sqlite_path).parent.mkdir(parents=True, exist_ok=True)
            env.update(
                PERSISTENCE_MODULE="eventsourcing.sqlite",
                SQLITE_DBNAME=self.sqlite_path,
                SQLITE_LOCK_TIMEOUT="30",
                APPLICATION_RECORDER_TOPIC=SQLITE_RECORDER_TOPIC,
            )
            return env
        postgres = self.postgres
        env.update(
            PERSISTENCE_MODULE="api.event_store:LedgerPostgresFactory",
            POSTGRES_HOST=postgres.host,
            POSTGRES_PORT=str(postgres.port),
            POSTGRES_DBNAME=postgres.dbname,
            POSTGRES_USER=postgres.user,
            POSTGRES_PASSWORD=postgres.password,
            POSTGRES_SCHEMA=postgres.schema,
            POSTGRES_POOL_SIZE=str(self.pool_size),
            POSTGRES_MAX_OVERFLOW=str(max(self.pool_max - self.pool_size, 0)),
            # The library takes whole seconds for the pool checkout timeout.
            POSTGRES_CONNECT_TIMEOUT=str(max(math.ceil(self.db_connect_timeout), 1)),
            POSTGRES_STATEMENT_TIMEOUT=str(self.db_statement_timeout),
            # The wait for the append lock, also in whole seconds.
            POSTGRES_LOCK_TIMEOUT=str(max(math.ceil(self.db_statement_timeout), 1)),
            POSTGRES_APPLICATION_NAME=postgres.application_name,
            # No ping before each use: it costs a round trip per call, and
            # the recorder retries a call whose connection turns out broken.
            POSTGRES_PRE_PING="n",
        )
        return env


@dataclass(frozen=True)
class PostgresSettings:
    host: str
    port: int
    dbname: str
    user: str
    password: str
    schema: str
    application_name: str = DEFAULT_APPLICATION_NAME
    connect_timeout: float = 3.0

    @property
    def conninfo(self) -> str:
        return make_conninfo(
            host=self.host,
            port=self.port,
            dbname=self.dbname,
            user=self.user,
            password=self.password,
            application_name=self.application_name,
            connect_timeout=libpq_connect_timeout(self.connect_timeout),
        )


def libpq_connect_timeout(seconds: float) -> int:
    """Return libpq's connect_timeout: whole seconds, and libpq treats 1 as 2."""
    return max(math.ceil(seconds), 2)


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    value = environ.get(name)
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not a number of seconds.") from None
    if not seconds > 0:
        raise ConfigurationError(f"{name}={value!r} must be more than 0 seconds.")
    return seconds


def _integer(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not an integer.") from None
