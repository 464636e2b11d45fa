"""The real sentry-cli binary against gunicorn serving the app, on both backends."""

from __future__ import annotations

import pytest

from api.services import Services
from tests.builders import World
from tests.servers import SentryCli, gunicorn, requested_paths

pytestmark = pytest.mark.slow


@pytest.fixture
def server(settings, services, world):
    with gunicorn(settings) as server:
        yield server


@pytest.fixture
def cli(server, world: World) -> SentryCli:
    return SentryCli(server.url, world.tokens["superuser"], world.org)


def versions(services: Services, status: str = "open") -> list[str]:
    with services.read() as queries:
        org = queries.directory.organization("acme")
        rows = queries.releases.page(org["id"], None, status, None, None, None, 100)
    return [row["version"] for row in rows]


def run_ok(cli: SentryCli, *args: str) -> str:
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_sentry_cli_drives_release_lifecycle(cli, server, services):
    info = run_ok(cli, "info", "--no-defaults")
    run_ok(cli, "releases", "new", "1.0", "-p", "web")
    assert versions(services) == ["1.0"]
    run_ok(cli, "releases", "new", "2.0", "-p", "web", "--finalize")
    run_ok(cli, "releases", "finalize", "1.0")
    listed = run_ok(cli, "releases", "list")
    listed_for_project = run_ok(cli, "releases", "list", "-p", "web")
    shown = run_ok(cli, "releases", "info", "1.0")
    run_ok(cli, "releases", "archive", "1.0")
    archived = versions(services, "archived")
    run_ok(cli, "releases", "restore", "1.0")
    restored = versions(services)
    deleted = run_ok(cli, "releases", "delete", "1.0")
    deleted_again = run_ok(cli, "releases", "delete", "1.0")

    assert "Auth Token" in info
    assert "1.0" in listed and "2.0" in listed
    assert "1.0" in listed_for_project
    assert "1.0" in shown
    assert archived == ["1.0"]
    assert sorted(restored) == ["1.0", "2.0"]
    assert "Deleted release 1.0" in deleted
    assert "Did nothing" in deleted_again
    assert versions(services) == ["2.0"]
    assert "POST /api/0/organizations/acme/releases/" in requested_paths(server)


def test_sentry_cli_records_and_lists_deploys(cli, server, services):
    run_ok(cli, "releases", "new", "3.0", "-p", "web", "--finalize")

    unnamed = run_ok(cli, "deploys", "new", "-r", "3.0", "-e", "production")
    named = run_ok(cli, "deploys", "new", "-r", "3.0", "-e", "staging", "-n", "canary",
                   "-u", "https://ci.example.com/1", "-t", "30")
    listed = run_ok(cli, "deploys", "list", "-r", "3.0")

    assert "Created new deploy unnamed for 'production'" in unnamed
    assert "Created new deploy canary for 'staging'" in named
    assert listed.index("| staging ") < listed.index("| production ")
    assert "canary" in listed
    assert "unnamed" in listed
    with services.read() as queries:
        org = queries.directory.organization("acme")
        release = queries.releases.get(org["id"], "3.0")
        recorded = queries.releases.deploys(release["id"])
    assert release["deploy_count"] == 2
    assert [row["environment"] for row in recorded] == ["staging", "production"]
    staging, production = recorded
    assert (staging["name"], staging["url"]) == ("canary", "https://ci.example.com/1")
    assert staging["date_started"] < staging["date_finished"]
    assert (production["name"], production["url"], production["date_started"]) == (
        None, None, None)
    assert production["date_finished"] is not None
    paths = requested_paths(server)
    assert paths.count("POST /api/0/organizations/acme/releases/3.0/deploys/") == 2
    assert "GET /api/0/organizations/acme/releases/3.0/deploys/" in paths


def test_sentry_cli_info_reports_missing_release(cli):
    result = cli("releases", "info", "missing")

    assert result.returncode == 1
