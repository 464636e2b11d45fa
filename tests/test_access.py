"""Who may see and change which releases."""

from __future__ import annotations

import pytest

from tests.builders import CAUSE

R = "/api/0/organizations/acme/releases/"


@pytest.fixture
def releases(client, world):
    for version, project in (("web-1", "web"), ("api-1", "api"), ("both-1", "web")):
        client.simulate_post(R, json={"version": version, "projects": [project]},
                             headers=world.headers())
    client.simulate_post(R, json={"version": "both-1", "projects": ["api"]},
                         headers=world.headers())


def listed(client, headers) -> list[str]:
    return sorted(r["version"] for r in client.simulate_get(R, headers=headers).json)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_missing_token_answers_401(client, world, releases, method):
    path = R if method in ("GET", "POST") else f"{R}web-1/"

    response = client.simulate_request(method, path, json={"version": "x", "projects": ["web"]})

    assert response.status_code == 401
    assert list(response.json) == ["detail"]


def test_unknown_token_answers_401(client, world, releases):
    response = client.simulate_get(R, headers={"Authorization": "Bearer sntryu_" + "0" * 64})

    assert response.status_code == 401
    assert response.json == {"detail": "Invalid token."}


@pytest.mark.parametrize(("scopes", "method", "expected"), [
    (("org:read",), "GET", 403),
    (("project:read",), "GET", 200),
    (("project:read",), "POST", 403),
    (("project:write",), "POST", 208),
    (("project:write",), "DELETE", 403),
    (("project:releases",), "DELETE", 204),
    (("org:ci",), "PUT", 200),
])
def test_scopes_decide_methods(client, world, releases, scopes, method, expected):
    token = world.token(user=None, org="acme", scopes=scopes)
    path = R if method in ("GET", "POST") else f"{R}web-1/"

    response = client.simulate_request(
        method, path, json={"version": "web-1", "projects": ["web"]} if method == "POST"
        else ({"ref": "x"} if method == "PUT" else None),
        headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == expected


def test_team_member_sees_only_team_projects(client, world, releases):
    versions = listed(client, world.headers("frontend"))

    assert versions == ["both-1", "web-1"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_release_of_another_team_is_404(client, world, releases, method):
    response = client.simulate_request(method, f"{R}api-1/", json={"ref": "x"},
                                       headers=world.headers("frontend"))

    assert response.status_code == 404
    assert response.json == {"detail": "Release not found."}


def test_open_membership_sees_every_project(client, world, services, releases):
    services.ledger.create_organization("openorg", None, True, CAUSE)
    services.ledger.create_team("openorg", "everyone", None, CAUSE)
    services.ledger.create_project("openorg", "site", None, ["everyone"], CAUSE)
    services.ledger.create_project("openorg", "docs", None, ["everyone"], CAUSE)
    member = world.user(org="openorg")
    headers = {"Authorization": f"Bearer {member}"}

    created = client.simulate_post("/api/0/organizations/openorg/releases/",
                                   json={"version": "1", "projects": ["site", "docs"]},
                                   headers=headers)

    assert created.status_code == 201


def test_superuser_and_organization_token_see_all(client, world, releases):
    assert listed(client, world.headers()) == ["api-1", "both-1", "web-1"]
    assert listed(client, world.headers("org")) == ["api-1", "both-1", "web-1"]


def test_non_member_gets_404_for_the_organization(client, world, services, releases):
    services.ledger.create_organization("globex", None, False, CAUSE)
    outsider = world.user(org="globex")

    response = client.simulate_get(R, headers={"Authorization": f"Bearer {outsider}"})

    assert response.status_code == 404


def test_organization_token_of_another_organization_gets_404(client, world, services):
    services.ledger.create_organization("globex", None, False, CAUSE)
    token = world.token(org="globex", scopes=("org:ci",))

    response = client.simulate_get(R, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 404


def test_project_endpoint_of_another_team_is_404(client, world, releases):
    response = client.simulate_get("/api/0/projects/acme/api/releases/",
                                   headers=world.headers("frontend"))

    assert response.status_code == 404


def test_list_orders_by_release_date_over_creation_date(client, world):
    for version in ("first", "second", "third"):
        client.simulate_post(R, json={"version": version, "projects": ["web"]},
                             headers=world.headers())
    client.simulate_put(f"{R}first/", json={"dateReleased": "2100-01-01T00:00:00Z"},
                        headers=world.headers())
    client.simulate_put(f"{R}second/", json={"dateReleased": "2000-01-01T00:00:00Z"},
                        headers=world.headers())

    versions = [r["version"] for r in client.simulate_get(R, headers=world.headers()).json]

    assert versions == ["first", "third", "second"]


def test_query_keeps_versions_starting_with_it_ignoring_case(client, world):
    for version in ("App-1.0", "app-2.0", "web-app-1", "a_p%"):
        client.simulate_post(R, json={"version": version, "projects": ["web"]},
                             headers=world.headers())

    found = client.simulate_get(R, params={"query": "APP"}, headers=world.headers()).json
    literal = client.simulate_get(R, params={"query": "a_"}, headers=world.headers()).json

    assert sorted(r["version"] for r in found) == ["App-1.0", "app-2.0"]
    assert [r["version"] for r in literal] == ["a_p%"]


def test_project_filter_takes_project_ids(client, world, releases):
    projects = client.simulate_get("/api/0/organizations/acme/projects/",
                                   headers=world.headers()).json
    api_id = next(p["id"] for p in projects if p["slug"] == "api")

    response = client.simulate_get(R, params={"project": api_id}, headers=world.headers())

    assert sorted(r["version"] for r in response.json) == ["api-1", "both-1"]
