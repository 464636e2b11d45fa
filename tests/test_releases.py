"""Creating, reading, updating and deleting releases through the REST API."""

from __future__ import annotations

from uuid import UUID

import falcon.testing

from tests.builders import World, release_body

R = "/api/0/organizations/acme/releases/"


def create(client: falcon.testing.TestClient, world: World, version: str, *projects: str,
           who: str = "superuser", **fields):
    return client.simulate_post(R, json=release_body(version, *projects, **fields),
                                headers=world.headers(who))


def activity(client: falcon.testing.TestClient, world: World) -> list[dict]:
    return client.simulate_get("/api/0/organizations/acme/activity/",
                               headers=world.headers()).json


def test_create_returns_release_body(client, world):
    response = create(client, world, "1.0.0", "web", ref="abc", url="https://ci/1")

    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.headers["location"] == "/api/0/organizations/acme/releases/1.0.0/"
    assert int(response.headers["x-ledger-position"]) > 0
    body = response.json
    assert body["version"] == "1.0.0"
    assert body["ref"] == "abc"
    assert body["url"] == "https://ci/1"
    assert body["status"] == "open"
    assert body["dateReleased"] is None
    assert body["dateCreated"].endswith("Z")
    assert [p["slug"] for p in body["projects"]] == ["web"]
    assert isinstance(body["projects"][0]["id"], str)
    assert body["newGroups"] == 0
    assert body["commitCount"] == 0


def test_repeated_create_answers_208_with_same_shape(client, world):
    first = create(client, world, "77a308e8", "web")

    again = create(client, world, "77a308e8", "web", dateReleased="2021-11-29T09:00:00Z")

    assert again.status_code == 208
    assert set(again.json) == set(first.json)
    assert again.json["dateReleased"] is None


def test_create_with_new_project_answers_201_and_links_it(client, world):
    create(client, world, "77a308e8", "web")

    response = create(client, world, "77a308e8", "web", "api")

    assert response.status_code == 201
    assert [p["slug"] for p in response.json["projects"]] == ["api", "web"]


def test_new_project_on_released_release_gets_one_activity(client, world):
    create(client, world, "2.0", "web", dateReleased="2024-01-01T00:00:00Z")

    create(client, world, "2.0", "web", "api")
    create(client, world, "2.0", "web", "api")

    items = activity(client, world)
    assert sorted(item["project"]["slug"] for item in items) == ["api", "web"]
    assert {item["type"] for item in items} == {"release"}


def test_create_without_projects_is_rejected(client, world):
    response = client.simulate_post(
        R, json={"version": "1.3.0", "dateReleased": "2024-01-01T00:00:00Z"},
        headers=world.headers(),
    )

    assert response.status_code == 400
    assert "projects" in response.json


def test_create_without_version_names_the_field(client, world):
    response = client.simulate_post(R, json={"projects": ["web"]}, headers=world.headers())

    assert response.status_code == 400
    assert "version" in response.json


def test_first_release_by_put_writes_activity_once(client, world):
    create(client, world, "1.3.0", "web", "api")

    first = client.simulate_put(f"{R}1.3.0/", json={"dateReleased": "2024-02-01T10:00:00Z"},
                                headers=world.headers())
    count_after_first = len(activity(client, world))
    second = client.simulate_put(f"{R}1.3.0/", json={"dateReleased": "2024-02-02T10:00:00Z"},
                                 headers=world.headers())

    assert first.status_code == 200
    assert second.status_code == 200
    assert count_after_first == 2
    assert len(activity(client, world)) == 2
    assert second.json["dateReleased"] == "2024-02-02T10:00:00.000000Z"


def test_datetime_with_offset_is_converted_to_utc(client, world):
    response = create(client, world, "1.2.0", "web", dateReleased="2019-08-24T16:03:47+02:00")

    assert response.json["dateReleased"] == "2019-08-24T14:03:47.000000Z"


def test_datetime_without_offset_is_read_as_utc(client, world):
    response = create(client, world, "1.2.1", "web", dateStarted="2019-08-24T16:03:47")

    assert response.json["dateStarted"] == "2019-08-24T16:03:47.000000Z"


def test_invalid_datetime_names_the_field(client, world):
    response = create(client, world, "1.2.2", "web", dateReleased="yesterday")

    assert response.status_code == 400
    assert "dateReleased" in response.json


def test_put_changes_only_given_fields(client, world):
    create(client, world, "3.0", "web", ref="first", url="https://ci/1")

    response = client.simulate_put(f"{R}3.0/", json={"ref": "second"}, headers=world.headers())

    assert response.status_code == 200
    assert response.json["ref"] == "second"
    assert response.json["url"] == "https://ci/1"


def test_put_on_missing_release_is_404(client, world):
    response = client.simulate_put(f"{R}nope/", json={"ref": "x"}, headers=world.headers())

    assert response.status_code == 404
    assert response.json == {"detail": "Release not found."}


def test_owner_is_set_by_email(client, world):
    email = client.simulate_get("/api/0/", headers=world.headers()).json["user"]["email"]

    response = create(client, world, "4.0", "web", owner=email)

    assert response.json["owner"]["email"] == email


def test_unknown_owner_is_rejected(client, world):
    response = create(client, world, "4.1", "web", owner="nobody@example.com")

    assert response.status_code == 400
    assert "owner" in response.json


def test_commits_given_on_create_are_recorded_in_order(client, world):
    commits = [{"id": f"{index:040x}", "repository": "acme/app", "message": f"change {index}",
                "author_email": "dev@example.com", "author_name": "Dev"}
               for index in range(5)]

    response = create(client, world, "5.0", "web", commits=commits)
    listed = client.simulate_get(f"{R}5.0/commits/", headers=world.headers())

    assert response.json["commitCount"] == 5
    assert response.json["lastCommit"]["id"] == commits[0]["id"]
    assert response.json["authors"] == [{"name": "Dev", "email": "dev@example.com"}]
    assert [c["id"] for c in listed.json] == [c["id"] for c in commits]


def test_archive_and_restore_with_empty_projects(client, world):
    create(client, world, "6.0", "web")

    archived = client.simulate_post(R, json={"version": "6.0", "projects": [],
                                             "status": "archived"}, headers=world.headers())
    open_list = client.simulate_get(R, headers=world.headers()).json
    archived_list = client.simulate_get(R, params={"status": "archived"},
                                        headers=world.headers()).json
    restored = client.simulate_post(R, json={"version": "6.0", "projects": [],
                                             "status": "open"}, headers=world.headers())

    assert archived.status_code == 201 or archived.status_code == 208
    assert archived.json["status"] == "archived"
    assert [r["version"] for r in open_list] == []
    assert [r["version"] for r in archived_list] == ["6.0"]
    assert restored.json["status"] == "open"


def test_archive_of_missing_release_is_404(client, world):
    response = client.simulate_post(R, json={"version": "missing", "projects": [],
                                             "status": "archived"}, headers=world.headers())

    assert response.status_code == 404


def test_empty_projects_without_status_is_rejected(client, world):
    create(client, world, "6.1", "web")

    response = client.simulate_post(R, json={"version": "6.1", "projects": []},
                                    headers=world.headers())

    assert response.status_code == 400
    assert "projects" in response.json


def test_delete_removes_release_from_every_read_model(client, world):
    create(client, world, "7.0", "web")

    deleted = client.simulate_delete(f"{R}7.0/", headers=world.headers())
    shown = client.simulate_get(f"{R}7.0/", headers=world.headers())
    listed = client.simulate_get(R, headers=world.headers())
    again = client.simulate_delete(f"{R}7.0/", headers=world.headers())

    assert deleted.status_code == 204
    assert deleted.text == ""
    assert shown.status_code == 404
    assert listed.json == []
    assert again.status_code == 404


def test_deleted_version_can_be_created_again(client, world):
    create(client, world, "8.0", "web", ref="first")
    client.simulate_delete(f"{R}8.0/", headers=world.headers())

    response = create(client, world, "8.0", "api")

    assert response.status_code == 201
    assert response.json["ref"] is None
    assert [p["slug"] for p in response.json["projects"]] == ["api"]


def test_project_endpoints_are_limited_to_the_project(client, world):
    create(client, world, "9.0", "web")
    create(client, world, "9.1", "api")

    web = client.simulate_get("/api/0/projects/acme/web/releases/", headers=world.headers())
    other = client.simulate_get("/api/0/projects/acme/api/releases/9.0/",
                                headers=world.headers())
    created = client.simulate_post("/api/0/projects/acme/billing/releases/",
                                   json={"version": "9.2"}, headers=world.headers())

    assert [r["version"] for r in web.json] == ["9.0"]
    assert other.status_code == 404
    assert created.status_code == 201
    assert [p["slug"] for p in created.json["projects"]] == ["billing"]


def test_index_describes_the_token(client, world):
    response = client.simulate_get("/api/0/", headers=world.headers("frontend"))

    assert response.status_code == 200
    assert isinstance(response.json["user"]["id"], str)
    assert "project:releases" in response.json["auth"]["scopes"]


def test_unknown_route_answers_json_404(client, world):
    response = client.simulate_get("/api/0/nothing/", headers=world.headers())

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert list(response.json) == ["detail"]


def test_invalid_json_is_rejected(client, world):
    response = client.simulate_post(R, body="{not json", headers={
        **world.headers(), "Content-Type": "application/json"})

    assert response.status_code == 400
    assert list(response.json) == ["detail"]


def test_body_that_is_not_an_object_is_rejected(client, world):
    response = client.simulate_post(R, json=["1.0"], headers=world.headers())

    assert response.status_code == 400


def test_every_datetime_has_one_format(client, world):
    commits = [{"id": "a" * 40, "timestamp": "2024-03-01T12:00:00+01:00"}]

    created = create(client, world, "10.0", "web", commits=commits,
                     dateStarted="2024-03-01T10:00:00Z", dateReleased="2024-03-01T11:00:00.5Z")
    listed = client.simulate_get(f"{R}10.0/commits/", headers=world.headers())

    body = created.json
    for value in (body["dateCreated"], body["dateStarted"], body["dateReleased"],
                  body["lastCommit"]["dateCreated"], listed.json[0]["dateCreated"]):
        assert len(value) == len("2024-03-01T11:00:00.500000Z")
        assert value.endswith("Z")
    assert body["dateReleased"] == "2024-03-01T11:00:00.500000Z"
    assert listed.json[0]["dateCreated"] == "2024-03-01T11:00:00.000000Z"


def test_events_store_project_ids_as_uuids(client, world, services):
    create(client, world, "11.0", "web")

    with services.read() as queries:
        release_id = queries.releases.get(queries.directory.organization("acme")["id"],
                                          "11.0")["id"]
    release = services.ledger.repository.get(UUID(release_id))

    assert all(isinstance(project_id, UUID) for project_id in release.project_ids)


def test_ledger_keeps_its_application_name(services):
    assert services.ledger.name == "ReleaseLedger"
