"""Case C15: listing 10,000 releases of one organization reads the read model and writes nothing."""

from __future__ import annotations

from uuid import UUID

from domain.directory import Project
from domain.release import Release
from tests.builders import CAUSE

R = "/api/0/organizations/acme/releases/"
RELEASES = 10_000
BATCH = 1_000


def load_releases(services, org_id: UUID, project_id: UUID) -> None:
    for start in range(0, RELEASES, BATCH):
        releases = []
        for index in range(start, start + BATCH):
            prefix = "app" if index % 2 else "web"
            release = Release(org_id=org_id, version_str=f"{prefix}-{index}", ref=None,
                              url=None, owner_id=None, date_started=None, cause=CAUSE)
            release.add_projects([project_id], None, CAUSE)
            releases.append(release)
        services.ledger.save(*releases)


def test_c15_list_of_10000_releases_writes_nothing(client, world, services):
    ledger = services.ledger
    org = ledger.get_organization("acme")
    load_releases(services, org.id, Project.create_id(org.id, "web"))
    services.projector.catch_up()
    head = services.projector.head()
    positions = services.projector.positions()

    first_page = client.simulate_get(R, params={"per_page": "25"}, headers=world.headers())
    matching = client.simulate_get(R, params={"query": "app"}, headers=world.headers())

    assert first_page.status_code == 200
    assert len(first_page.json) == 25
    assert matching.status_code == 200
    assert len(matching.json) == 100
    assert all(release["version"].startswith("app") for release in matching.json)
    assert services.projector.head() == head
    assert services.projector.positions() == positions
