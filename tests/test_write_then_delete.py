"""Responses to writes when another request deleted the release between write and response.

Each test lets the write's command record its events, then deletes the
release before the resource reads its response, which is the narrow
window two pipelines can hit.
"""

from __future__ import annotations

from uuid import UUID

from tests.builders import CAUSE, release_body

R = "/api/0/organizations/acme/releases/"


def deleted_after(services, monkeypatch, command: str) -> None:
    """Make the ledger's `command` delete the release once it has recorded its own events."""
    run = getattr(services.ledger, command)

    def run_then_delete(org_id: UUID, version: str, *args, **kwargs):
        outcome = run(org_id, version, *args, **kwargs)
        services.ledger.delete_release(org_id, version, CAUSE)
        return outcome

    monkeypatch.setattr(services.ledger, command, run_then_delete)


def test_put_responds_with_written_release(client, world, services, monkeypatch):
    client.simulate_post(R, json=release_body("1.0", "web"), headers=world.headers())
    deleted_after(services, monkeypatch, "update_release")

    response = client.simulate_put(f"{R}1.0/", json={"ref": "after-the-write"},
                                   headers=world.headers())
    afterwards = client.simulate_get(f"{R}1.0/", headers=world.headers())

    assert response.status_code == 200
    assert response.json["version"] == "1.0"
    assert response.json["ref"] == "after-the-write"
    assert [project["slug"] for project in response.json["projects"]] == ["web"]
    assert response.headers["X-Ledger-Position"]
    assert afterwards.status_code == 404


def test_create_responds_with_written_release(client, world, services, monkeypatch):
    client.simulate_post(R, json=release_body("1.0", "web"), headers=world.headers())
    deleted_after(services, monkeypatch, "create_release")

    response = client.simulate_post(R, json=release_body("1.0", "web", "api"),
                                    headers=world.headers())

    assert response.status_code == 201
    assert [project["slug"] for project in response.json["projects"]] == ["api", "web"]


def test_deploy_responds_with_recorded_deploy(client, world, services, monkeypatch):
    client.simulate_post(R, json=release_body("1.0", "web"), headers=world.headers())
    deleted_after(services, monkeypatch, "record_deploy")

    response = client.simulate_post(f"{R}1.0/deploys/", headers=world.headers(), json={
        "environment": "production", "name": "deploy 1",
        "dateFinished": "2024-05-01T12:00:00Z",
    })

    assert response.status_code == 201
    assert response.json == {
        "id": response.headers["X-Ledger-Position"],
        "environment": "production",
        "name": "deploy 1",
        "url": None,
        "dateStarted": None,
        "dateFinished": "2024-05-01T12:00:00.000000Z",
    }


def test_deploy_response_matches_listed_deploy(client, world):
    client.simulate_post(R, json=release_body("1.0", "web"), headers=world.headers())

    created = client.simulate_post(f"{R}1.0/deploys/", headers=world.headers(), json={
        "environment": "staging", "url": "https://ci.example.com/1",
        "dateStarted": "2024-05-01T11:59:00+02:00", "dateFinished": "2024-05-01T12:00:00Z",
    })
    listed = client.simulate_get(f"{R}1.0/deploys/", headers=world.headers())

    assert created.status_code == 201
    assert listed.json == [created.json]
