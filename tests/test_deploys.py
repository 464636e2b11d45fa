"""Recording and listing the deploys of a release through the REST API."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import falcon.testing

from tests.builders import World, release_body

R = "/api/0/organizations/acme/releases/"
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def create(client: falcon.testing.TestClient, world: World, version: str, *projects: str):
    response = client.simulate_post(R, json=release_body(version, *projects),
                                    headers=world.headers())
    assert response.status_code == 201
    return response


def deploy(client: falcon.testing.TestClient, world: World, version: str, who: str = "superuser",
           **fields):
    return client.simulate_post(f"{R}{version}/deploys/", json=fields, headers=world.headers(who))


def deploys(client: falcon.testing.TestClient, world: World, version: str) -> list[dict]:
    response = client.simulate_get(f"{R}{version}/deploys/", headers=world.headers())
    assert response.status_code == 200
    return response.json


def activity(client: falcon.testing.TestClient, world: World) -> list[dict]:
    return client.simulate_get("/api/0/organizations/acme/activity/",
                               headers=world.headers()).json


def test_deploy_returns_its_fields(client, world):
    create(client, world, "1.0", "web")

    response = deploy(client, world, "1.0", environment="production", name="deploy one",
                      url="https://ci.example.com/7", dateStarted="2024-03-01T10:00:00Z",
                      dateFinished="2024-03-01T10:05:00+01:00")

    assert response.status_code == 201
    assert int(response.headers["x-ledger-position"]) > 0
    assert response.json == {
        "id": response.json["id"],
        "environment": "production",
        "name": "deploy one",
        "url": "https://ci.example.com/7",
        "dateStarted": "2024-03-01T10:00:00.000000Z",
        "dateFinished": "2024-03-01T09:05:00.000000Z",
    }
    assert response.json["id"].isdigit()


def test_deploy_keeps_nulls_and_finishes_now(client, world):
    create(client, world, "1.0", "web")
    before = datetime.now(UTC)

    response = deploy(client, world, "1.0", environment="staging", name=None, url=None,
                      dateStarted=None, dateFinished=None)

    assert response.status_code == 201
    body = response.json
    assert body["name"] is None
    assert body["url"] is None
    assert body["dateStarted"] is None
    assert RFC3339_UTC.match(body["dateFinished"])
    finished = datetime.strptime(body["dateFinished"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert finished.replace(tzinfo=UTC) >= before.replace(microsecond=0)


def test_listed_deploy_has_finish_date(client, world):
    create(client, world, "1.0", "web")

    deploy(client, world, "1.0", environment="production")

    listed = deploys(client, world, "1.0")
    assert len(listed) == 1
    assert RFC3339_UTC.match(listed[0]["dateFinished"])


def test_deploys_are_listed_newest_first(client, world):
    create(client, world, "1.0", "web")
    deploy(client, world, "1.0", environment="a", dateFinished="2024-01-02T00:00:00Z")
    deploy(client, world, "1.0", environment="b", dateFinished="2024-01-03T00:00:00Z")
    deploy(client, world, "1.0", environment="c", dateFinished="2024-01-01T00:00:00Z")

    listed = deploys(client, world, "1.0")

    assert [item["environment"] for item in listed] == ["b", "a", "c"]


def test_deploys_finished_together_list_latest_first(client, world):
    create(client, world, "1.0", "web")
    first = deploy(client, world, "1.0", environment="a", dateFinished="2024-01-01T00:00:00Z")
    second = deploy(client, world, "1.0", environment="b", dateFinished="2024-01-01T00:00:00Z")

    listed = deploys(client, world, "1.0")

    assert [item["id"] for item in listed] == [second.json["id"], first.json["id"]]


def test_release_counts_deploys(client, world):
    create(client, world, "1.0", "web")
    deploy(client, world, "1.0", environment="staging")
    last = deploy(client, world, "1.0", environment="production", name="final")

    body = client.simulate_get(f"{R}1.0/", headers=world.headers()).json

    assert body["deployCount"] == 2
    assert body["lastDeploy"] == last.json


def test_release_without_deploys_has_no_last_deploy(client, world):
    body = create(client, world, "1.0", "web").json

    assert body["deployCount"] == 0
    assert body["lastDeploy"] is None


def test_environment_is_validated(client, world):
    create(client, world, "1.0", "web")
    invalid = [None, "", " production", "production ", "prod/eu", "x" * 65, 12]

    responses = [deploy(client, world, "1.0", environment=value) for value in invalid]
    longest = deploy(client, world, "1.0", environment="x" * 64)

    for value, response in zip(invalid, responses, strict=True):
        assert response.status_code == 400, value
        assert "environment" in response.json, value
    assert longest.status_code == 201
    assert len(deploys(client, world, "1.0")) == 1


def test_deploy_adds_deploy_activity_per_project(client, world):
    create(client, world, "1.0", "web", "api")

    response = deploy(client, world, "1.0", environment="production")

    items = [item for item in activity(client, world) if item["type"] == "deploy"]
    assert sorted(item["project"]["slug"] for item in items) == ["api", "web"]
    for item in items:
        assert item["data"] == {"version": "1.0", "environment": "production",
                                "deploy": response.json["id"]}


def test_deploy_defaults_to_usable_projects(client, world):
    create(client, world, "1.0", "web", "api")

    response = deploy(client, world, "1.0", who="frontend", environment="production")

    assert response.status_code == 201
    items = [item for item in activity(client, world) if item["type"] == "deploy"]
    assert [item["project"]["slug"] for item in items] == ["web"]


def test_deploy_to_named_projects_only(client, world):
    create(client, world, "1.0", "web", "api", "billing")

    response = deploy(client, world, "1.0", environment="production", projects=["api", "api"])

    assert response.status_code == 201
    items = [item for item in activity(client, world) if item["type"] == "deploy"]
    assert [item["project"]["slug"] for item in items] == ["api"]


def test_deploy_to_unlinked_project_is_rejected(client, world):
    create(client, world, "1.0", "web")

    response = deploy(client, world, "1.0", environment="production", projects=["api"])

    assert response.status_code == 400
    assert response.json == {"projects": ["Invalid project slugs"]}
    assert deploys(client, world, "1.0") == []


def test_deploy_to_forbidden_project_is_rejected(client, world):
    create(client, world, "1.0", "web", "api")

    response = deploy(client, world, "1.0", who="frontend", environment="production",
                      projects=["web", "api"])

    assert response.status_code == 400
    assert response.json == {"projects": ["Invalid project slugs"]}
    assert deploys(client, world, "1.0") == []


def test_deploy_to_unknown_project_is_rejected(client, world):
    create(client, world, "1.0", "web")

    response = deploy(client, world, "1.0", environment="production", projects=["nope"])

    assert response.status_code == 400
    assert deploys(client, world, "1.0") == []


def test_deploy_of_missing_release_is_404(client, world):
    response = deploy(client, world, "missing", environment="production")
    listed = client.simulate_get(f"{R}missing/deploys/", headers=world.headers())

    assert response.status_code == 404
    assert response.json == {"detail": "Release not found."}
    assert listed.status_code == 404


def test_deploy_of_hidden_release_is_404(client, world):
    create(client, world, "1.0", "api")

    response = deploy(client, world, "1.0", who="frontend", environment="production")

    assert response.status_code == 404


def test_long_deploy_name_is_rejected(client, world):
    create(client, world, "1.0", "web")

    response = deploy(client, world, "1.0", environment="production", name="n" * 65)

    assert response.status_code == 400
    assert "name" in response.json


def test_deleted_release_loses_its_deploys(client, world):
    create(client, world, "1.0", "web")
    deploy(client, world, "1.0", environment="production")
    client.simulate_delete(f"{R}1.0/", headers=world.headers())

    create(client, world, "1.0", "web")

    assert deploys(client, world, "1.0") == []
