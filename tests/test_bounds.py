"""Time bounds from the environment, and event store retries within them."""

from __future__ import annotations

import psycopg.errors
import psycopg_pool
import pytest
from eventsourcing.persistence import OperationalError

from api import event_store
from api.config import ConfigurationError, Settings


def failing(*causes: Exception | None):
    """Return a call that raises OperationalError from each cause in turn, then returns "ok"."""
    calls = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= len(causes):
            raise OperationalError("failed") from causes[len(calls) - 1]
        return "ok"

    return call, calls


@pytest.fixture(autouse=True)
def no_wait(monkeypatch):
    monkeypatch.setattr(event_store, "RETRY_WAIT_SECONDS", 0)


def test_lost_connection_is_retried():
    call, calls = failing(psycopg.OperationalError("server closed the connection"), None)

    result = event_store._attempt(call)

    assert result == "ok"
    assert len(calls) == 3


def test_retries_stop_after_three_attempts():
    call, calls = failing(None, None, None)

    with pytest.raises(OperationalError):
        event_store._attempt(call)

    assert len(calls) == 3


@pytest.mark.parametrize("cause", [
    psycopg.errors.QueryCanceled("statement timeout"),
    psycopg.errors.LockNotAvailable("lock timeout"),
    psycopg_pool.PoolTimeout("couldn't get a connection after 3.00 sec"),
])
def test_timeouts_are_not_retried(cause):
    call, calls = failing(cause)

    with pytest.raises(OperationalError):
        event_store._attempt(call)

    assert len(calls) == 1


def test_settings_read_time_bounds():
    settings = Settings.from_environ({
        "LEDGER_DB_CONNECT_TIMEOUT": "1.5",
        "LEDGER_DB_STATEMENT_TIMEOUT": "7",
        "LEDGER_READ_TIMEOUT": "0.25",
        "LEDGER_READY_MAX_LAG": "50",
        "LEDGER_PROJECTOR_POLL_INTERVAL": "2",
        "PROMETHEUS_MULTIPROC_DIR": "/run/metrics",
    })

    assert settings.db_connect_timeout == 1.5
    assert settings.db_statement_timeout == 7
    assert settings.read_timeout == 0.25
    assert settings.ready_max_lag == 50
    assert settings.projector_poll_interval == 2
    assert settings.metrics_dir == "/run/metrics"


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_settings_reject_invalid_seconds(value):
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_environ({"LEDGER_READ_TIMEOUT": value})

    assert "LEDGER_READ_TIMEOUT" in str(raised.value)


@pytest.mark.parametrize(("size", "most"), [("4", "2"), ("1", "0"), ("-1", "4")])
def test_settings_reject_invalid_pool_sizes(size, most):
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_environ({"LEDGER_POOL_SIZE": size, "LEDGER_POOL_MAX": most})

    assert "LEDGER_POOL_SIZE" in str(raised.value)
    assert "LEDGER_POOL_MAX" in str(raised.value)


def test_pool_size_may_equal_pool_max():
    settings = Settings.from_environ({"LEDGER_POOL_SIZE": "2", "LEDGER_POOL_MAX": "2"})

    assert (settings.pool_size, settings.pool_max) == (2, 2)


def test_event_store_environment_carries_bounds_and_name():
    settings = Settings(
        database_url="postgresql://u:p@db:5433/ledger?schema=s&application_name=ledger-web",
        db_connect_timeout=1.5, db_statement_timeout=7.5,
    )

    env = settings.eventsourcing_env(create_table=False)

    assert env["PERSISTENCE_MODULE"] == "api.event_store:LedgerPostgresFactory"
    assert env["POSTGRES_CONNECT_TIMEOUT"] == "2"
    assert env["POSTGRES_STATEMENT_TIMEOUT"] == "7.5"
    assert env["POSTGRES_LOCK_TIMEOUT"] == "8"
    assert env["POSTGRES_APPLICATION_NAME"] == "ledger-web"
    assert "application_name=ledger-web" in settings.postgres.conninfo
    assert "connect_timeout=2" in settings.postgres.conninfo
