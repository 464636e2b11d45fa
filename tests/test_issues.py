"""Issues linked to releases through the REST API: creation, status, deletion, newGroups."""

from __future__ import annotations

import re
from urllib.parse import urlsplit
from uuid import UUID

import falcon.testing

from api.services import Services
from domain.issue import Issue
from tests.builders import World, release_body

R = "/api/0/organizations/acme/releases/"


def issues_path(project: str = "web") -> str:
    return f"/api/0/projects/acme/{project}/issues/"


def create_release(client: falcon.testing.TestClient, world: World, version: str, *projects: str):
    response = client.simulate_post(R, json=release_body(version, *projects),
                                    headers=world.headers())
    assert response.status_code == 201
    return response


def create_issue(client: falcon.testing.TestClient, world: World, short_id: str,
                 project: str = "web", who: str = "superuser", **fields):
    body = {"shortId": short_id, "title": f"Error in {short_id}", **fields}
    return client.simulate_post(issues_path(project), json=body, headers=world.headers(who))


def release(client: falcon.testing.TestClient, world: World, version: str) -> dict:
    response = client.simulate_get(f"{R}{version}/", headers=world.headers())
    assert response.status_code == 200
    return response.json


def new_groups_by_project(body: dict) -> dict[str, int]:
    return {project["slug"]: project["newGroups"] for project in body["projects"]}


def issue_event_names(services: Services, short_id: str) -> list[str]:
    with services.read() as queries:
        org_id = UUID(queries.directory.organization("acme")["id"])
    events = services.ledger.events.get(Issue.create_id(org_id, short_id))
    return [type(event).__name__ for event in events]


def next_link(response: falcon.testing.Result) -> str:
    """Return the path and query of the `rel="next"` item of a Link header."""
    match = re.search(r'<([^>]+)>; rel="next"', response.headers["link"])
    assert match is not None
    url = urlsplit(match.group(1))
    return f"{url.path}?{url.query}"


def head(services: Services) -> int:
    return services.ledger.recorder.max_notification_id() or 0


def test_create_issue_returns_its_body(client, world):
    create_release(client, world, "1.0", "web")

    response = create_issue(client, world, "web-12", title="TypeError: x is undefined",
                            firstRelease="1.0")

    assert response.status_code == 201
    assert response.headers["location"] == "/api/0/projects/acme/web/issues/WEB-12/"
    assert int(response.headers["x-ledger-position"]) > 0
    body = response.json
    assert body["id"].isdigit()
    assert body["shortId"] == "WEB-12"
    assert body["title"] == "TypeError: x is undefined"
    assert body["status"] == "unresolved"
    assert body["project"]["slug"] == "web"
    assert body["firstRelease"] == {"version": "1.0", "shortVersion": "1.0"}
    assert body["dateCreated"].endswith("Z")


def test_issue_without_first_release_is_accepted(client, world):
    response = create_issue(client, world, "WEB-1")

    assert response.status_code == 201
    assert response.json["firstRelease"] is None


def test_issue_is_read_listed_newest_first(client, world):
    create_issue(client, world, "WEB-1")
    create_issue(client, world, "WEB-2")
    create_issue(client, world, "API-1", project="api")

    shown = client.simulate_get(f"{issues_path()}web-1/", headers=world.headers())
    listed = client.simulate_get(issues_path(), headers=world.headers())
    paged = client.simulate_get(issues_path(), params={"per_page": "1"},
                                headers=world.headers())
    following = client.simulate_get(next_link(paged), headers=world.headers())

    assert shown.status_code == 200
    assert shown.json["shortId"] == "WEB-1"
    assert [issue["shortId"] for issue in listed.json] == ["WEB-2", "WEB-1"]
    assert [issue["shortId"] for issue in paged.json] == ["WEB-2"]
    assert [issue["shortId"] for issue in following.json] == ["WEB-1"]


def test_short_id_is_unique_per_organization(client, world):
    create_issue(client, world, "WEB-12")

    same = create_issue(client, world, "WEB-12")
    other_case = create_issue(client, world, "web-12")
    other_project = create_issue(client, world, "WEB-12", project="api")

    assert same.status_code == 409
    assert list(same.json) == ["detail"]
    assert "WEB-12" in same.json["detail"]
    assert other_case.status_code == 409
    assert other_project.status_code == 409
    assert issue_event_names(world.services, "WEB-12") == ["Created"]


def test_invalid_issue_fields_are_rejected(client, world):
    cases = [
        ({"title": "t"}, "shortId"),
        ({"shortId": "WEB12", "title": "t"}, "shortId"),
        ({"shortId": "WEB-", "title": "t"}, "shortId"),
        ({"shortId": "WEB 12", "title": "t"}, "shortId"),
        ({"shortId": "W" * 62 + "-12", "title": "t"}, "shortId"),
        ({"shortId": "WEB-12"}, "title"),
        ({"shortId": "WEB-12", "title": "   "}, "title"),
        ({"shortId": "WEB-12", "title": "t" * 1025}, "title"),
        ({"shortId": "WEB-12", "title": "t", "firstRelease": 7}, "firstRelease"),
    ]
    position = head(world.services)

    responses = [client.simulate_post(issues_path(), json=body, headers=world.headers())
                 for body, _ in cases]

    for (body, field), response in zip(cases, responses, strict=True):
        assert response.status_code == 400, body
        assert list(response.json) == [field], body
    assert head(world.services) == position


def test_first_release_must_exist_in_organization(client, world):
    position = head(world.services)

    response = create_issue(client, world, "WEB-12", firstRelease="9.9")

    assert response.status_code == 400
    assert list(response.json) == ["firstRelease"]
    assert "'9.9'" in response.json["firstRelease"][0]
    assert head(world.services) == position


def test_first_release_must_be_linked_to_project(client, world):
    create_release(client, world, "1.0", "api")
    position = head(world.services)

    response = create_issue(client, world, "WEB-12", firstRelease="1.0")

    assert response.status_code == 400
    assert list(response.json) == ["firstRelease"]
    assert head(world.services) == position


def test_deleted_release_cannot_be_first_release(client, world):
    create_release(client, world, "1.0", "web")
    client.simulate_delete(f"{R}1.0/", headers=world.headers())

    response = create_issue(client, world, "WEB-12", firstRelease="1.0")

    assert response.status_code == 400
    assert list(response.json) == ["firstRelease"]


def test_new_groups_count_issues_per_project(client, world):
    create_release(client, world, "1.0", "web", "api")
    create_release(client, world, "2.0", "web")
    create_issue(client, world, "WEB-1", firstRelease="1.0")
    create_issue(client, world, "WEB-2", firstRelease="1.0")
    create_issue(client, world, "API-1", project="api", firstRelease="1.0")
    create_issue(client, world, "WEB-3", firstRelease="2.0")
    create_issue(client, world, "WEB-4")

    first = release(client, world, "1.0")
    second = release(client, world, "2.0")
    listed = {item["version"]: item for item in
              client.simulate_get(R, headers=world.headers()).json}

    assert first["newGroups"] == 3
    assert new_groups_by_project(first) == {"api": 1, "web": 2}
    assert second["newGroups"] == 1
    assert new_groups_by_project(second) == {"web": 1}
    assert listed["1.0"]["newGroups"] == 3
    assert new_groups_by_project(listed["1.0"]) == {"api": 1, "web": 2}


def test_status_changes_are_recorded(client, world):
    create_issue(client, world, "WEB-12")
    path = f"{issues_path()}WEB-12/"

    resolved = client.simulate_put(path, json={"status": "resolved"}, headers=world.headers())
    ignored = client.simulate_put(path, json={"status": "ignored"}, headers=world.headers())
    again = client.simulate_put(path, json={"status": "ignored"}, headers=world.headers())
    reopened = client.simulate_put(path, json={"status": "unresolved"},
                                   headers=world.headers())

    assert resolved.status_code == 200
    assert resolved.json["status"] == "resolved"
    assert ignored.json["status"] == "ignored"
    assert again.status_code == 200
    assert "x-ledger-position" not in again.headers
    assert reopened.json["status"] == "unresolved"
    shown = client.simulate_get(path, headers=world.headers())
    assert shown.json["status"] == "unresolved"
    assert issue_event_names(world.services, "WEB-12") == [
        "Created", "StatusChanged", "StatusChanged", "StatusChanged"]


def test_invalid_status_is_rejected(client, world):
    create_issue(client, world, "WEB-12")
    path = f"{issues_path()}WEB-12/"

    invalid = client.simulate_put(path, json={"status": "muted"}, headers=world.headers())
    missing = client.simulate_put(path, json={}, headers=world.headers())

    assert invalid.status_code == 400
    assert list(invalid.json) == ["status"]
    assert missing.status_code == 400
    assert list(missing.json) == ["status"]
    assert issue_event_names(world.services, "WEB-12") == ["Created"]


def test_issue_of_other_project_is_not_found(client, world):
    create_issue(client, world, "WEB-12")
    path = f"{issues_path('api')}WEB-12/"

    shown = client.simulate_get(path, headers=world.headers())
    changed = client.simulate_put(path, json={"status": "resolved"}, headers=world.headers())
    deleted = client.simulate_delete(path, headers=world.headers())

    assert shown.status_code == 404
    assert changed.status_code == 404
    assert deleted.status_code == 404
    assert issue_event_names(world.services, "WEB-12") == ["Created"]


def test_delete_removes_issue_and_its_count(client, world):
    create_release(client, world, "1.0", "web")
    create_issue(client, world, "WEB-12", firstRelease="1.0")

    deleted = client.simulate_delete(f"{issues_path()}WEB-12/", headers=world.headers())
    shown = client.simulate_get(f"{issues_path()}WEB-12/", headers=world.headers())
    again = client.simulate_delete(f"{issues_path()}WEB-12/", headers=world.headers())

    assert deleted.status_code == 204
    assert deleted.text == ""
    assert shown.status_code == 404
    assert again.status_code == 404
    assert release(client, world, "1.0")["newGroups"] == 0
    assert client.simulate_get(issues_path(), headers=world.headers()).json == []
    assert issue_event_names(world.services, "WEB-12") == ["Created", "Deleted"]


def test_deleted_short_id_can_be_created_again(client, world):
    create_release(client, world, "1.0", "web")
    create_release(client, world, "2.0", "web")
    create_issue(client, world, "WEB-12", firstRelease="1.0")
    client.simulate_put(f"{issues_path()}WEB-12/", json={"status": "ignored"},
                        headers=world.headers())
    client.simulate_delete(f"{issues_path()}WEB-12/", headers=world.headers())

    response = create_issue(client, world, "WEB-12", title="Again", firstRelease="2.0")

    assert response.status_code == 201
    assert response.json["title"] == "Again"
    assert response.json["status"] == "unresolved"
    assert response.json["firstRelease"]["version"] == "2.0"
    assert release(client, world, "1.0")["newGroups"] == 0
    assert release(client, world, "2.0")["newGroups"] == 1
    assert issue_event_names(world.services, "WEB-12")[-1] == "Recreated"


def test_release_referenced_by_issue_is_not_deleted(client, world):
    # A release that is the first release of an issue of web is deleted,
    # the error tracker then removes the issue, and the release is deleted again.
    create_release(client, world, "1.0", "web")
    create_issue(client, world, "WEB-12", firstRelease="1.0")
    position = head(world.services)

    refused = client.simulate_delete(f"{R}1.0/", headers=world.headers())
    after_refusal = release(client, world, "1.0")
    removed = client.simulate_delete(f"{issues_path()}WEB-12/", headers=world.headers())
    deleted = client.simulate_delete(f"{R}1.0/", headers=world.headers())

    assert refused.status_code == 400
    assert list(refused.json) == ["detail"]
    assert "referenced by issues" in refused.json["detail"]
    assert after_refusal["version"] == "1.0"
    assert after_refusal["newGroups"] == 1
    assert removed.status_code == 204
    assert deleted.status_code == 204
    assert client.simulate_get(f"{R}1.0/", headers=world.headers()).status_code == 404
    assert position < head(world.services)


def test_refused_release_delete_records_nothing(client, world):
    create_release(client, world, "1.0", "web")
    create_issue(client, world, "WEB-12", firstRelease="1.0")
    create_issue(client, world, "WEB-13", firstRelease="1.0")
    position = head(world.services)

    refused = client.simulate_delete(f"{R}1.0/", headers=world.headers())
    project_refused = client.simulate_delete("/api/0/projects/acme/web/releases/1.0/",
                                             headers=world.headers())

    assert refused.status_code == 400
    assert "2 issues" in refused.json["detail"]
    assert project_refused.status_code == 400
    assert head(world.services) == position
    assert [r["version"] for r in client.simulate_get(R, headers=world.headers()).json] == [
        "1.0"]


def test_issue_without_first_release_does_not_block_delete(client, world):
    create_release(client, world, "1.0", "web")
    create_issue(client, world, "WEB-12")

    response = client.simulate_delete(f"{R}1.0/", headers=world.headers())

    assert response.status_code == 204


def test_release_deletable_after_issues_removed(client, world):
    create_release(client, world, "1.0", "web", "api")
    create_issue(client, world, "WEB-12", firstRelease="1.0")
    create_issue(client, world, "API-3", project="api", firstRelease="1.0")
    client.simulate_delete(f"{issues_path()}WEB-12/", headers=world.headers())

    still_referenced = client.simulate_delete(f"{R}1.0/", headers=world.headers())
    client.simulate_delete(f"{issues_path('api')}API-3/", headers=world.headers())
    deleted = client.simulate_delete(f"{R}1.0/", headers=world.headers())

    assert still_referenced.status_code == 400
    assert "1 issue has" in still_referenced.json["detail"]
    assert deleted.status_code == 204


def test_issue_changes_record_release_events(client, world):
    create_release(client, world, "1.0", "web")
    create_issue(client, world, "WEB-12", firstRelease="1.0")
    client.simulate_delete(f"{issues_path()}WEB-12/", headers=world.headers())

    with world.services.read() as queries:
        org_id = UUID(queries.directory.organization("acme")["id"])
    release_aggregate = world.services.ledger.get_release(org_id, "1.0")
    events = world.services.ledger.events.get(release_aggregate.id)

    names = [type(event).__name__ for event in events]
    assert names[-2:] == ["NewIssueAdded", "NewIssueRemoved"]
    assert release_aggregate.new_issue_ids == []


def test_issue_writes_need_write_scope(client, world):
    ci = create_issue(client, world, "WEB-12", who="org")
    world.tokens["reader"] = world.token(org="acme", scopes=("project:read",))
    reader = create_issue(client, world, "WEB-12", who="reader")
    world.tokens["tracker"] = world.token(org="acme", scopes=("event:write",))
    tracker = create_issue(client, world, "WEB-12", who="tracker")
    removed = client.simulate_delete(f"{issues_path()}WEB-12/", headers=world.headers("tracker"))

    assert ci.status_code == 403
    assert reader.status_code == 403
    assert tracker.status_code == 201
    assert removed.status_code == 403


def test_issue_of_forbidden_project_is_hidden(client, world):
    create_issue(client, world, "API-1", project="api")

    created = create_issue(client, world, "API-2", project="api", who="frontend")
    shown = client.simulate_get(f"{issues_path('api')}API-1/", headers=world.headers("frontend"))

    assert created.status_code == 404
    assert shown.status_code == 404
