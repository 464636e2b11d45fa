"""Sentry's directory endpoints: organizations, teams and projects over REST."""

from __future__ import annotations


def test_superuser_creates_organization_team_and_project(client, world):
    headers = world.headers()

    org = client.simulate_post("/api/0/organizations/", json={"slug": "initech"},
                               headers={**headers})
    team = client.simulate_post("/api/0/organizations/initech/teams/", json={"slug": "ops"},
                                headers=headers)
    project = client.simulate_post("/api/0/teams/initech/ops/projects/",
                                   json={"slug": "tps", "name": "TPS reports"}, headers=headers)
    listed = client.simulate_get("/api/0/organizations/initech/projects/", headers=headers)

    assert org.status_code == 201
    assert org.json["slug"] == "initech"
    assert team.status_code == 201
    assert project.status_code == 201
    assert project.json["name"] == "TPS reports"
    assert [p["slug"] for p in listed.json] == ["tps"]


def test_member_cannot_create_teams(client, world):
    response = client.simulate_post("/api/0/organizations/acme/teams/", json={"slug": "new"},
                                    headers=world.headers("frontend"))

    assert response.status_code == 403


def test_admin_member_creates_projects(client, world):
    admin = world.user(role="admin")
    headers = {"Authorization": f"Bearer {admin}"}

    response = client.simulate_post("/api/0/teams/acme/frontend/projects/",
                                    json={"slug": "mobile"}, headers=headers)

    assert response.status_code == 201


def test_duplicate_slug_answers_409(client, world):
    response = client.simulate_post("/api/0/organizations/acme/teams/",
                                    json={"slug": "frontend"}, headers=world.headers())

    assert response.status_code == 409
    assert "already exists" in response.json["detail"]


def test_member_lists_only_projects_it_may_use(client, world):
    response = client.simulate_get("/api/0/organizations/acme/projects/",
                                   headers=world.headers("frontend"))

    assert [p["slug"] for p in response.json] == ["web"]
