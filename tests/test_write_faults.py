"""PostgreSQL sessions ended in the middle of writes: each write is whole or absent.

The server's sessions carry their own application_name, so the test ends
only the sessions of the server it started.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from uuid import UUID

import pytest

from api.services import Services
from domain.release import Release
from tests.rebuild import rebuild, table_contents
from tests.servers import gunicorn
from tests.test_deployment import SMALL_POOLS, create_until_answered
from tests.test_faults import call, check_unavailable
from tests.test_runner import terminate_sessions

pytestmark = pytest.mark.slow

R = "/api/0/organizations/acme/releases/"
CHAOS_SECONDS = 4.0
COMMITS = 30


def body(version: str) -> dict:
    commits = [{"id": f"{version}-{index}", "repository": "acme/app",
                "message": f"Change {index}"} for index in range(COMMITS)]
    return {"version": version, "projects": ["web", "api"], "commits": commits,
            "ref": "main"}


def test_ended_sessions_leave_whole_writes_or_none(backend, settings, services, world,
                                                   tmp_path):
    if backend == "sqlite":
        pytest.skip("SQLite has no sessions to end.")
    name = f"writes-{settings.postgres.schema}"
    served = dataclasses.replace(
        settings, database_url=f"{settings.database_url}&application_name={name}"
    )
    token = world.tokens["superuser"]
    answers: dict[str, tuple[int, dict, object]] = {}
    stop = threading.Event()
    ended = []
    random_delays = random.Random(7)

    def write(prefix: str) -> None:
        index = 0
        while not stop.is_set():
            version = f"{prefix}.{index}"
            status, headers, response, _ = call(server.url + R, token, "POST", body(version))
            answers[version] = (status, headers, response)
            index += 1

    with gunicorn(served, env=SMALL_POOLS) as server:
        writers = [threading.Thread(target=write, args=(prefix,)) for prefix in "abc"]
        for writer in writers:
            writer.start()
        deadline = time.monotonic() + CHAOS_SECONDS
        while time.monotonic() < deadline:
            time.sleep(random_delays.uniform(0.05, 0.6))
            ended.append(terminate_sessions(settings, name))
        stop.set()
        for writer in writers:
            writer.join()
        after = create_until_answered(server.url, token, "after")
        log = server.log()

    fresh = Services(settings)
    try:
        org_id = fresh.ledger.get_organization("acme").id
        recorded = {version: _recorded(fresh, org_id, version) for version in answers}
        fresh.projector.catch_up()
        with fresh.read() as queries:
            shown = {version: queries.releases.get(str(org_id), version) for version in answers}
    finally:
        fresh.close()

    assert sum(ended) > 0
    assert after[-1] == 201
    assert {status for status, _, _ in answers.values()} <= {201, 208, 503}
    for version, (status, headers, response) in answers.items():
        if status == 503:
            check_unavailable(status, headers, response)
        else:
            assert recorded[version] is not None, version
        if recorded[version] is None:
            assert shown[version] is None, version
            continue
        assert recorded[version] == (2, COMMITS, "main"), version
        assert shown[version]["commit_count"] == COMMITS, version
    assert "Traceback" not in log
    services.projector.catch_up()
    assert table_contents(services.database) == table_contents(rebuild(services, tmp_path))


def _recorded(services: Services, org_id: UUID, version: str) -> tuple | None:
    """Return what the ledger holds of a release: projects, commits and ref, or None."""
    release = services.ledger._get_or_none(Release.create_id(org_id, version))
    if release is None:
        return None
    return len(release.project_ids), len(release.commits), release.ref

