"""Several gunicorn servers and projector processes on one database, with crashes."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.services import _open_database
from projections.registry import all_projections
from tests.builders import CAUSE, World
from tests.rebuild import rebuild, table_contents, wait_for_positions
from tests.servers import SentryCli, gunicorn, projector, requested_paths, worker_pids

pytestmark = pytest.mark.slow

R = "/api/0/organizations/acme/releases/"
# Few connections per pool, so that several servers fit in a shared PostgreSQL.
SMALL_POOLS = {"LEDGER_POOL_MAX": "2", "LEDGER_PROJECTOR_POLL_INTERVAL": "0.2"}

READ_MODELS = {projection.name for projection in all_projections()}


def json_lines(log: str) -> list[dict]:
    return [json.loads(line) for line in log.splitlines()]


def test_projector_kill_keeps_read_models_exact(settings, services, world,
                                                             tmp_path):
    token = world.tokens["superuser"]
    with projector(settings, env=SMALL_POOLS) as first:
        first.wait_for("running read model", count=len(READ_MODELS))
        with (
            projector(settings, env=SMALL_POOLS) as second,
            gunicorn(settings, env=SMALL_POOLS) as writer,
            gunicorn(settings, env=SMALL_POOLS) as reader,
        ):
            second.wait_for("standing by for read model", count=len(READ_MODELS))
            start = services.projector.head()
            burst = threading.Thread(target=create_teams, args=(world, 300))
            burst.start()
            wait_for_head_above(services, start + 50)
            first.process.send_signal(signal.SIGKILL)
            killed_during_burst = burst.is_alive()
            write_cli = SentryCli(writer.url, token, world.org)
            read_cli = SentryCli(reader.url, token, world.org)
            results = []
            for index in range(8):
                created = write_cli("releases", "new", f"5.{index}", "-p", "web")
                shown = read_cli("releases", "info", f"5.{index}")
                results.append((created.returncode, shown.returncode, shown.stdout))
            burst.join()
            took_over = second.wait_for("took over read model", count=len(READ_MODELS))
            create_teams(world, 5, prefix="late")
            head = services.projector.head()
            wait_for_positions(services, head, timeout=10)
            live = table_contents(services.database)
            writer_paths, reader_paths = requested_paths(writer), requested_paths(reader)
            server_logs = writer.log() + reader.log()

    assert first.process.returncode == -signal.SIGKILL
    assert killed_during_burst
    assert all(created == 0 and shown == 0 for created, shown, _ in results), results
    assert all(f"5.{index}" in stdout for index, (_, _, stdout) in enumerate(results))
    assert writer_paths.count("POST /api/0/organizations/acme/releases/") == 8
    assert sum(path.startswith("GET /api/0/organizations/acme/releases/5.")
               for path in reader_paths) == 8
    assert {entry["read_model"] for entry in took_over} == READ_MODELS
    assert all(entry["failover"] for entry in took_over)
    assert live == table_contents(rebuild(services, tmp_path))
    assert token not in server_logs
    assert "Traceback" not in server_logs
    assert all("pid" in entry for entry in json_lines(server_logs))


def create_teams(world: World, count: int, prefix: str = "burst") -> None:
    """Append events straight to the ledger, as a busy writer elsewhere would."""
    for index in range(count):
        world.services.ledger.create_team(world.org, f"{prefix}-{index}", None, CAUSE)


def post_release(url: str, token: str, version: str) -> int | None:
    """POST a release; return the status, or None when the connection broke."""
    body = json.dumps({"version": version, "projects": ["web"]}).encode()
    request = urllib.request.Request(
        url + R, data=body, method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, http.client.HTTPException):
        return None


def create_until_answered(url: str, token: str, version: str) -> list[int | None]:
    """POST until the server responds with 201 or 208, as a retrying deploy script would."""
    statuses: list[int | None] = []
    while not statuses or statuses[-1] not in (201, 208):
        assert len(statuses) < 20, statuses
        statuses.append(post_release(url, token, version))
        if statuses[-1] not in (201, 208):
            time.sleep(0.1)
    return statuses


def test_worker_kill_loses_no_acknowledged_write(settings, services, world):
    token = world.tokens["superuser"]
    answers: dict[str, list[int | None]] = {}

    def send(prefix: str) -> None:
        for index in range(12):
            version = f"{prefix}.{index}"
            answers[version] = create_until_answered(server.url, token, version)

    with gunicorn(settings, env=SMALL_POOLS) as server:
        clients = [threading.Thread(target=send, args=(prefix,)) for prefix in ("6", "7")]
        for client in clients:
            client.start()
        for _ in range(4):
            time.sleep(0.25)
            server_pids = worker_pids(server)
            if server_pids:
                signal_worker(server_pids[0])
        for client in clients:
            client.join()
        retried = {version: post_release(server.url, token, version) for version in answers}

    assert len(answers) == 24
    assert set(retried.values()) == {208}
    for version, statuses in answers.items():
        assert statuses[-1] in (201, 208), (version, statuses)
        assert statuses.count(201) <= 1, (version, statuses)
        assert set(statuses[:-1]) <= {None, 503}, (version, statuses)


def signal_worker(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def test_create_retried_after_worker_kill_gets_208(backend, settings, services,
                                                               world):
    if backend == "sqlite":
        pytest.skip("On SQLite the read-model lock also blocks the append itself.")
    token = world.tokens["superuser"]
    services.projector.catch_up()
    env = {**SMALL_POOLS, "WEB_CONCURRENCY": "1", "LEDGER_READ_TIMEOUT": "20"}
    other = _open_database(settings)
    with gunicorn(settings, workers=1, env=env) as server:
        head = services.projector.head()
        with other.transaction(write=True) as cursor:
            # The create commits its events, then its response waits for this lock.
            other.lock(cursor, "releases_v1")
            outcome: list[int | None] = []
            request = threading.Thread(
                target=lambda: outcome.append(post_release(server.url, token, "8.0"))
            )
            request.start()
            wait_for_head_above(services, head)
            signal_worker(worker_pids(server)[0])
            request.join(timeout=10)
        other.close()
        retried = create_until_answered(server.url, token, "8.0")

    assert outcome == [None]
    assert retried[-1] == 208
    assert 201 not in retried


def wait_for_head_above(services, position: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while services.projector.head() <= position:
        assert time.monotonic() < deadline, "The create did not commit in time."
        time.sleep(0.02)


def test_metrics_add_up_across_workers(settings, services):
    with gunicorn(settings, workers=2, env=SMALL_POOLS) as server:
        wait_for_workers(server, 2)
        # A sync worker reads a request to its end before it accepts another
        # connection. The worker that accepts the unfinished request waits
        # there, so the requests sent meanwhile reach the other worker.
        address = urlsplit(server.url)
        with socket.create_connection((address.hostname, address.port), timeout=10) as held:
            held.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            for _ in range(40):
                with urllib.request.urlopen(server.url + "/healthz", timeout=10):
                    pass
            held.sendall(b"Connection: close\r\n\r\n")
            assert held.makefile("rb").readline().startswith(b"HTTP/1.1 200")
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
            text = response.read().decode()
        log = server.log()

    served_by = Counter(entry["pid"] for entry in json_lines(log)
                        if entry.get("path") == "/healthz")
    totals = {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples if sample.name == "ledger_http_requests_total"
    }
    assert len(served_by) == 2
    assert sum(served_by.values()) >= 41
    assert totals[(("method", "GET"), ("route", "/healthz"), ("status", "200"))] == sum(
        served_by.values()
    )


def test_pool_gauges_count_idle_workers(backend, settings, services):
    if backend != "postgresql":
        pytest.skip("SQLite has no connection pools.")
    with gunicorn(settings, workers=2, env=SMALL_POOLS) as server:
        wait_for_workers(server, 2)
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
            text = response.read().decode()

    gauges = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    # Two workers with pools of at most two connections each.
    assert gauges[("ledger_db_pool_max_connections", (("pool", "read_models"),))] == 4


def wait_for_workers(server, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while sum(entry["message"] == "worker started" for entry in json_lines(server.log())) < count:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)


def test_web_workers_keep_unread_models_current(settings, services, world, tmp_path):
    token = world.tokens["superuser"]
    with gunicorn(settings, env={**SMALL_POOLS, "LEDGER_WEB_PROJECTOR": "1"}) as server:
        cli = SentryCli(server.url, token, world.org)
        created = [cli("releases", "new", f"7.{index}", "-p", "web") for index in range(5)]
        head = services.projector.head()
        # Release requests catch up only the release read models. The
        # workers' runner threads apply the rest without being asked.
        current = wait_for_positions(services, head, timeout=15)
        live = table_contents(services.database)
        log = server.log()

    assert all(result.returncode == 0 for result in created)
    assert set(current) == READ_MODELS
    assert live == table_contents(rebuild(services, tmp_path))
    assert "running read model" in log
    assert "Traceback" not in log
