"""Fixtures that run each test once on SQLite and once on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import psycopg
import pytest

from api.app import create_app
from api.config import Settings
from api.services import Services
from tests.builders import World, build_world

DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")


def postgres_url() -> str:
    return os.environ.get("LEDGER_TEST_DATABASE_URL") or DEFAULT_TEST_DATABASE_URL


def check_postgres_reachable() -> None:
    """Skip when PostgreSQL is down, except under CI, where the test must fail."""
    conninfo = Settings(database_url=postgres_url()).postgres.conninfo
    try:
        psycopg.connect(conninfo, connect_timeout=3).close()
    except psycopg.OperationalError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {postgres_url()} is unreachable: {error}")
        pytest.skip(f"PostgreSQL at {postgres_url()} is unreachable")


def drop_schema(settings: Settings) -> None:
    postgres = settings.postgres
    with psycopg.connect(postgres.conninfo, autocommit=True) as connection:
        connection.execute(
            psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                psycopg.sql.Identifier(postgres.schema)
            )
        )


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def settings(backend: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings for an empty ledger (a new SQLite file or PostgreSQL schema) and blob folder."""
    blob_dir = str(tmp_path / "blobs")
    if backend == "sqlite":
        yield Settings(database_url=f"sqlite:///{tmp_path}/ledger.sqlite3", blob_dir=blob_dir)
        return
    check_postgres_reachable()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in postgres_url() else "?"
    settings = Settings(database_url=f"{postgres_url()}{separator}schema={schema}",
                        blob_dir=blob_dir)
    try:
        yield settings
    finally:
        drop_schema(settings)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    services = Services(settings, create_tables=True)
    try:
        yield services
    finally:
        services.close()


@pytest.fixture
def client(settings: Settings, services: Services) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app(settings, services))


@pytest.fixture
def world(services: Services) -> World:
    return build_world(services)
