"""Registering and listing an organization's repositories."""

from __future__ import annotations

from uuid import UUID

import falcon.testing

from tests.builders import CAUSE, World, release_body
from tests.pages import all_pages

REPOS = "/api/0/organizations/acme/repos/"


def register(client: falcon.testing.TestClient, world: World, name: str, who: str = "superuser",
             **fields):
    return client.simulate_post(REPOS, json={"name": name, **fields}, headers=world.headers(who))


def test_register_returns_repository_body(client, world):
    response = register(client, world, "acme/app", url="https://git.example.com/acme/app",
                        provider="integrations:github")

    assert response.status_code == 201
    body = response.json
    assert response.headers["location"] == f"/api/0/organizations/acme/repos/{body['id']}/"
    assert isinstance(body["id"], str)
    assert body["name"] == "acme/app"
    assert body["url"] == "https://git.example.com/acme/app"
    assert body["provider"] == {"id": "integrations:github", "name": "GitHub"}
    assert body["status"] == "active"
    assert body["dateCreated"].endswith("Z")


def test_id_is_ledger_position_of_creation(client, world):
    response = register(client, world, "acme/app")

    assert response.json["id"] == response.headers["x-ledger-position"]


def test_register_again_changes_url_and_keeps_name(client, world):
    first = register(client, world, "Acme/App")

    again = register(client, world, "acme/app", url="/srv/git/app", provider="git")
    listed = client.simulate_get(REPOS, headers=world.headers()).json

    assert again.status_code == 200
    assert again.json["id"] == first.json["id"]
    assert [(r["name"], r["url"], r["provider"]["id"]) for r in listed] == [
        ("Acme/App", "/srv/git/app", "git")
    ]


def test_repository_without_provider_shows_placeholder(client, world):
    response = register(client, world, "acme/app")

    assert response.json["provider"] == {"id": "unknown", "name": "Unknown Provider"}
    assert response.json["url"] is None


def test_invalid_repository_fields_name_the_field(client, world):
    cases = [
        ({"name": ""}, "name"),
        ({"name": " padded "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "acme/app", "provider": "Not A Provider"}, "provider"),
        ({"name": "acme/app", "url": "https://x\n"}, "url"),
        ({}, "name"),
    ]

    for body, field in cases:
        response = client.simulate_post(REPOS, json=body, headers=world.headers())

        assert response.status_code == 400, body
        assert field in response.json, response.json


def test_only_admins_register_repositories(client, world):
    member = register(client, world, "acme/app", who="frontend")
    org_token = register(client, world, "acme/app", who="org")

    assert member.status_code == 403
    assert org_token.status_code == 403
    assert client.simulate_get(REPOS, headers=world.headers()).json == []


def test_release_tokens_list_repositories(client, world):
    register(client, world, "acme/app")

    member = client.simulate_get(REPOS, headers=world.headers("frontend"))
    org_token = client.simulate_get(REPOS, headers=world.headers("org"))

    assert [r["name"] for r in member.json] == ["acme/app"]
    assert [r["name"] for r in org_token.json] == ["acme/app"]


def test_list_pages_through_every_repository_once(client, world):
    for index in range(5):
        register(client, world, f"acme/repo-{index}")

    items, pages = all_pages(client, REPOS, world.headers(), {"per_page": 2})
    last = client.simulate_get(REPOS, params={"per_page": 5}, headers=world.headers())

    assert [item["name"] for item in items] == [f"acme/repo-{index}" for index in range(5)]
    assert pages == 3
    assert 'rel="next"; results="false"' in last.headers["link"]


def test_commit_creates_repository_on_first_use(client, world):
    client.simulate_post("/api/0/organizations/acme/releases/",
                         json=release_body("1.0", commits=[{"id": "abc", "repository": "origin"}]),
                         headers=world.headers())

    listed = client.simulate_get(REPOS, headers=world.headers()).json

    assert [(r["name"], r["provider"]["id"]) for r in listed] == [("origin", "unknown")]


def test_repository_detail_by_id(client, world):
    created = register(client, world, "acme/app").json

    found = client.simulate_get(f"{REPOS}{created['id']}/", headers=world.headers())
    missing = client.simulate_get(f"{REPOS}999999/", headers=world.headers())
    not_a_number = client.simulate_get(f"{REPOS}abc/", headers=world.headers())

    assert found.json == created
    assert missing.status_code == 404
    assert not_a_number.status_code == 404


def test_repositories_of_other_organizations_stay_hidden(client, world, services):
    services.ledger.create_organization("globex", None, False, CAUSE)
    globex = services.ledger.get_organization("globex")
    services.ledger.register_repository(UUID(str(globex.id)), "globex/app", None, "git", CAUSE)

    acme = client.simulate_get(REPOS, headers=world.headers()).json
    other = client.simulate_get("/api/0/organizations/globex/repos/", headers=world.headers())
    member_of_acme = client.simulate_get("/api/0/organizations/globex/repos/",
                                         headers=world.headers("frontend"))

    assert acme == []
    assert [r["name"] for r in other.json] == ["globex/app"]
    assert member_of_acme.status_code == 404
