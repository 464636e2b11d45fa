"""History, audit log and the hash chain when sentry-cli writes through gunicorn's workers."""

from __future__ import annotations

import json
import urllib.request

import pytest

from chain.verification import Verifier
from tests.builders import World
from tests.servers import SentryCli, gunicorn, requested_paths

pytestmark = pytest.mark.slow


def get_json(url: str, token: str) -> list[dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def run_ok(cli: SentryCli, *args: str) -> None:
    result = cli(*args)
    assert result.returncode == 0, result.stderr


def test_sentry_cli_writes_are_chained(settings, services, world: World):
    auditor = world.token(org="acme", scopes=("org:read",))

    with gunicorn(settings, workers=2) as server:
        cli = SentryCli(server.url, world.tokens["superuser"], world.org)
        run_ok(cli, "releases", "new", "1.0", "-p", "web")
        run_ok(cli, "releases", "finalize", "1.0")
        run_ok(cli, "releases", "delete", "1.0")
        run_ok(cli, "releases", "new", "1.0", "-p", "web", "--finalize")
        history = get_json(f"{server.url}/api/0/organizations/acme/releases/1.0/history/", auditor)
        audit = get_json(f"{server.url}/api/0/organizations/acme/audit-logs/?version=1.0",
                         auditor)
        paths = requested_paths(server)

    assert "DELETE /api/0/organizations/acme/releases/1.0/" in paths
    assert [item["type"] for item in history] == [
        "release.created", "release.project_added", "release.released", "release.deleted",
        "release.recreated", "release.project_added", "release.released"]
    assert [item["id"] for item in audit] == [item["id"] for item in reversed(history)]
    result = Verifier(services.ledger.recorder).verify()
    assert result.intact
    assert result.head_hash == history[-1]["hash"]
