"""A release's history through the API: every lifetime, in order, for the right callers."""

from __future__ import annotations

import json

import falcon.testing

from api.audit import history_fields, json_items
from tests.builders import RELEASE_SCOPES, World, build_world, release_body
from tests.paging import all_pages, get_link, links

R = "/api/0/organizations/acme/releases/"
AUDITOR_SCOPES = (*RELEASE_SCOPES, "org:read")


def create(client: falcon.testing.TestClient, world: World, version: str, *projects: str,
           who: str = "superuser", request_id: str | None = None, **fields):
    headers = world.headers(who)
    if request_id:
        headers["X-Request-ID"] = request_id
    response = client.simulate_post(R, json=release_body(version, *projects, **fields),
                                    headers=headers)
    assert response.status_code in (201, 208), response.json
    return response


def history(client: falcon.testing.TestClient, world: World, version: str,
            who: str = "superuser", **params) -> falcon.testing.Result:
    return client.simulate_get(f"{R}{version}/history/", params=params,
                               headers=world.headers(who))


def me(client: falcon.testing.TestClient, world: World, who: str) -> dict:
    return client.simulate_get("/api/0/", headers=world.headers(who)).json["user"]


def public_id(client: falcon.testing.TestClient, world: World, project: str) -> str:
    projects = client.simulate_get("/api/0/organizations/acme/projects/",
                                   headers=world.headers()).json
    return next(p["id"] for p in projects if p["slug"] == project)


def live_release_lifetimes(client, world) -> None:
    """Create 1.0 on web, change it, delete it, and create it again on api."""
    create(client, world, "1.0", "web", ref="first", request_id="req-create")
    client.simulate_put(f"{R}1.0/", json={"ref": "second", "commits": [{"id": "a1a1a1a"}]},
                        headers={**world.headers(), "X-Request-ID": "req-update"})
    client.simulate_delete(f"{R}1.0/", headers={**world.headers(), "X-Request-ID": "req-delete"})
    create(client, world, "1.0", "api", request_id="req-again")


def test_history_lists_every_lifetime_in_order(client, world):
    live_release_lifetimes(client, world)

    response = history(client, world, "1.0")

    assert response.status_code == 200
    items = response.json
    assert [item["type"] for item in items] == [
        "release.created", "release.project_added", "release.updated", "release.commits_set",
        "release.deleted", "release.recreated", "release.project_added",
    ]
    assert [item["sequence"] for item in items] == list(range(1, 8))
    positions = [int(item["id"]) for item in items]
    assert positions == sorted(positions)
    assert [item["requestId"] for item in items] == [
        "req-create", "req-create", "req-update", "req-update", "req-delete", "req-again",
        "req-again",
    ]
    assert items[0]["dateCreated"].endswith("Z")
    assert items[0]["dateCreated"] <= items[-1]["dateCreated"]


def test_history_names_the_actor(client, world):
    create(client, world, "1.0", "web")
    user = me(client, world, "superuser")

    items = history(client, world, "1.0").json

    assert items[0]["actor"] == {"type": "user", "id": user["id"], "email": user["email"]}


def test_history_data_uses_api_names_and_public_ids(client, world):
    user = me(client, world, "superuser")
    create(client, world, "1.0", "web", ref="abc", owner=user["email"],
           dateReleased="2024-01-01T00:00:00Z")

    items = history(client, world, "1.0").json

    created, project_added, released = items[0]["data"], items[1]["data"], items[2]["data"]
    assert created["version"] == "1.0"
    assert created["ref"] == "abc"
    assert created["owner"] == user["id"]
    assert created["dateStarted"] is None
    assert "versionStr" not in created
    assert "ownerId" not in created
    assert project_added["projects"] == [public_id(client, world, "web")]
    assert released["dateReleased"] == "2024-01-01T00:00:00.000000Z"
    assert released["projects"] == [public_id(client, world, "web")]


def test_history_hash_is_the_chain_link(client, world, services):
    create(client, world, "1.0", "web")

    items = history(client, world, "1.0").json

    recorder = services.ledger.recorder
    for item in items:
        position = int(item["id"])
        (link,) = recorder.select_links(position - 1, 1, position)
        assert item["hash"] == link.hash


def test_history_shows_every_commit_list(client, world):
    create(client, world, "app@6.43.0", "web")
    first = [{"id": f"{index:07x}", "repository": "acme/app"} for index in range(50)]
    second = [{"id": f"{index + 100:07x}", "repository": "acme/app"} for index in range(26)]

    client.simulate_put(f"{R}app@6.43.0/", json={"commits": first}, headers=world.headers())
    updated = client.simulate_put(f"{R}app@6.43.0/", json={"commits": second},
                                  headers=world.headers())
    items = history(client, world, "app@6.43.0").json

    commit_lists = [item["data"]["commits"] for item in items
                    if item["type"] == "release.commits_set"]
    assert updated.json["commitCount"] == 26
    assert [len(commits) for commits in commit_lists] == [50, 26]
    assert commit_lists[1][0]["id"] == second[0]["id"]
    assert commit_lists[1][0]["repository"] == "acme/app"
    assert "patchSet" in commit_lists[1][0]


def test_history_pages_follow_the_link_header(client, world):
    live_release_lifetimes(client, world)
    everything = history(client, world, "1.0").json

    pages = all_pages(client, f"{R}1.0/history/", world.headers(), {"per_page": "2"})

    assert [len(page) for page in pages] == [2, 2, 2, 1]
    assert [item["id"] for page in pages for item in page] == [i["id"] for i in everything]


def test_history_previous_link_returns_the_page_before(client, world):
    live_release_lifetimes(client, world)
    first = history(client, world, "1.0", per_page="3")
    second = get_link(client, links(first)["next"][0], world.headers())

    back = get_link(client, links(second)["previous"][0], world.headers())

    assert links(first)["previous"][1] is False
    assert links(second)["previous"][1] is True
    assert back.json == first.json


def test_history_of_live_release_follows_its_visibility(client, world):
    create(client, world, "1.0", "api")
    world.tokens["backend"] = world.user(teams=("backend",))

    frontend = history(client, world, "1.0", who="frontend")
    backend = history(client, world, "1.0", who="backend")

    assert frontend.status_code == 404
    assert backend.status_code == 200


def test_history_of_deleted_release_is_for_auditors(client, world):
    create(client, world, "1.0", "web")
    client.simulate_delete(f"{R}1.0/", headers=world.headers())
    world.tokens["admin"] = world.user(role="admin", scopes=AUDITOR_SCOPES)
    world.tokens["owner"] = world.user(role="owner", scopes=AUDITOR_SCOPES)
    world.tokens["member"] = world.user(teams=("frontend",), scopes=AUDITOR_SCOPES)
    world.tokens["root"] = world.user(superuser=True, scopes=AUDITOR_SCOPES)
    world.tokens["org-read"] = world.token(org="acme", scopes=("org:read",))

    statuses = {who: history(client, world, "1.0", who=who).status_code
                for who in ("admin", "owner", "root", "org-read", "member", "frontend", "org",
                            "superuser")}

    assert statuses == {"admin": 200, "owner": 200, "root": 200, "org-read": 200,
                        "member": 404, "frontend": 404, "org": 404, "superuser": 404}


def test_history_of_deleted_release_keeps_every_event(client, world):
    create(client, world, "1.0", "web")
    client.simulate_delete(f"{R}1.0/", headers=world.headers())
    world.tokens["org-read"] = world.token(org="acme", scopes=("org:read",))

    items = history(client, world, "1.0", who="org-read").json

    assert [item["type"] for item in items] == [
        "release.created", "release.project_added", "release.deleted"]


def test_history_of_unknown_release_is_404(client, world):
    world.tokens["org-read"] = world.token(org="acme", scopes=("org:read",))

    response = history(client, world, "nope", who="org-read")

    assert response.status_code == 404
    assert response.json == {"detail": "Release not found."}


def test_history_of_another_organizations_release_is_404(client, world, services):
    create(client, world, "1.0", "web")
    build_world(services, org="globex")
    globex_token = world.token(org="globex", scopes=("org:read",))

    response = client.simulate_get("/api/0/organizations/globex/releases/1.0/history/",
                                   headers={"Authorization": f"Bearer {globex_token}"})

    assert response.status_code == 404


def test_history_rejects_an_invalid_cursor(client, world):
    create(client, world, "1.0", "web")

    response = history(client, world, "1.0", cursor="abc:0:0")

    assert response.status_code == 400


def test_history_serves_stored_data(client, world):
    # Items are written around each event's stored data text, not decoded
    # and encoded again; the result must still be the JSON of each item.
    create(client, world, "1.0", "web", ref="naïve \"quoted\" \\ ref\n")
    client.simulate_put(f"{R}1.0/", json={"commits": [
        {"id": "b1b1b1b", "message": "Ünïcode ✓ and </script>", "patch_set": []},
    ]}, headers=world.headers())

    response = history(client, world, "1.0")

    assert response.headers["content-type"].startswith("application/json")
    created, _, commits = response.json
    assert created["data"]["ref"] == "naïve \"quoted\" \\ ref\n"
    assert commits["data"]["commits"][0]["message"] == "Ünïcode ✓ and </script>"
    assert list(created) == ["id", "type", "sequence", "dateCreated", "actor", "requestId",
                             "hash", "data"]


def test_json_items_keep_data_in_its_item():
    # The items' fields are encoded together and each one's data goes in
    # after. A field containing the text that marks where data goes must
    # not move any data to another item.
    marker = '"data":""}'
    rows = [
        {"position": index, "type": "release.updated", "sequence": index,
         "date_created": "2026-01-01T00:00:00Z", "actor_type": "user", "actor_id": marker,
         "actor_email": f"{marker}{index}@example.com", "request_id": marker * index,
         "hash": "ab" * 32, "data": f'{{"index":{index}}}'}
        for index in range(3)
    ]

    items = json.loads(json_items(rows, history_fields))

    assert [item["data"] for item in items] == [{"index": 0}, {"index": 1}, {"index": 2}]
    assert [item["requestId"] for item in items] == ["", marker, marker * 2]
    assert items[1]["actor"] == {"type": "user", "id": marker,
                                 "email": f"{marker}1@example.com"}
    assert json_items([], history_fields) == b"[]"
