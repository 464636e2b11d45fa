"""PostgreSQL failing under the service: ended sessions, and a restart of the server."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import urllib.error
import urllib.request

import pytest

from api.config import Settings
from api.services import Services
from projections.registry import all_projections
from tests.builders import CAUSE, build_world
from tests.postgres_server import OwnPostgres, can_run
from tests.rebuild import rebuild, table_contents, wait_for_positions
from tests.servers import gunicorn, projector
from tests.test_deployment import SMALL_POOLS, create_until_answered
from tests.test_runner import terminate_sessions

pytestmark = pytest.mark.slow

R = "/api/0/organizations/acme/releases/"

READ_MODELS = {projection.name for projection in all_projections()}


def call(url: str, token: str, method: str = "GET", body: dict | None = None
         ) -> tuple[int, dict[str, str], object, float]:
    """Send one request; return status, headers, JSON body and seconds taken."""
    request = urllib.request.Request(
        url, method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, headers, data = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, data = error.code, error.headers, error.read()
    lower_headers = {name.lower(): value for name, value in headers.items()}
    return status, lower_headers, json.loads(data or b"null"), time.monotonic() - started


def check_unavailable(status: int, headers: dict[str, str], body: object) -> None:
    assert status == 503
    assert headers["retry-after"] == "2"
    assert "link" not in headers
    assert "x-ledger-position" not in headers
    assert isinstance(body, dict) and list(body) == ["detail"]
    assert isinstance(body["detail"], str)


def test_ended_sessions_503_then_recover(backend, settings, services, world, tmp_path):
    if backend == "sqlite":
        pytest.skip("SQLite has no sessions to end.")
    name = f"web-{settings.postgres.schema}"
    served = dataclasses.replace(
        settings, database_url=f"{settings.database_url}&application_name={name}"
    )
    token = world.tokens["superuser"]
    answers: list[tuple[str, int, dict[str, str], object]] = []
    stop = threading.Event()

    def send(prefix: str) -> None:
        index = 0
        while not stop.is_set():
            version = f"{prefix}.{index}"
            status, headers, body, _ = call(server.url + R, token, "POST",
                                            {"version": version, "projects": ["web"]})
            answers.append((version, status, headers, body))
            status, headers, body, _ = call(server.url + R, token)
            answers.append(("list", status, headers, body))
            index += 1

    with gunicorn(served, env=SMALL_POOLS) as server:
        clients = [threading.Thread(target=send, args=(prefix,)) for prefix in ("1", "2")]
        for client in clients:
            client.start()
        ended = []
        for _ in range(6):
            time.sleep(0.2)
            ended.append(terminate_sessions(settings, name))
        # On a loaded machine every request during the terminations may meet
        # a 503, so the clients go on until the service has recovered.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
            status in (201, 208) for _, status, _, _ in list(answers)
        ):
            time.sleep(0.1)
        stop.set()
        for client in clients:
            client.join()
        acknowledged = [version for version, status, _, _ in answers if status in (201, 208)]
        # The pools may still be reconnecting, so a retry may meet a 503 first.
        retried = {version: create_until_answered(server.url, token, version)
                   for version in acknowledged}
        log = server.log()
    assert sum(ended) > 0
    assert {status for _, status, _, _ in answers} <= {200, 201, 208, 503}
    for _, status, headers, body in answers:
        if status == 503:
            check_unavailable(status, headers, body)
    assert acknowledged
    assert {statuses[-1] for statuses in retried.values()} == {208}
    assert all(set(statuses[:-1]) <= {503} for statuses in retried.values())
    assert "Traceback" not in log
    assert '"status": 500' not in log
    services.projector.catch_up()
    assert table_contents(services.database) == table_contents(rebuild(services, tmp_path))


@pytest.fixture
def own_postgres():
    reason = can_run()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Cannot start a private PostgreSQL: {reason}.")
        pytest.skip(f"Cannot start a private PostgreSQL: {reason}.")
    server = OwnPostgres()
    server.start()
    try:
        yield server
    finally:
        server.remove()


def test_database_restart_503_then_recovers(own_postgres):
    settings = Settings(database_url=f"{own_postgres.url}?schema=ledger", db_connect_timeout=2)
    env = {**SMALL_POOLS, "LEDGER_DB_CONNECT_TIMEOUT": "2"}
    services = Services(settings, create_tables=True)
    try:
        world = build_world(services)
        token = world.tokens["superuser"]
        with projector(settings, env=env) as runner, gunicorn(settings, env=env) as server:
            runner.wait_for("running read model", count=len(READ_MODELS))
            before = create_until_answered(server.url, token, "1.0")

            own_postgres.stop()
            down_create = call(
                server.url + R, token, "POST", {"version": "1.1", "projects": ["web"]}
            )
            down_list = call(server.url + R, token)
            down_ready = call(server.url + "/readyz", token)
            down_health = call(server.url + "/healthz", token)
            runner.wait_for("database unavailable; projector retrying")
            with gunicorn(settings, env=env) as late:
                late_list = call(late.url + R, token)

                own_postgres.start()
                after = create_until_answered(server.url, token, "1.2")
                late_after = wait_for_status(late.url + R, token, 200)
                late_log = late.log()
            runner.wait_for("running read model", count=2 * len(READ_MODELS), timeout=45)
            services.ledger.create_team("acme", "after-restart", None, CAUSE)
            wait_for_positions(services, services.projector.head(), timeout=15)
            log = server.log() + late_log
    finally:
        services.close()

    assert before == [201]
    for status, headers, body, seconds in (down_create, down_list, late_list):
        check_unavailable(status, headers, body)
        assert seconds < 10
    check_unavailable(*down_ready[:3])
    assert down_health[0] == 200
    assert after[-1] == 201
    assert late_after == 200
    assert "Traceback" not in log


def wait_for_status(url: str, token: str, expected: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        status = call(url, token)[0]
        if status == expected or time.monotonic() > deadline:
            return status
        time.sleep(0.2)

