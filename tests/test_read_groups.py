"""Reads that name their query groups catch up only the read models those groups use."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from api.services import UndeclaredQueriesError
from tests.builders import CAUSE


def test_named_groups_leave_other_models_behind(services, world):
    services.projector.catch_up()
    services.ledger.create_team(world.org, "late", None, CAUSE)
    head = services.projector.head()

    with services.read("directory") as queries:
        org_id = queries.directory.organization(world.org)["id"]
        teams = queries.directory.teams(org_id)

    positions = services.projector.positions()
    assert "late" in {team["slug"] for team in teams}
    assert positions["directory_v2"] == head
    assert positions["audit_v2"] < head
    assert positions["releases_v1"] < head


def test_read_without_groups_catches_up_all(services, world):
    services.ledger.create_team(world.org, "late", None, CAUSE)
    with services.read("directory"):
        pass

    with services.read():
        pass

    head = services.projector.head()
    assert set(services.projector.positions().values()) == {head}


def test_undeclared_group_raises(services, world):
    with services.read("directory") as queries, pytest.raises(
        UndeclaredQueriesError, match="audit"
    ):
        queries.audit  # noqa: B018


def test_releases_at_instant_needs_timeline(services, world):
    with services.read("directory", "releases") as queries:
        past = replace(queries, at=datetime(2024, 1, 1, tzinfo=UTC))
        with pytest.raises(UndeclaredQueriesError, match="timeline"):
            past.releases  # noqa: B018


def test_unknown_group_raises(services):
    with pytest.raises(ValueError, match="Unknown query groups"), services.read("nonsense"):
        pass


def test_directory_reads_skip_other_models(client, services, world):
    services.projector.catch_up()
    services.ledger.create_team(world.org, "late", None, CAUSE)
    head = services.projector.head()

    response = client.simulate_get("/api/0/organizations/acme/projects/",
                                   headers=world.headers())

    assert response.status_code == 200
    positions = services.projector.positions()
    assert positions["directory_v2"] == head
    assert positions["audit_v2"] < head
    assert positions["releases_v1"] < head
