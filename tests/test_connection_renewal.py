"""Read-model connections replaced after a large page or a large event, on PostgreSQL.

libpq keeps a connection's buffers at the size of the largest message it
sent or received, so a web worker that served one page of large events
kept tens of megabytes until its connections closed.
"""

from __future__ import annotations

import pytest

from projections.database import LARGE_RESULT_BYTES
from tests.builders import release_body

ORG_RELEASES = "/api/0/organizations/acme/releases/"
# Commits whose CommitsSet event stores more than LARGE_RESULT_BYTES.
LARGE_COMMITS = 6000
MESSAGE = "m" * 200


@pytest.fixture
def drains(backend, services, monkeypatch):
    """Count the read-model pool's renewals, and skip on SQLite, which has no pool."""
    if backend == "sqlite":
        pytest.skip("SQLite read models use no connection pool.")
    calls = []
    pool = services.database.pool
    real_drain = pool.drain

    def counted() -> None:
        calls.append(True)
        real_drain()

    monkeypatch.setattr(pool, "drain", counted)
    return calls


def commits(count: int) -> list[dict[str, str]]:
    return [{"id": f"{index:040x}", "repository": "acme/web", "message": MESSAGE}
            for index in range(count)]


def put_commits(client, world, version: str, count: int) -> None:
    created = client.simulate_post(ORG_RELEASES, json=release_body(version, "web"),
                                   headers=world.headers())
    assert created.status_code == 201
    updated = client.simulate_put(f"{ORG_RELEASES}{version}/", json={"commits": commits(count)},
                                  headers=world.headers())
    assert updated.status_code == 200


def history(client, world, version: str):
    return client.simulate_get(f"{ORG_RELEASES}{version}/history/", headers=world.headers())


def test_large_event_batch_renews_pool(client, world, drains):
    assert len(MESSAGE) * LARGE_COMMITS > LARGE_RESULT_BYTES
    put_commits(client, world, "1.0", 3)
    after_small = len(drains)
    put_commits(client, world, "2.0", LARGE_COMMITS)

    assert after_small == 0
    assert len(drains) >= 1


def test_large_history_page_renews_pool(client, world, services, drains):
    put_commits(client, world, "1.0", 3)
    put_commits(client, world, "2.0", LARGE_COMMITS)
    # Applying the large event to the audit model renews the pool too.
    services.projector.catch_up()
    drains.clear()

    small = history(client, world, "1.0")
    after_small = len(drains)
    large = history(client, world, "2.0")

    assert small.status_code == 200
    assert large.status_code == 200
    assert after_small == 0
    assert len(drains) == 1


def test_reads_continue_after_renewal(client, world, drains):
    put_commits(client, world, "2.0", LARGE_COMMITS)

    pages = [history(client, world, "2.0") for _ in range(3)]
    listed = client.simulate_get(ORG_RELEASES, headers=world.headers())

    assert [page.status_code for page in pages] == [200, 200, 200]
    assert pages[0].json == pages[2].json
    assert len(pages[0].json[-1]["data"]["commits"]) == LARGE_COMMITS
    assert [release["version"] for release in listed.json] == ["2.0"]
    assert len(drains) >= 3
