"""The commits read model rebuilt from position zero equals the one kept up to date."""

from __future__ import annotations

from api.services import Services
from projections.commits import CommitsProjection
from projections.projector import POSITIONS_TABLE
from tests.builders import World, release_body

R = "/api/0/organizations/acme/releases/"


def snapshot(services: Services) -> dict[str, list]:
    services.projector.catch_up()
    with services.database.transaction() as cursor:
        return {
            table: sorted(
                repr(sorted(row.items())) for row in
                 cursor.execute(f"SELECT * FROM {table}").fetchall()
            )
            for table in CommitsProjection().tables
        }


def record_history(client, world: World) -> None:
    headers = world.headers()
    client.simulate_post("/api/0/organizations/acme/repos/",
                         json={"name": "acme/app", "provider": "integrations:github"},
                         headers=headers)
    client.simulate_post(R, json=release_body("1.0", commits=[
        {"id": "a1", "repository": "acme/app", "author_name": "Иван",
         "patch_set": [{"path": "x.py", "type": "A"}]},
        {"id": "a0", "repository": "origin", "author_email": "dev@example.com"},
    ]), headers=headers)
    client.simulate_put(f"{R}1.0/", json={"refs": [{"repository": "ACME/APP",
                                                    "commit": "a0..a2"}]}, headers=headers)
    client.simulate_post(R, json=release_body("2.0", commits=[
        {"id": "a1", "repository": "acme/app", "message": "again"},
    ]), headers=headers)
    client.simulate_delete(f"{R}2.0/", headers=headers)
    client.simulate_post(R, json=release_body("2.0"), headers=headers)


def test_rebuilt_commits_model_equals_live_one(client, world, services):
    record_history(client, world)
    live = snapshot(services)

    with services.database.transaction(write=True) as cursor:
        for table in CommitsProjection().tables:
            cursor.execute(f"DELETE FROM {table}")
        cursor.execute(f"UPDATE {POSITIONS_TABLE} SET position = 0 WHERE name = %s",
                       (CommitsProjection.name,))
    rebuilt = snapshot(services)

    assert live["commits_v1_repositories"]
    assert live["commits_v1_head_commits"]
    assert rebuilt == live
