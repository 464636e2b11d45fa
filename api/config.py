"""Settings, read from the environment in this one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from psycopg.conninfo import make_conninfo

DEFAULT_DATABASE_URL = "sqlite:///var/ledger.sqlite3"
DEFAULT_PORT = 8000
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


class ConfigurationError(ValueError):
    """Raised when an environment variable holds an unusable value."""


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment.

    LEDGER_DATABASE_URL   sqlite:///relative/path, sqlite:////absolute/path, or
                          postgresql://user:password@host:port/dbname?schema=name
    PORT                  the port `make run` and gunicorn listen on
    LEDGER_PUBLIC_URL     the base URL printed for sentry-cli, default from PORT
    LEDGER_POOL_SIZE      PostgreSQL connections each process keeps open, per pool
    LEDGER_POOL_MAX       PostgreSQL connections each pool may open at most
    LEDGER_MAX_BODY_BYTES the largest JSON request body accepted, default 16 MiB, which
                          fits a list of 10,000 commits with messages and changed files
    """

    database_url: str = DEFAULT_DATABASE_URL
    port: int = DEFAULT_PORT
    public_url: str = ""
    pool_size: int = 1
    pool_max: int = 4
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        port = _integer(environ, "PORT", DEFAULT_PORT)
        return cls(
            database_url=environ.get("LEDGER_DATABASE_URL") or DEFAULT_DATABASE_URL,
            port=port,
            public_url=environ.get("LEDGER_PUBLIC_URL") or f"http://127.0.0.1:{port}/",
            pool_size=_integer(environ, "LEDGER_POOL_SIZE", 1),
            pool_max=_integer(environ, "LEDGER_POOL_MAX", 4),
            max_body_bytes=_integer(environ, "LEDGER_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
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
            )
            return env
        postgres = self.postgres
        env.update(
            PERSISTENCE_MODULE="eventsourcing.postgres",
            POSTGRES_HOST=postgres.host,
            POSTGRES_PORT=str(postgres.port),
            POSTGRES_DBNAME=postgres.dbname,
            POSTGRES_USER=postgres.user,
            POSTGRES_PASSWORD=postgres.password,
            POSTGRES_SCHEMA=postgres.schema,
            POSTGRES_POOL_SIZE=str(self.pool_size),
            POSTGRES_MAX_OVERFLOW=str(max(self.pool_max - self.pool_size, 0)),
            POSTGRES_CONNECT_TIMEOUT="10",
            POSTGRES_LOCK_TIMEOUT="10",
            POSTGRES_PRE_PING="y",
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

    @property
    def conninfo(self) -> str:
        return make_conninfo(
            host=self.host,
            port=self.port,
            dbname=self.dbname,
            user=self.user,
            password=self.password,
            connect_timeout=10,
        )


def _integer(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not an integer.") from None
