"""Reading a release and the release list as they were at an instant, with ?at=."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import falcon.testing

from tests.builders import RELEASE_SCOPES, World, release_body
from tests.paging import all_pages

R = "/api/0/organizations/acme/releases/"


def create(client: falcon.testing.TestClient, world: World, version: str, *projects: str,
           **fields) -> falcon.testing.Result:
    response = client.simulate_post(R, json=release_body(version, *projects, **fields),
                                    headers=world.headers())
    assert response.status_code in (201, 208), response.json
    return response


def history(client: falcon.testing.TestClient, world: World, version: str) -> list[dict]:
    world.tokens.setdefault("auditor", world.token(org="acme", scopes=("org:read",)))
    return client.simulate_get(f"{R}{version}/history/", headers=world.headers("auditor")).json


def instant(text: str, micros: int = 0) -> str:
    """Return an RFC 3339 instant `micros` microseconds after the one given."""
    return (datetime.fromisoformat(text) + timedelta(microseconds=micros)).isoformat()


def now() -> str:
    """Return the current instant, after waiting so that later events are stamped after it."""
    time.sleep(0.002)
    moment = datetime.now(UTC).isoformat()
    time.sleep(0.002)
    return moment


def show(client: falcon.testing.TestClient, world: World, version: str, at: str,
         who: str = "superuser") -> falcon.testing.Result:
    return client.simulate_get(f"{R}{version}/", params={"at": at}, headers=world.headers(who))


def test_release_at_instants_across_its_lifetimes(client, world):
    create(client, world, "1.0", "web", ref="first")
    client.simulate_put(f"{R}1.0/", json={"ref": "second"}, headers=world.headers())
    client.simulate_delete(f"{R}1.0/", headers=world.headers())
    create(client, world, "1.0", "api", ref="third")
    times = {item["type"]: item["dateCreated"] for item in history(client, world, "1.0")}

    before_creation = show(client, world, "1.0", instant(times["release.created"], -1))
    at_creation = show(client, world, "1.0", times["release.created"])
    before_update = show(client, world, "1.0", instant(times["release.updated"], -1))
    at_update = show(client, world, "1.0", times["release.updated"])
    after_deletion = show(client, world, "1.0", instant(times["release.deleted"], 1))
    recreated = show(client, world, "1.0", times["release.recreated"])

    assert before_creation.status_code == 404
    assert at_creation.status_code == 200
    assert at_creation.json["ref"] == "first"
    assert [p["slug"] for p in at_creation.json["projects"]] == ["web"]
    assert before_update.json["ref"] == "first"
    assert at_update.json["ref"] == "second"
    assert after_deletion.status_code == 404
    assert recreated.json["ref"] == "third"
    assert [p["slug"] for p in recreated.json["projects"]] == ["api"]
    assert recreated.json["id"] != at_creation.json["id"]


def test_deleted_release_is_read_as_it_was(client, world):
    create(client, world, "1.0", "web", ref="kept", dateReleased="2024-01-01T00:00:00Z")
    live = client.simulate_get(f"{R}1.0/", headers=world.headers()).json
    moment = now()

    client.simulate_delete(f"{R}1.0/", headers=world.headers())
    gone = client.simulate_get(f"{R}1.0/", headers=world.headers())
    then = show(client, world, "1.0", moment)

    assert gone.status_code == 404
    assert then.status_code == 200
    assert then.json == live


def test_release_at_instant_matches_live_read(client, world):
    create(client, world, "1.0", "web", "api", ref="a", dateReleased="2024-01-01T00:00:00Z")
    client.simulate_put(f"{R}1.0/", json={"commits": [{"id": "c1", "author_email": "a@x"}]},
                        headers=world.headers())
    client.simulate_post(f"{R}1.0/deploys/", json={"environment": "production"},
                         headers=world.headers())
    live = client.simulate_get(f"{R}1.0/", headers=world.headers()).json
    moment = now()

    client.simulate_put(f"{R}1.0/", json={"ref": "b", "commits": []}, headers=world.headers())
    client.simulate_post(f"{R}1.0/deploys/", json={"environment": "staging"},
                         headers=world.headers())
    client.simulate_post(R, json={"version": "1.0", "projects": [], "status": "archived"},
                         headers=world.headers())
    then = show(client, world, "1.0", moment)

    assert then.json == live
    assert then.json["commitCount"] == 1
    assert then.json["deployCount"] == 1


def test_list_at_instant_matches_live_list(client, world):
    create(client, world, "1.0", "web", dateReleased="2024-01-01T00:00:00Z")
    create(client, world, "2.0", "api")
    create(client, world, "app-3", "web", "billing", dateReleased="2023-06-01T00:00:00Z")
    create(client, world, "app-4", "web")
    client.simulate_post(R, json={"version": "app-4", "projects": [], "status": "archived"},
                         headers=world.headers())
    queries = [{}, {"status": "archived"}, {"query": "app"}, {"project": "3"}]
    live = [client.simulate_get(R, params=q, headers=world.headers()).json for q in queries]
    live_project = client.simulate_get("/api/0/projects/acme/web/releases/",
                                       headers=world.headers()).json
    moment = now()

    client.simulate_delete(f"{R}1.0/", headers=world.headers())
    client.simulate_put(f"{R}2.0/", json={"dateReleased": "2025-01-01T00:00:00Z"},
                        headers=world.headers())
    create(client, world, "app-5", "web")
    client.simulate_post(R, json={"version": "app-4", "projects": [], "status": "open"},
                         headers=world.headers())
    then = [client.simulate_get(R, params={**q, "at": moment}, headers=world.headers()).json
            for q in queries]
    then_project = client.simulate_get("/api/0/projects/acme/web/releases/",
                                       params={"at": moment}, headers=world.headers()).json

    assert then == live
    assert then_project == live_project
    assert [r["version"] for r in then[0]] == ["2.0", "1.0", "app-3"]
    assert [r["version"] for r in then[1]] == ["app-4"]


def test_list_at_instant_pages_alike(client, world):
    for number in range(5):
        create(client, world, f"{number}.0", "web")
    live_pages = all_pages(client, R, world.headers(), {"per_page": "2"})
    moment = now()

    for number in range(5, 8):
        create(client, world, f"{number}.0", "web")
    client.simulate_delete(f"{R}2.0/", headers=world.headers())
    then_pages = all_pages(client, R, world.headers(), {"per_page": "2", "at": moment})

    assert then_pages == live_pages
    assert [len(page) for page in then_pages] == [2, 2, 1]


def test_release_list_before_any_release_is_empty(client, world):
    moment = now()
    create(client, world, "1.0", "web")

    response = client.simulate_get(R, params={"at": moment}, headers=world.headers())

    assert response.status_code == 200
    assert response.json == []


def test_visibility_at_an_instant_follows_the_links_then(client, world):
    create(client, world, "1.0", "web")
    moment = now()
    client.simulate_delete(f"{R}1.0/", headers=world.headers())
    create(client, world, "1.0", "api")

    then = show(client, world, "1.0", moment, who="frontend")
    live = client.simulate_get(f"{R}1.0/", headers=world.headers("frontend"))
    listed_then = client.simulate_get(R, params={"at": moment},
                                      headers=world.headers("frontend")).json

    assert then.status_code == 200
    assert live.status_code == 404
    assert [r["version"] for r in listed_then] == ["1.0"]


def test_events_of_one_request_take_effect_together(client, world):
    create(client, world, "1.0", "web", "api", dateReleased="2024-01-01T00:00:00Z",
           commits=[{"id": "c1"}])
    created = history(client, world, "1.0")[0]["dateCreated"]

    response = show(client, world, "1.0", created)

    assert [p["slug"] for p in response.json["projects"]] == ["api", "web"]
    assert response.json["dateReleased"] == "2024-01-01T00:00:00.000000Z"
    assert response.json["commitCount"] == 1


def test_instant_without_offset_is_read_as_utc(client, world):
    create(client, world, "1.0", "web")
    created = history(client, world, "1.0")[0]["dateCreated"]

    response = show(client, world, "1.0", created.removesuffix("Z"))

    assert response.status_code == 200


def test_invalid_instant_is_rejected(client, world):
    create(client, world, "1.0", "web")

    detail = show(client, world, "1.0", "last tuesday")
    listed = client.simulate_get(R, params={"at": "2024-02-30T00:00:00Z"},
                                 headers=world.headers())

    assert detail.status_code == 400
    assert "at" in detail.json
    assert listed.status_code == 400
    assert "at" in listed.json


def test_release_at_an_instant_needs_read_access(client, world):
    create(client, world, "1.0", "api")
    moment = now()
    world.tokens["no-scope"] = world.user(teams=("backend",), scopes=("org:read",))
    world.tokens["backend"] = world.user(teams=("backend",), scopes=RELEASE_SCOPES)

    frontend = show(client, world, "1.0", moment, who="frontend")
    no_scope = show(client, world, "1.0", moment, who="no-scope")
    backend = show(client, world, "1.0", moment, who="backend")

    assert frontend.status_code == 404
    assert no_scope.status_code == 403
    assert backend.status_code == 200
