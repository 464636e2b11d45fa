"""The real sentry-cli setting and reading commits against gunicorn, on both backends."""

from __future__ import annotations

from uuid import UUID

import pytest

from api.services import Services
from tests.builders import CAUSE, World
from tests.gitrepos import GitRepo, make_repo
from tests.servers import SentryCli, gunicorn, requested_paths

pytestmark = pytest.mark.slow

RELEASES = "/api/0/organizations/acme/releases"


@pytest.fixture
def server(settings, services, world):
    with gunicorn(settings) as server:
        yield server


@pytest.fixture
def cli(server, world: World) -> SentryCli:
    return SentryCli(server.url, world.tokens["superuser"], world.org, project="web")


def run_ok(cli: SentryCli, *args: str, cwd=None) -> str:
    result = cli(*args, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def register(services: Services, name: str, provider: str | None, url: str | None) -> None:
    org = services.ledger.get_organization("acme")
    services.ledger.register_repository(UUID(str(org.id)), name, url, provider, CAUSE)


def commit_ids(services: Services, version: str) -> list[str]:
    with services.read() as queries:
        org = queries.directory.organization("acme")
        release = queries.releases.get(org["id"], version)
        rows = queries.commits.release_commits(release["id"], -1, 1000)
    return [row["commit_id"] for row in rows]


def head_commits(services: Services, version: str) -> list[tuple]:
    with services.read() as queries:
        org = queries.directory.organization("acme")
        release = queries.releases.get(org["id"], version)
        rows = queries.commits.head_commits(release["id"])
    return [(row["repository_name"], row["commit_id"], row["previous_commit"]) for row in rows]


def shown_commits(info_output: str) -> list[str]:
    """Return the Commits column of `releases info -C`, one id per table line."""
    cells = [line.rstrip().rstrip("|").rsplit("|", 1)[-1].strip()
             for line in info_output.splitlines() if line.startswith("|")]
    return [cell for cell in cells[1:] if cell and cell != "-"]


def make_history(root, count: int) -> tuple[GitRepo, list[str]]:
    repo = make_repo(root)
    shas = [repo.commit(f"change {index}", {f"file{index}.txt": f"{index}\n"})
            for index in range(count)]
    return repo, shas


def test_set_commits_records_commit_spec(cli, server, services):
    register(services, "acme/app", "integrations:github", "https://github.com/acme/app")
    run_ok(cli, "releases", "new", "5.0")

    run_ok(cli, "releases", "set-commits", "5.0", "--commit", "ACME/App@abc1234")
    shown = run_ok(cli, "releases", "info", "5.0", "-C")

    assert commit_ids(services, "5.0") == ["abc1234"]
    assert head_commits(services, "5.0") == [("acme/app", "abc1234", None)]
    assert shown_commits(shown) == ["abc1234"]
    paths = requested_paths(server)
    assert "GET /api/0/organizations/acme/repos/" in paths
    assert f"PUT {RELEASES}/5.0/" in paths
    assert f"GET {RELEASES}/5.0/commits/" in paths


def test_set_commits_resolves_git_range(cli, server, services, tmp_path):
    repo, shas = make_history(tmp_path, 5)
    register(services, "acme/app", "git", repo.url)
    run_ok(cli, "releases", "new", "6.0")

    run_ok(cli, "releases", "set-commits", "6.0", "--commit", f"acme/app@{shas[1]}..{shas[4]}")
    shown = run_ok(cli, "releases", "info", "6.0", "-C")

    assert commit_ids(services, "6.0") == [shas[4], shas[3], shas[2]]
    assert head_commits(services, "6.0") == [("acme/app", shas[4], shas[1])]
    assert shown_commits(shown) == [shas[4], shas[3], shas[2]]
    assert f"PUT {RELEASES}/6.0/" in requested_paths(server)


def test_set_commits_clear_removes_commits(cli, server, services):
    register(services, "acme/app", None, None)
    run_ok(cli, "releases", "new", "7.0")
    run_ok(cli, "releases", "set-commits", "7.0", "--commit", "acme/app@abc1234")

    cleared = run_ok(cli, "releases", "set-commits", "7.0", "--clear")
    shown = run_ok(cli, "releases", "info", "7.0", "-C")

    assert "Clearing commits" in cleared
    assert commit_ids(services, "7.0") == []
    assert head_commits(services, "7.0") == []
    assert shown_commits(shown) == []
    assert requested_paths(server).count(f"PUT {RELEASES}/7.0/") == 2


def test_set_commits_local_reads_checkout_history(cli, server, services, tmp_path):
    checkout, shas = make_history(tmp_path, 3)
    checkout.git("remote", "add", "origin", "https://git.example.com/acme/app.git")
    register(services, "acme/app", None, None)
    run_ok(cli, "releases", "new", "8.0")

    run_ok(cli, "releases", "set-commits", "8.0", "--local", cwd=checkout.path)
    first = run_ok(cli, "releases", "info", "8.0", "-C")
    more = [checkout.commit(f"later {index}", {"later.txt": f"{index}\n"}) for index in range(2)]
    run_ok(cli, "releases", "new", "8.1")
    run_ok(cli, "releases", "set-commits", "8.1", "--local", cwd=checkout.path)
    second = run_ok(cli, "releases", "info", "8.1", "-C")

    assert commit_ids(services, "8.0") == shas[::-1]
    assert commit_ids(services, "8.1") == more[::-1]
    assert shown_commits(first) == shas[::-1]
    assert shown_commits(second) == more[::-1]
    with services.read() as queries:
        origin = queries.commits.repository(queries.directory.organization("acme")["id"],
                                            "origin")
    assert origin is not None
    paths = requested_paths(server)
    assert f"GET {RELEASES}/8.1/previous-with-commits/" in paths
    assert paths.count(f"PUT {RELEASES}/8.0/") == 1
