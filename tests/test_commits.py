"""Commit lists on releases: replacement, validation, authors and reading them back."""

from __future__ import annotations

import time
import tracemalloc
from uuid import UUID

import falcon.testing

from api.services import Services
from domain.commits import derive_author_email
from domain.release import Release
from tests.builders import World, release_body
from tests.pages import all_pages

R = "/api/0/organizations/acme/releases/"


def create(client: falcon.testing.TestClient, world: World, version: str, *projects: str,
           **fields):
    return client.simulate_post(R, json=release_body(version, *projects, **fields),
                                headers=world.headers())


def put(client: falcon.testing.TestClient, world: World, version: str, **fields):
    return client.simulate_put(f"{R}{version}/", json=fields, headers=world.headers())


def make_commits(count: int, prefix: str = "c", repository: str = "acme/app",
                 **fields) -> list[dict]:
    return [{"id": f"{prefix}{index:039x}"[:40], "repository": repository,
             "message": f"change {index}", **fields}
            for index in range(count)]


def org_id(services: Services) -> str:
    with services.read() as queries:
        return queries.directory.organization("acme")["id"]


def recorded_events(services: Services, version: str, kind: type) -> list:
    release_id = Release.create_id(UUID(org_id(services)), version)
    return [event for event in services.ledger.events.get(release_id) if isinstance(event, kind)]


def commit_ids(client: falcon.testing.TestClient, world: World, version: str) -> list[str]:
    items, _ = all_pages(client, f"{R}{version}/commits/", world.headers())
    return [item["id"] for item in items]


def test_second_commit_list_replaces_the_first(client, world, services):
    create(client, world, "app@6.43.0")
    first = make_commits(50, prefix="a")
    second = make_commits(26, prefix="b")

    put(client, world, "app@6.43.0", commits=first)
    response = put(client, world, "app@6.43.0", commits=second)

    assert response.status_code == 200
    assert response.json["commitCount"] == 26
    assert commit_ids(client, world, "app@6.43.0") == [c["id"] for c in second]
    events = recorded_events(services, "app@6.43.0", Release.CommitsSet)
    assert [len(event.commits) for event in events] == [50, 26]


def test_commits_of_another_repository_replace_the_list(client, world):
    create(client, world, "app@1.0.0")

    put(client, world, "app@1.0.0", commits=[{"id": "a1a1a1a", "repository": "acme/frontend"}])
    response = put(client, world, "app@1.0.0",
                   commits=[{"id": "b2b2b2b", "repository": "acme/backend"}])

    assert response.json["commitCount"] == 1
    assert commit_ids(client, world, "app@1.0.0") == ["b2b2b2b"]


def test_thousand_commits_on_create_page_through_in_order(client, world):
    commits = [{"id": f"{index:040x}", "repository": "acme/app",
                "author_email": f"dev{index % 7}@example.com",
                "timestamp": f"2024-01-01T00:{index // 60 % 60:02d}:{index % 60:02d}Z"}
               for index in range(1000)]

    tracemalloc.start()
    started = time.perf_counter()
    response = create(client, world, "big-1", commits=commits)
    seconds = time.perf_counter() - started
    peak_bytes = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    items, pages = all_pages(client, f"{R}big-1/commits/", world.headers())

    # Loose bounds, which only a cost growing faster than the list would
    # break. bench/set_commits.py measures the real figures.
    assert seconds < 60
    assert peak_bytes < 64 * 2**20
    assert response.status_code == 201
    assert response.json["commitCount"] == 1000
    assert [item["id"] for item in items] == [c["id"] for c in commits]
    assert pages == 10
    assert items[61]["dateCreated"] == "2024-01-01T00:01:01.000000Z"
    assert items[3]["author"]["email"] == "dev3@example.com"


def test_ten_thousand_commits_in_one_put(client, world, services):
    create(client, world, "huge-1")
    commits = make_commits(10_000, prefix="e", author_email="dev@example.com",
                           patch_set=[{"path": "src/app.py", "type": "M"}])

    response = put(client, world, "huge-1", commits=commits)
    items, pages = all_pages(client, f"{R}huge-1/commits/", world.headers())

    assert response.status_code == 200
    assert response.json["commitCount"] == 10_000
    assert pages == 100
    assert [item["id"] for item in items] == [c["id"] for c in commits]
    assert len(recorded_events(services, "huge-1", Release.CommitsSet)) == 1
    org = org_id(services)
    with services.read() as queries:
        assert queries.commits.commit_count(org) == 10_000


def test_commit_without_id_names_index_and_records_nothing(client, world, services):
    create(client, world, "v-1", commits=make_commits(2))

    response = put(client, world, "v-1", commits=[{"id": "abc"}, {"message": "no id"}])

    assert response.status_code == 400
    assert response.json == {"commits": ["commits[1].id: this field is required."]}
    assert len(recorded_events(services, "v-1", Release.CommitsSet)) == 1
    assert client.simulate_get(f"{R}v-1/", headers=world.headers()).json["commitCount"] == 2


def test_malformed_commit_fields_name_index_and_field(client, world):
    create(client, world, "v-2")
    cases = [
        ({"id": "x" * 65}, "commits[0].id"),
        ({"id": "a", "timestamp": "yesterday"}, "commits[0].timestamp"),
        ({"id": "a", "patch_set": [{"path": "a.py", "type": "X"}]},
         "commits[0].patch_set[0].type"),
        ({"id": "a", "author_email": "x" * 255}, "commits[0].author_email"),
        ({"id": "a", "repository": "bad\nname"}, "commits[0].repository"),
        ({"id": "a", "message": 5}, "commits[0].message"),
    ]

    for commit, where in cases:
        response = put(client, world, "v-2", commits=[commit])

        assert response.status_code == 400, where
        assert response.json["commits"][0].startswith(where), response.json


def test_unknown_commit_fields_are_ignored(client, world):
    create(client, world, "v-3")

    response = put(client, world, "v-3", commits=[{"id": "abc", "color": "blue"}])

    assert response.status_code == 200
    assert response.json["commitCount"] == 1


def test_commit_without_repository_goes_to_default_repository(client, world):
    create(client, world, "v-4")

    put(client, world, "v-4", commits=[{"id": "abc"}])
    listed = client.simulate_get(f"{R}v-4/commits/", headers=world.headers()).json

    assert listed[0]["repository"]["name"] == "default"


def test_post_of_existing_release_replaces_commits(client, world):
    create(client, world, "v-5", commits=make_commits(3))

    response = create(client, world, "v-5", commits=make_commits(1, prefix="f"))

    assert response.status_code == 208
    assert response.json["commitCount"] == 1


def test_commit_shared_by_releases_is_one_record(client, world, services):
    shared = {"id": "deadbeef", "repository": "acme/app", "message": "first words"}
    create(client, world, "s-1", commits=[shared])

    create(client, world, "s-2", commits=[{**shared, "message": "final words"}])

    org = org_id(services)
    with services.read() as queries:
        assert queries.commits.commit_count(org) == 1
        row = queries.commits.commit(org, "acme/app", "deadbeef")
    assert row["message"] == "final words"
    assert client.simulate_get(f"{R}s-1/commits/", headers=world.headers()).json[0][
        "message"] == "final words"


def test_commit_id_per_repository_is_separate(client, world, services):
    create(client, world, "s-3", commits=[{"id": "abc", "repository": "acme/app"},
                                          {"id": "abc", "repository": "acme/lib"}])

    org = org_id(services)
    with services.read() as queries:
        count = queries.commits.commit_count(org)

    assert count == 2


def test_commit_names_repository_case_insensitively(client, world):
    create(client, world, "r-1", commits=[{"id": "abc", "repository": "Acme/App"}])

    create(client, world, "r-2", commits=[{"id": "def", "repository": "acme/app"}])
    repos = client.simulate_get("/api/0/organizations/acme/repos/", headers=world.headers())

    assert [repo["name"] for repo in repos.json] == ["Acme/App"]
    assert client.simulate_get(f"{R}r-2/commits/", headers=world.headers()).json[0][
        "repository"]["name"] == "Acme/App"


def test_author_email_is_derived_from_name(client, world):
    response = create(client, world, "a-1", commits=[
        {"id": "abc", "author_name": "Jane Q. Doe-Smith"},
    ])

    assert response.json["authors"] == [
        {"name": "Jane Q. Doe-Smith", "email": "janeq.doe-smith@localhost"}
    ]


def test_non_latin_authors_without_email_stay_apart(client, world, services):
    response = create(client, world, "a-2", commits=[
        {"id": "abc", "author_name": "Иван Петров"},
        {"id": "def", "author_name": "Пётр Иванов"},
    ])

    org = org_id(services)
    with services.read() as queries:
        authors = queries.commits.authors(org)
    assert len(response.json["authors"]) == 2
    assert sorted(author["name"] for author in authors) == ["Иван Петров", "Пётр Иванов"]
    assert len({author["email"] for author in authors}) == 2


def test_long_non_latin_names_stay_apart():
    first = "Ж" * 127 + "\u0410"  # Cyrillic capital A
    second = "Ж" * 127 + "Б"

    emails = {derive_author_email(first), derive_author_email(second)}

    assert len(emails) == 2
    assert all(len(email) <= 254 for email in emails)
    assert derive_author_email(first) == derive_author_email(first)


def test_later_commit_updates_author_name(client, world, services):
    create(client, world, "n-1", commits=[
        {"id": "abc", "author_email": "Dev@Example.com", "author_name": "Old Name"},
    ])

    create(client, world, "n-2", commits=[
        {"id": "def", "author_email": "dev@example.com", "author_name": "New Name"},
        {"id": "123", "author_email": "dev@example.com"},
    ])

    org = org_id(services)
    with services.read() as queries:
        authors = queries.commits.authors(org)
    first_release = client.simulate_get(f"{R}n-1/commits/", headers=world.headers()).json
    assert authors == [{"email": "Dev@Example.com", "name": "New Name"}]
    assert first_release[0]["author"] == {"name": "New Name", "email": "Dev@Example.com"}


def test_long_author_email_is_stored_whole(client, world, services):
    email = "a" * 64 + "@" + "b" * 185 + ".com"

    response = create(client, world, "e-1", commits=[{"id": "abc", "author_email": email}])

    org = org_id(services)
    with services.read() as queries:
        authors = queries.commits.authors(org)
    assert len(email) == 254
    assert response.json["authors"][0]["email"] == email
    assert authors[0]["email"] == email


def test_commits_body_has_author_and_repository(client, world):
    create(client, world, "b-1", commits=[{
        "id": "abc", "repository": "acme/app", "message": "fix", "author_name": "Dev",
        "author_email": "dev@example.com", "timestamp": "2024-05-01T12:00:00+02:00",
    }])

    body = client.simulate_get(f"{R}b-1/commits/", headers=world.headers()).json[0]
    for_project = client.simulate_get("/api/0/projects/acme/web/releases/b-1/commits/",
                                      headers=world.headers())

    assert body["id"] == "abc"
    assert body["message"] == "fix"
    assert body["dateCreated"] == "2024-05-01T10:00:00.000000Z"
    assert body["author"] == {"name": "Dev", "email": "dev@example.com"}
    assert body["repository"]["name"] == "acme/app"
    assert isinstance(body["repository"]["id"], str)
    assert for_project.json == [body]


def test_commit_files_are_listed_by_commit_then_path(client, world):
    create(client, world, "f-1", commits=[
        {"id": "c2", "message": "second", "author_email": "dev@example.com",
         "patch_set": [{"path": "b.py", "type": "M"}, {"path": "a.py", "type": "D"}]},
        {"id": "c1", "message": "first", "patch_set": [{"path": "a.py", "type": "A"}]},
    ])

    items, pages = all_pages(client, f"{R}f-1/commitfiles/", world.headers(),
                             {"per_page": 2})

    assert pages == 2
    assert [(item["commitId"], item["filename"], item["type"]) for item in items] == [
        ("c2", "a.py", "D"), ("c2", "b.py", "M"), ("c1", "a.py", "A"),
    ]
    assert items[0]["commitMessage"] == "second"
    assert items[0]["author"]["email"] == "dev@example.com"
    assert items[0]["repoName"] == "default"


def test_commit_files_page_past_paths_with_quotes(client, world):
    paths = ["B.txt", 'a "quoted", path.txt', "a-b.txt", "a_b.txt", "b:colon.txt", "c.txt"]
    create(client, world, "f-2", commits=[
        {"id": "c1", "patch_set": [{"path": path, "type": "A"} for path in paths]},
    ])

    items, pages = all_pages(client, f"{R}f-2/commitfiles/", world.headers(), {"per_page": 1})

    assert pages == 6
    assert [item["filename"] for item in items] == sorted(paths)


def test_previous_with_commits_shares_a_project(client, world):
    create(client, world, "p-1", "web", commits=[{"id": "old"}],
           dateReleased="2024-01-01T00:00:00Z")
    create(client, world, "p-2", "api", commits=[{"id": "other"}],
           dateReleased="2024-01-02T00:00:00Z")
    create(client, world, "p-3", "web", dateReleased="2024-01-03T00:00:00Z")
    create(client, world, "p-4", "web", "api", dateReleased="2024-01-04T00:00:00Z")

    first = client.simulate_get(f"{R}p-1/previous-with-commits/", headers=world.headers())
    third = client.simulate_get(f"{R}p-3/previous-with-commits/", headers=world.headers())
    fourth = client.simulate_get(f"{R}p-4/previous-with-commits/", headers=world.headers())

    assert first.status_code == 200
    assert first.json == {}
    assert third.json["version"] == "p-1"
    assert third.json["lastCommit"]["id"] == "old"
    assert fourth.json["version"] == "p-2"


def test_previous_with_commits_of_missing_release_is_404(client, world):
    response = client.simulate_get(f"{R}nope/previous-with-commits/", headers=world.headers())

    assert response.status_code == 404


def test_deleted_release_keeps_commit_records(client, world, services):
    create(client, world, "d-1", commits=[{"id": "abc"}])

    client.simulate_delete(f"{R}d-1/", headers=world.headers())
    recreated = create(client, world, "d-1")

    org = org_id(services)
    with services.read() as queries:
        count = queries.commits.commit_count(org)
    assert recreated.json["commitCount"] == 0
    assert client.simulate_get(f"{R}d-1/commits/", headers=world.headers()).json == []
    assert count == 1


def test_repeated_commit_is_kept_once(client, world):
    response = create(client, world, "dup-1", "web", commits=[
        {"id": "aaaa", "repository": "acme/app", "message": "one"},
        {"id": "bbbb", "repository": "acme/app", "message": "two"},
        {"id": "aaaa", "repository": "acme/app", "message": "again"},
        {"id": "aaaa", "repository": "ACME/App", "message": "other case"},
        {"id": "aaaa", "repository": "acme/other", "message": "other repository"},
    ])

    listed = client.simulate_get(f"{R}dup-1/commits/", headers=world.headers()).json

    assert response.status_code == 201
    assert response.json["commitCount"] == 3
    assert [(commit["id"], commit["message"]) for commit in listed] == [
        ("aaaa", "one"), ("bbbb", "two"), ("aaaa", "other repository"),
    ]
