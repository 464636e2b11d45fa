"""Conditions that broke Sentry-compatible release APIs in the field, as regression tests.

Each test asserts the expected value recorded for its case: organization
`acme`, projects `web`, `api` and `billing`.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections import Counter

import pytest

from api.services import Services
from tests.builders import CAUSE, World
from tests.servers import gunicorn

R = "/api/0/organizations/acme/releases/"


def release_count(services: Services) -> int:
    with services.read() as queries:
        org = queries.directory.organization("acme")
        rows = []
        for status in ("open", "archived"):
            rows += queries.releases.page(org["id"], None, status, None, None, None, 1000)
    return len(rows)


def ledger_head(services: Services) -> int:
    return services.projector.head()


@pytest.mark.parametrize("version", ["2019-11-04/1", "@scope/api@5.0.8"])
def test_c01_version_with_slash_is_rejected(client, world, services, version):
    head = ledger_head(services)

    response = client.simulate_post(R, json={"version": version, "projects": ["web"]},
                                    headers=world.headers())

    assert response.status_code == 400
    assert version in response.json["detail"]
    assert ledger_head(services) == head


def test_c02_encoded_hash_and_colon_path(client, world):
    version = "prod-2019-06-11#18:08:48"

    created = client.simulate_post(R, json={"version": version, "projects": ["web"]},
                                   headers=world.headers())
    shown = client.simulate_get(f"{R}prod-2019-06-11%2318%3A08%3A48/", headers=world.headers())
    truncated = client.simulate_get(f"{R}prod-2019-06-11/", headers=world.headers())

    assert created.status_code == 201
    assert shown.status_code == 200
    assert shown.json["version"] == version
    assert truncated.status_code == 404


@pytest.mark.parametrize(("version", "path"), [("release%tag", "release%25tag"),
                                               ("app@1.0", "app%401.0")])
def test_c03_path_is_decoded_exactly_once(client, world, version, path):
    client.simulate_post(R, json={"version": version, "projects": ["web"]},
                         headers=world.headers())

    shown = client.simulate_get(f"{R}{path}/", headers=world.headers())

    assert shown.status_code == 200
    assert shown.json["version"] == version


INVALID_VERSIONS = [
    "c38d00f04\n",
    "\n> app@0.1.0 release\n\ndev-19be1b7e",
    "with\ttab",
    "with\fform feed",
    "with\rreturn",
    "back\\slash",
    ".",
    "..",
    "latest",
    "LATEST",
    "",
    "   ",
    "x" * 201,
]


@pytest.mark.parametrize("version", INVALID_VERSIONS)
def test_c04_invalid_version_is_rejected_and_never_trimmed(client, world, services, version):
    head = ledger_head(services)

    response = client.simulate_post(R, json={"version": version, "projects": ["web"]},
                                    headers=world.headers())

    assert response.status_code == 400
    assert "detail" in response.json
    assert ledger_head(services) == head


def test_c04_version_of_200_characters_is_accepted(client, world):
    version = "v" * 200

    response = client.simulate_post(R, json={"version": version, "projects": ["web"]},
                                    headers=world.headers())

    assert response.status_code == 201
    assert response.json["version"] == version


@pytest.mark.parametrize("concurrency", [2, 20])
def test_c05_concurrent_creates_make_one_release(client, world, services, concurrency):
    barrier = threading.Barrier(concurrency)
    statuses: list[int] = []

    def post() -> None:
        barrier.wait()
        response = client.simulate_post(R, json={"version": "testing_63", "projects": ["web"]},
                                        headers=world.headers())
        statuses.append(response.status_code)

    threads = [threading.Thread(target=post) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Counter(statuses) == Counter({201: 1, 208: concurrency - 1})
    assert release_count(services) == 1


def test_c05_concurrent_creates_through_gunicorn(settings, services, world):
    with gunicorn(settings, workers=2) as server:
        barrier = threading.Barrier(20)
        statuses: list[int] = []

        def post() -> None:
            request = urllib.request.Request(
                f"{server.url}{R}", method="POST",
                data=json.dumps({"version": "testing_63", "projects": ["web"]}).encode(),
                headers={**world.headers(), "Content-Type": "application/json"},
            )
            barrier.wait()
            with urllib.request.urlopen(request, timeout=30) as response:
                statuses.append(response.status)

        threads = [threading.Thread(target=post) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert Counter(statuses) == Counter({201: 1, 208: 19})
    assert release_count(services) == 1


def test_c06_existing_release_answers_208_without_applying_date(client, world):
    client.simulate_post(R, json={"version": "77a308e8", "projects": ["web"]},
                         headers=world.headers())

    again = client.simulate_post(R, json={"version": "77a308e8", "projects": ["web"],
                                          "dateReleased": "2021-11-29T09:00:00Z"},
                                 headers=world.headers())
    with_new_project = client.simulate_post(R, json={"version": "77a308e8",
                                                     "projects": ["web", "api"]},
                                            headers=world.headers())

    assert again.status_code == 208
    assert again.json["version"] == "77a308e8"
    assert again.json["dateReleased"] is None
    assert "projects" in again.json
    assert "dateCreated" in again.json
    assert with_new_project.status_code == 201
    assert [p["slug"] for p in with_new_project.json["projects"]] == ["api", "web"]


def next_link(response) -> tuple[bool, str]:
    for part in response.headers["link"].split(", <"):
        if 'rel="next"' in part:
            results = 'results="true"' in part
            cursor = part.split('cursor="')[1].split('"')[0]
            return results, cursor
    raise AssertionError(f"no next link in {response.headers['link']}")


def test_c07_following_next_links_returns_every_release_once(client, world):
    for index in range(23):
        client.simulate_post(R, json={"version": f"v{index}", "projects": ["web"]},
                             headers=world.headers())
    seen: list[str] = []
    cursor = None

    for _ in range(30):
        params = {"per_page": "5", **({"cursor": cursor} if cursor else {})}
        response = client.simulate_get(R, params=params, headers=world.headers())
        assert response.status_code == 200
        seen += [release["version"] for release in response.json]
        results, cursor = next_link(response)
        if not results:
            break

    assert sorted(seen) == sorted(f"v{index}" for index in range(23))
    assert len(seen) == len(set(seen))
    assert seen[0] == "v22"


def test_c07_writes_between_pages_neither_repeat_nor_skip(client, world):
    for index in range(10):
        client.simulate_post(R, json={"version": f"old-{index}", "projects": ["web"]},
                             headers=world.headers())
    first = client.simulate_get(R, params={"per_page": "4"}, headers=world.headers())
    _, cursor = next_link(first)

    client.simulate_post(R, json={"version": "newer", "projects": ["web"]},
                         headers=world.headers())
    client.simulate_delete(f"{R}old-0/", headers=world.headers())
    rest = []
    while cursor:
        page = client.simulate_get(R, params={"per_page": "4", "cursor": cursor},
                                   headers=world.headers())
        rest += [release["version"] for release in page.json]
        results, cursor = next_link(page)
        cursor = cursor if results else None

    seen = [release["version"] for release in first.json] + rest
    assert len(seen) == len(set(seen))
    assert sorted(seen) == sorted(f"old-{index}" for index in range(1, 10))


def test_c07_deep_cursor_never_fails(client, world):
    response = client.simulate_get(R, params={"cursor": "1:999999999:0"},
                                   headers=world.headers())

    assert response.status_code == 200
    assert response.json == []


def test_c11_offset_is_converted_to_utc(client, world):
    response = client.simulate_post(R, json={"version": "1.2.0", "projects": ["web"],
                                             "dateReleased": "2019-08-24T16:03:47+02:00"},
                                    headers=world.headers())

    assert response.json["dateReleased"] == "2019-08-24T14:03:47.000000Z"


def test_c12_post_without_projects_then_put_release_twice(client, world):
    missing = client.simulate_post(R, json={"version": "1.3.0",
                                            "dateReleased": "2024-01-01T00:00:00Z"},
                                   headers=world.headers())
    client.simulate_post(R, json={"version": "1.3.0", "projects": ["web", "api"]},
                         headers=world.headers())

    client.simulate_put(f"{R}1.3.0/", json={"dateReleased": "2024-01-02T00:00:00Z"},
                        headers=world.headers())
    after_first = client.simulate_get("/api/0/organizations/acme/activity/",
                                      headers=world.headers()).json
    client.simulate_put(f"{R}1.3.0/", json={"dateReleased": "2024-01-03T00:00:00Z"},
                        headers=world.headers())
    after_second = client.simulate_get("/api/0/organizations/acme/activity/",
                                       headers=world.headers()).json

    assert missing.status_code == 400
    assert "projects" in missing.json
    assert sorted(item["project"]["slug"] for item in after_first) == ["api", "web"]
    assert len(after_second) == len(after_first)


def test_c14_member_cannot_create_on_another_teams_project(client, world, services):
    head = ledger_head(services)

    response = client.simulate_post(R, json={"version": "abc123", "projects": ["web", "api"]},
                                    headers=world.headers("frontend"))

    assert response.status_code == 400
    assert response.json == {"projects": ["Invalid project slugs"]}
    assert ledger_head(services) == head


def test_c14_organization_token_links_both_projects(client, world):
    response = client.simulate_post(R, json={"version": "abc123", "projects": ["web", "api"]},
                                    headers=world.headers("org"))

    assert response.status_code == 201
    assert [p["slug"] for p in response.json["projects"]] == ["api", "web"]


@pytest.mark.parametrize("who", ["frontend", "org"])
def test_c14_project_of_another_organization_is_rejected(client, world, services, who):
    services.ledger.create_organization("globex", None, False, CAUSE)
    services.ledger.create_team("globex", "ops", None, CAUSE)
    services.ledger.create_project("globex", "portal", None, ["ops"], CAUSE)

    response = client.simulate_post(R, json={"version": "abc124", "projects": ["portal"]},
                                    headers=world.headers(who))

    assert response.status_code == 400
    assert response.json == {"projects": ["Invalid project slugs"]}


def test_c16_reads_own_writes_any_worker(settings, services, world: World):
    with gunicorn(settings, workers=2) as server:
        def call(method: str, path: str, body: dict | None = None) -> tuple[int, object]:
            request = urllib.request.Request(
                f"{server.url}{path}", method=method,
                data=json.dumps(body).encode() if body is not None else None,
                headers={**world.headers(), "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())

        results = []
        for attempt in range(10):
            version = f"r-{attempt}"
            created = call("POST", R, {"version": version, "projects": ["web"]})
            deployed = call("POST", f"{R}{version}/deploys/", {"environment": "production"})
            listed = call("GET", R)
            results.append((created[0], deployed[0], version in [r["version"] for r in listed[1]]))

    assert results == [(201, 201, True)] * 10
