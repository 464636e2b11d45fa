"""Several hosts running `release-ledger migrate` at once on one new PostgreSQL schema."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from api.config import Settings
from api.services import Services
from tests.conftest import check_postgres_reachable, drop_schema, postgres_url

MIGRATORS = 6


@pytest.fixture
def fresh_schema() -> Settings:
    check_postgres_reachable()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in postgres_url() else "?"
    settings = Settings(database_url=f"{postgres_url()}{separator}schema={schema}")
    try:
        yield settings
    finally:
        drop_schema(settings)


def test_concurrent_migrations_all_succeed(fresh_schema):
    """Every process exits 0, and the schema ends up with one set of tables."""
    environment = {**os.environ, "LEDGER_DATABASE_URL": fresh_schema.database_url}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "api.cli", "migrate"], env=environment,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(MIGRATORS)
    ]
    outcomes = [(process.wait(timeout=120), process.stderr.read()) for process in processes]
    for process in processes:
        process.stdout.close()
        process.stderr.close()
    assert [code for code, _ in outcomes] == [0] * MIGRATORS, [err for _, err in outcomes]
    services = Services(fresh_schema)
    try:
        assert services.ledger.recorder.max_notification_id() in (None, 0)
        assert set(services.projector.positions()) == {
            projection.name for projection in services.projector.projections
        }
    finally:
        services.close()
