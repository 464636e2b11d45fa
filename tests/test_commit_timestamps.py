"""Commit timestamps before year 1000, such as Go's zero time, through every reader."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from domain.application import ReleaseChanges
from domain.commits import check_commits
from domain.dates import format_datetime, parse_stored_datetime
from projections.status import read_model_statuses
from tests.builders import CAUSE
from tests.test_commits import R, create, org_id, put

# How Go writes its zero time.Time, which deploy tools written in Go may send.
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
STORED_ZERO_TIME = "0001-01-01T00:00:00.000000Z"


def states(services) -> dict[str, str]:
    statuses = read_model_statuses(services.ledger, services.database,
                                   services.projector.projections)
    return {status.name: status.state for status in statuses}


def served_commit_dates(client, world, version: str) -> tuple[str, list[str]]:
    release = client.simulate_get(f"{R}{version}/", headers=world.headers())
    commits = client.simulate_get(f"{R}{version}/commits/", headers=world.headers())
    assert release.status_code == 200
    assert commits.status_code == 200
    return (release.json["lastCommit"]["dateCreated"],
            [commit["dateCreated"] for commit in commits.json])


def test_go_zero_time_commit_served(client, world, services):
    create(client, world, "1.0", "web")

    response = put(client, world, "1.0", commits=[
        {"id": "abc", "repository": "acme/app", "timestamp": GO_ZERO_TIME},
    ])
    services.projector.catch_up()
    metrics = client.simulate_get("/api/0/organizations/acme/delivery-metrics/",
                                  headers=world.headers())

    assert response.status_code == 200
    assert served_commit_dates(client, world, "1.0") == (STORED_ZERO_TIME, [STORED_ZERO_TIME])
    assert metrics.status_code == 200
    assert set(states(services).values()) == {"live"}


def test_unpadded_stored_year_still_read(client, world, services):
    # Events recorded before timestamps were padded keep the unpadded year.
    create(client, world, "1.0", "web")
    commits = check_commits([{"id": "abc", "repository": "acme/app"}])
    commits[0]["timestamp"] = "1-01-01T00:00:00.000000Z"
    services.ledger.update_release(UUID(org_id(services)), "1.0",
                                   ReleaseChanges(commits=commits), CAUSE)

    services.projector.catch_up()

    assert served_commit_dates(client, world, "1.0") == (STORED_ZERO_TIME, [STORED_ZERO_TIME])
    assert set(states(services).values()) == {"live"}


@pytest.mark.parametrize(("value", "text"), [
    (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000000Z"),
    (datetime(999, 12, 31, 23, 59, 59, 5, tzinfo=UTC), "0999-12-31T23:59:59.000005Z"),
    (datetime(2024, 5, 1, 12, tzinfo=UTC), "2024-05-01T12:00:00.000000Z"),
])
def test_stored_datetime_text_round_trips(value, text):
    assert format_datetime(value) == text
    assert parse_stored_datetime(text) == value
