"""Refs on releases: head commits per repository, and commits read from local git."""

from __future__ import annotations

from uuid import UUID

import falcon.testing
import pytest

from api.services import Services
from domain.release import Release
from tests.builders import World, release_body
from tests.gitrepos import GitRepo, make_repo

R = "/api/0/organizations/acme/releases/"
REPOS = "/api/0/organizations/acme/repos/"


def register(client: falcon.testing.TestClient, world: World, name: str, **fields) -> dict:
    response = client.simulate_post(REPOS, json={"name": name, **fields}, headers=world.headers())
    assert response.status_code in (200, 201), response.text
    return response.json


def create(client: falcon.testing.TestClient, world: World, version: str, *projects: str,
           **fields):
    return client.simulate_post(R, json=release_body(version, *projects, **fields),
                                headers=world.headers())


def put(client: falcon.testing.TestClient, world: World, version: str, **fields):
    return client.simulate_put(f"{R}{version}/", json=fields, headers=world.headers())


def listed_commits(client: falcon.testing.TestClient, world: World, version: str) -> list[dict]:
    response = client.simulate_get(f"{R}{version}/commits/", headers=world.headers())
    assert response.status_code == 200, response.text
    return response.json


def head_commits(services: Services, version: str) -> list[tuple]:
    with services.read() as queries:
        org = queries.directory.organization("acme")
        release = queries.releases.get(org["id"], version)
        rows = queries.commits.head_commits(release["id"])
    return [(row["repository_name"], row["commit_id"], row["previous_commit"]) for row in rows]


def ledger_events(services: Services, version: str) -> list:
    org = services.ledger.get_organization("acme")
    return list(services.ledger.events.get(Release.create_id(UUID(str(org.id)), version)))


@pytest.fixture
def history(tmp_path) -> tuple[GitRepo, list[str]]:
    """A git repository with five commits; the list contains their ids, oldest first."""
    repo = make_repo(tmp_path)
    shas = [
        repo.commit("add readme", {"README.md": "hello\n"}),
        repo.commit("add app", {"app.py": "print(1)\n", "lib/util.py": "x = 1\n"},
                    author=("Ана Тест", "ana@example.com")),
        repo.commit("change app", {"app.py": "print(2)\n"}),
        repo.commit("drop util", {"lib/util.py": None}),
        repo.commit("multi\n\nline message", {"docs/guide.md": "guide\n"},
                    author=("Bo", "")),
    ]
    return repo, shas


def test_ref_of_other_provider_records_its_commit(client, world, services):
    register(client, world, "acme/app", provider="integrations:github",
             url="https://github.com/acme/app")
    create(client, world, "1.0")

    response = put(client, world, "1.0", refs=[
        {"repository": "acme/app", "commit": "def456", "previousCommit": "abc123"},
    ])

    assert response.status_code == 200
    assert response.json["commitCount"] == 1
    assert [c["id"] for c in listed_commits(client, world, "1.0")] == ["def456"]
    assert head_commits(services, "1.0") == [("acme/app", "def456", "abc123")]


def test_range_in_commit_keeps_previous_commit(client, world, services):
    register(client, world, "acme/app")
    create(client, world, "1.1")

    put(client, world, "1.1", refs=[{"repository": "ACME/APP", "commit": "abc123..def456",
                                     "previousCommit": None}])

    assert head_commits(services, "1.1") == [("acme/app", "def456", "abc123")]
    assert [c["id"] for c in listed_commits(client, world, "1.1")] == ["def456"]


def test_unknown_repository_is_named_and_nothing_recorded(client, world, services):
    create(client, world, "1.2")
    before = len(ledger_events(services, "1.2"))

    response = put(client, world, "1.2", refs=[{"repository": "acme/ghost", "commit": "abc"}])

    assert response.status_code == 400
    assert "acme/ghost" in response.json["refs"][0]
    assert len(ledger_events(services, "1.2")) == before
    assert client.simulate_get(REPOS, headers=world.headers()).json == []


def test_empty_refs_clear_commits_and_head_commits(client, world, services):
    register(client, world, "acme/app")
    create(client, world, "1.3", refs=[{"repository": "acme/app", "commit": "abc"}])

    response = put(client, world, "1.3", refs=[])

    assert response.json["commitCount"] == 0
    assert response.json["lastCommit"] is None
    assert listed_commits(client, world, "1.3") == []
    assert head_commits(services, "1.3") == []
    kinds = [type(event).__name__ for event in ledger_events(services, "1.3")]
    assert kinds.count("CommitsSet") == 2
    assert kinds.count("HeadCommitsSet") == 2


def test_refs_on_create_record_head_commits(client, world, services):
    register(client, world, "acme/app")
    register(client, world, "acme/lib")

    response = create(client, world, "1.4", refs=[
        {"repository": "acme/app", "commit": "aaa"}, {"repository": "acme/lib", "commit": "bbb"},
    ])

    assert response.status_code == 201
    assert [c["id"] for c in listed_commits(client, world, "1.4")] == ["aaa", "bbb"]
    assert head_commits(services, "1.4") == [("acme/app", "aaa", None), ("acme/lib", "bbb", None)]


def test_commits_given_with_refs_win_over_refs(client, world, services):
    register(client, world, "acme/app")
    create(client, world, "1.5")

    put(client, world, "1.5", refs=[{"repository": "acme/app", "commit": "head"}],
        commits=[{"id": "one", "repository": "acme/app"}, {"id": "two"}])

    assert [c["id"] for c in listed_commits(client, world, "1.5")] == ["one", "two"]
    assert head_commits(services, "1.5") == [("acme/app", "head", None)]


def test_invalid_refs_name_the_ref(client, world):
    register(client, world, "acme/app")
    create(client, world, "1.6")
    cases = [
        ([{"repository": "acme/app", "commit": "a..b", "previousCommit": "c"}], "refs[0]"),
        ([{"repository": "acme/app", "commit": "a"}, {"repository": "ACME/app", "commit": "b"}],
         "refs[1].repository"),
        ([{"repository": "acme/app", "commit": "x" * 65}], "refs[0].commit"),
        ([{"repository": "acme/app", "commit": "..b"}], "refs[0].commit"),
        ([{"repository": "acme/app"}], "refs[0].commit"),
        ([{"commit": "abc"}], "refs[0].repository"),
        ({"repository": "acme/app"}, "Expected a list"),
    ]

    for refs, where in cases:
        response = put(client, world, "1.6", refs=refs)

        assert response.status_code == 400, refs
        assert response.json["refs"][0].startswith(where), response.json


def test_git_range_records_exactly_its_commits(client, world, services, history):
    repo, shas = history
    register(client, world, "acme/app", provider="git", url=repo.url)
    create(client, world, "2.0")

    response = put(client, world, "2.0", refs=[
        {"repository": "acme/app", "commit": shas[3], "previousCommit": shas[0]},
    ])

    commits = listed_commits(client, world, "2.0")
    assert response.status_code == 200, response.text
    assert [c["id"] for c in commits] == [shas[3], shas[2], shas[1]]
    assert commits[0]["message"] == "drop util\n"
    assert commits[2]["author"] == {"name": "Ана Тест", "email": "ana@example.com"}
    assert commits[2]["dateCreated"] == "2023-11-14T22:15:20.000000Z"
    assert head_commits(services, "2.0") == [("acme/app", shas[3], shas[0])]


def test_git_range_records_changed_files(client, world, history):
    repo, shas = history
    register(client, world, "acme/app", provider="git", url=repo.url)
    create(client, world, "2.1")

    put(client, world, "2.1", refs=[{"repository": "acme/app", "commit": f"{shas[0]}..{shas[3]}"}])
    files = client.simulate_get(f"{R}2.1/commitfiles/", headers=world.headers()).json

    assert [(f["commitId"], f["filename"], f["type"]) for f in files] == [
        (shas[3], "lib/util.py", "D"),
        (shas[2], "app.py", "M"),
        (shas[1], "app.py", "A"),
        (shas[1], "lib/util.py", "A"),
    ]


def test_git_ref_starts_after_previous_release_head(client, world, services, history):
    repo, shas = history
    register(client, world, "acme/app", provider="git", url=repo.url)
    create(client, world, "3.0", dateReleased="2024-01-01T00:00:00Z",
           refs=[{"repository": "acme/app", "commit": shas[1]}])
    create(client, world, "3.1", "api", dateReleased="2024-01-02T00:00:00Z",
           refs=[{"repository": "acme/app", "commit": shas[3]}])
    create(client, world, "3.2", dateReleased="2024-01-03T00:00:00Z")

    put(client, world, "3.2", refs=[{"repository": "acme/app", "commit": "main"}])

    assert [c["id"] for c in listed_commits(client, world, "3.0")] == [shas[1], shas[0]]
    assert [c["id"] for c in listed_commits(client, world, "3.2")] == [
        shas[4], shas[3], shas[2],
    ]
    assert head_commits(services, "3.2") == [("acme/app", shas[4], shas[1])]


def test_git_message_and_author_without_email(client, world, history):
    repo, shas = history
    register(client, world, "acme/app", provider="git", url=str(repo.path))
    create(client, world, "3.3")

    put(client, world, "3.3", refs=[{"repository": "acme/app", "commit": shas[4],
                                     "previousCommit": shas[3]}])
    commit = listed_commits(client, world, "3.3")[0]

    assert commit["message"] == "multi\n\nline message\n"
    assert commit["author"] == {"name": "Bo", "email": "bo@localhost"}


def test_git_option_like_revision_is_rejected(client, world, history, tmp_path):
    repo, _ = history
    register(client, world, "acme/app", provider="git", url=repo.url)
    create(client, world, "4.0")
    target = tmp_path / "written"
    cases = [f"--output={target}", "HEAD@{1}", "main^", "-n1", "main~1"]

    for revision in cases:
        response = put(client, world, "4.0", refs=[{"repository": "acme/app",
                                                    "commit": revision}])

        assert response.status_code == 400, revision
        assert response.json["refs"][0].startswith("refs[0]"), response.json
    assert not target.exists()


def test_git_unknown_commit_is_rejected(client, world, history):
    repo, shas = history
    register(client, world, "acme/app", provider="git", url=repo.url)
    create(client, world, "4.1")

    response = put(client, world, "4.1", refs=[{"repository": "acme/app", "commit": "f" * 40,
                                                "previousCommit": shas[0]}])

    assert response.status_code == 400
    assert "refs[0]" in response.json["refs"][0]


def test_git_url_without_repository_is_rejected(client, world, tmp_path):
    (tmp_path / "plain").mkdir()
    register(client, world, "acme/app", provider="git", url=(tmp_path / "plain").as_uri())
    create(client, world, "4.2")

    response = put(client, world, "4.2", refs=[{"repository": "acme/app", "commit": "main"}])

    assert response.status_code == 400
    assert "refs[0]" in response.json["refs"][0]


def test_git_provider_with_remote_url_records_ref_commit(client, world, services):
    register(client, world, "acme/app", provider="git", url="https://git.example.com/acme/app")
    create(client, world, "4.3")

    put(client, world, "4.3", refs=[{"repository": "acme/app", "commit": "abc",
                                     "previousCommit": "def"}])

    assert [c["id"] for c in listed_commits(client, world, "4.3")] == ["abc"]
    assert head_commits(services, "4.3") == [("acme/app", "abc", "def")]


def test_git_unknown_previous_head_reads_initial_depth(client, world, history):
    repo, shas = history
    register(client, world, "acme/app", provider="git", url=repo.url)
    create(client, world, "5.0", dateReleased="2024-01-01T00:00:00Z",
           commits=[{"id": "abc", "repository": "acme/app"}],
           refs=[{"repository": "acme/app", "commit": "deadbeef"}])
    create(client, world, "5.1", dateReleased="2024-01-02T00:00:00Z")

    response = put(client, world, "5.1", refs=[{"repository": "acme/app", "commit": shas[2]}])

    assert response.status_code == 200, response.text
    assert [c["id"] for c in listed_commits(client, world, "5.1")] == [shas[2], shas[1], shas[0]]
