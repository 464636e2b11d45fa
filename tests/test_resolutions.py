"""Issues resolved by the commits of a release: `Fixes WEB-12` in a commit message."""

from __future__ import annotations

from uuid import UUID

import falcon.testing
import pytest

from domain.issue import Issue, find_fixed_short_ids
from tests.builders import World, release_body

R = "/api/0/organizations/acme/releases/"


def create_release(client: falcon.testing.TestClient, world: World, version: str,
                   *projects: str, **fields):
    response = client.simulate_post(R, json=release_body(version, *projects, **fields),
                                    headers=world.headers())
    assert response.status_code == 201
    return response


def create_issue(client: falcon.testing.TestClient, world: World, short_id: str,
                 project: str = "web") -> None:
    response = client.simulate_post(f"/api/0/projects/acme/{project}/issues/",
                                    json={"shortId": short_id, "title": f"Error {short_id}"},
                                    headers=world.headers())
    assert response.status_code == 201


def set_commits(client: falcon.testing.TestClient, world: World, version: str,
                *messages: str):
    commits = [{"id": f"{index:040x}", "repository": "acme/app", "message": message}
               for index, message in enumerate(messages, start=1)]
    response = client.simulate_put(f"{R}{version}/", json={"commits": commits},
                                   headers=world.headers())
    assert response.status_code == 200
    return response


def resolved(client: falcon.testing.TestClient, world: World, version: str,
             who: str = "superuser") -> list[str]:
    response = client.simulate_get(f"{R}{version}/resolved/", headers=world.headers(who))
    assert response.status_code == 200
    return [issue["shortId"] for issue in response.json]


def status(client: falcon.testing.TestClient, world: World, short_id: str,
           project: str = "web") -> str:
    return client.simulate_get(f"/api/0/projects/acme/{project}/issues/{short_id}/",
                               headers=world.headers()).json["status"]


def resolution_activity(client: falcon.testing.TestClient, world: World) -> list[dict]:
    items = client.simulate_get("/api/0/organizations/acme/activity/",
                                headers=world.headers()).json
    return [item for item in items if item["type"] == "set_resolved_in_release"]


@pytest.mark.parametrize(("message", "expected"), [
    ("Fixes WEB-12", ["WEB-12"]),
    ("fix web-12", ["WEB-12"]),
    ("FIXED WEB-12", ["WEB-12"]),
    ("Resolve WEB-12", ["WEB-12"]),
    ("resolves: WEB-12", ["WEB-12"]),
    ("Resolved WEB-12.", ["WEB-12"]),
    ("Fixes WEB-12, WEB-13 and API-4", ["WEB-12", "WEB-13", "API-4"]),
    ("Fixes WEB-12 & WEB-13 WEB-14", ["WEB-12", "WEB-13", "WEB-14"]),
    ("Fix MY-APP-1A", ["MY-APP-1A"]),
    ("Tidy up\n\nFixes WEB-1\nResolves WEB-2", ["WEB-1", "WEB-2"]),
    ("Fixes WEB-12 and fixes web-12", ["WEB-12"]),
    ("Fixes WEB-12 and the login page", ["WEB-12"]),
    ("Prefixes WEB-12", []),
    ("Unresolved WEB-12", []),
    ("Fixing WEB-12", []),
    ("Mentions WEB-12", []),
    ("Fixes #12", []),
    ("", []),
    (None, []),
])
def test_fixed_short_ids_are_found(message, expected):
    assert find_fixed_short_ids(message) == expected


def test_commit_message_resolves_issue(client, world):
    create_release(client, world, "1.0", "web")
    create_issue(client, world, "WEB-12")
    create_issue(client, world, "WEB-13")

    set_commits(client, world, "1.0", "Fix the header", "fixes web-12 in the footer")

    assert status(client, world, "WEB-12") == "resolved"
    assert status(client, world, "WEB-13") == "unresolved"
    assert resolved(client, world, "1.0") == ["WEB-12"]


def test_every_keyword_resolves_in_any_case(client, world):
    create_release(client, world, "1.0", "web", "api")
    messages = ["Fix WEB-1", "fixes web-2", "FIXED WEB-3", "Resolve WEB-4", "resolves: WEB-5",
                "ReSoLvEd WEB-6", "Fixes WEB-7, WEB-8 and API-1"]
    short_ids = [f"WEB-{number}" for number in range(1, 9)]
    for short_id in short_ids:
        create_issue(client, world, short_id)
    create_issue(client, world, "API-1", project="api")

    set_commits(client, world, "1.0", *messages)

    assert sorted(resolved(client, world, "1.0")) == sorted([*short_ids, "API-1"])
    for short_id in short_ids:
        assert status(client, world, short_id) == "resolved", short_id
    assert status(client, world, "API-1", project="api") == "resolved"


def test_commits_given_on_create_resolve_issues(client, world):
    create_issue(client, world, "WEB-12")

    create_release(client, world, "1.0", "web",
                   commits=[{"id": "a" * 40, "message": "Fixes WEB-12"}])

    assert resolved(client, world, "1.0") == ["WEB-12"]
    assert status(client, world, "WEB-12") == "resolved"


def test_resolution_adds_activity_once(client, world):
    create_release(client, world, "1.0", "web")
    create_issue(client, world, "WEB-12")

    set_commits(client, world, "1.0", "Fixes WEB-12")
    set_commits(client, world, "1.0", "Fixes WEB-12", "Another change")

    items = resolution_activity(client, world)
    assert len(items) == 1
    assert items[0]["project"]["slug"] == "web"
    assert items[0]["data"] == {"version": "1.0", "issue": "WEB-12", "commit": f"{1:040x}"}


def test_resolution_is_recorded_with_the_commits(client, world):
    create_release(client, world, "1.0", "web")
    create_issue(client, world, "WEB-12")

    response = set_commits(client, world, "1.0", "Fixes WEB-12")

    with world.services.read() as queries:
        org_id = UUID(queries.directory.organization("acme")["id"])
    events = list(world.services.ledger.events.get(Issue.create_id(org_id, "WEB-12")))
    assert type(events[-1]).__name__ == "ResolvedInRelease"
    assert int(response.headers["x-ledger-position"]) == (
        world.services.ledger.recorder.max_notification_id())


def test_reopened_issue_resolves_again(client, world):
    create_release(client, world, "1.0", "web")
    create_release(client, world, "2.0", "web")
    create_issue(client, world, "WEB-12")
    set_commits(client, world, "1.0", "Fixes WEB-12")
    client.simulate_put("/api/0/projects/acme/web/issues/WEB-12/",
                        json={"status": "unresolved"}, headers=world.headers())

    set_commits(client, world, "2.0", "Really fixes WEB-12")

    assert status(client, world, "WEB-12") == "resolved"
    assert resolved(client, world, "1.0") == ["WEB-12"]
    assert resolved(client, world, "2.0") == ["WEB-12"]
    assert len(resolution_activity(client, world)) == 2


def test_unknown_and_deleted_issues_are_skipped(client, world):
    create_release(client, world, "1.0", "web")
    create_issue(client, world, "WEB-12")
    client.simulate_delete("/api/0/projects/acme/web/issues/WEB-12/", headers=world.headers())

    response = set_commits(client, world, "1.0", "Fixes WEB-12, WEB-99")

    assert response.json["commitCount"] == 1
    assert resolved(client, world, "1.0") == []
    assert resolution_activity(client, world) == []


def test_deleted_issue_leaves_resolved_list(client, world):
    create_release(client, world, "1.0", "web")
    create_issue(client, world, "WEB-12")
    set_commits(client, world, "1.0", "Fixes WEB-12")

    client.simulate_delete("/api/0/projects/acme/web/issues/WEB-12/", headers=world.headers())

    assert resolved(client, world, "1.0") == []


def test_resolved_list_shows_only_usable_projects(client, world):
    create_release(client, world, "1.0", "web", "api")
    create_issue(client, world, "WEB-12")
    create_issue(client, world, "API-3", project="api")

    set_commits(client, world, "1.0", "Fixes API-3", "Fixes WEB-12")

    assert resolved(client, world, "1.0") == ["API-3", "WEB-12"]
    assert resolved(client, world, "1.0", who="frontend") == ["WEB-12"]


def test_resolved_list_pages_in_resolution_order(client, world):
    create_release(client, world, "1.0", "web")
    create_release(client, world, "2.0", "web")
    for short_id in ("WEB-1", "WEB-2", "WEB-3"):
        create_issue(client, world, short_id)
    set_commits(client, world, "1.0", "Fixes WEB-2")
    set_commits(client, world, "1.0", "Fixes WEB-2", "Fixes WEB-3")
    set_commits(client, world, "1.0", "Fixes WEB-1, WEB-2, WEB-3")

    first = client.simulate_get(f"{R}1.0/resolved/", params={"per_page": "2"},
                                headers=world.headers())
    cursor = first.headers["link"].split('rel="next"; results="true"; cursor="')[1].split('"')[0]
    second = client.simulate_get(f"{R}1.0/resolved/", params={"per_page": "2", "cursor": cursor},
                                 headers=world.headers())

    assert [issue["shortId"] for issue in first.json] == ["WEB-2", "WEB-3"]
    assert [issue["shortId"] for issue in second.json] == ["WEB-1"]
    assert resolved(client, world, "2.0") == []


def test_resolved_list_of_missing_release_is_404(client, world):
    response = client.simulate_get(f"{R}missing/resolved/", headers=world.headers())

    assert response.status_code == 404
    assert response.json == {"detail": "Release not found."}


def test_deleted_release_forgets_its_resolutions(client, world):
    create_release(client, world, "1.0", "web")
    create_issue(client, world, "WEB-12")
    set_commits(client, world, "1.0", "Fixes WEB-12")
    client.simulate_delete(f"{R}1.0/", headers=world.headers())

    create_release(client, world, "1.0", "web")

    assert resolved(client, world, "1.0") == []
    assert status(client, world, "WEB-12") == "resolved"
