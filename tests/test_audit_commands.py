"""The release-ledger history and audit commands: tables by default, JSON lines with --json."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from api.cli import main
from tests.builders import World, release_body

R = "/api/0/organizations/acme/releases/"


@pytest.fixture
def run(settings, monkeypatch, capsys):
    """Run the command in this process against the test's database; return status and output."""
    monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url)

    def run_command(*args: str) -> tuple[int, str, str]:
        status = main(list(args))
        output = capsys.readouterr()
        return status, output.out, output.err

    return run_command


def lifetimes(client, world: World) -> None:
    client.simulate_post(R, json=release_body("1.0", "web", ref="first"), headers=world.headers())
    client.simulate_delete(f"{R}1.0/", headers=world.headers())
    client.simulate_post(R, json=release_body("1.0", "api"), headers=world.headers())


def test_history_prints_a_table(client, world, run):
    lifetimes(client, world)

    status, out, _ = run("history", "acme", "1.0")

    lines = out.splitlines()
    assert status == 0
    assert lines[0].split() == ["ID", "SEQ", "TIME", "TYPE", "ACTOR", "REQUEST", "DATA"]
    assert [line.split()[4] for line in lines[1:]] == [
        "release.created", "release.project_added", "release.deleted", "release.recreated",
        "release.project_added"]
    assert 'ref="first"' in lines[1]


def test_history_json_lines_match_the_api(client, world, run):
    lifetimes(client, world)
    auditor = world.token(org="acme", scopes=("org:read",))
    served = client.simulate_get(f"{R}1.0/history/",
                                 headers={"Authorization": f"Bearer {auditor}"}).json

    status, out, _ = run("history", "acme", "1.0", "--json")

    assert status == 0
    assert [json.loads(line) for line in out.splitlines()] == served


def test_history_of_unknown_release_fails(world, run):
    status, out, err = run("history", "acme", "nope")

    assert status == 1
    assert out == ""
    assert "Release 'nope' not found" in err


def test_audit_prints_a_table_newest_first(client, world, run):
    lifetimes(client, world)

    status, out, _ = run("audit", "acme")

    lines = out.splitlines()
    assert status == 0
    assert lines[0].split() == ["ID", "TIME", "TYPE", "TARGET", "ACTOR", "REQUEST", "DATA"]
    assert lines[1].split()[3] == "release.project_added"
    assert lines[-1].split()[3] == "organization.created"


def test_audit_json_lines_match_the_api(client, world, run):
    lifetimes(client, world)
    auditor = world.token(org="acme", scopes=("org:read",))
    served = client.simulate_get("/api/0/organizations/acme/audit-logs/",
                                 params={"event": ["release.created", "release.deleted"]},
                                 headers={"Authorization": f"Bearer {auditor}"}).json

    status, out, _ = run("audit", "acme", "--event", "release.created",
                         "--event", "release.deleted", "--json")

    assert status == 0
    assert [json.loads(line) for line in out.splitlines()] == served
    assert [item["type"] for item in served] == ["release.deleted", "release.created"]


def test_audit_since_takes_an_age_or_an_instant(client, world, run):
    lifetimes(client, world)
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()

    _, recent, _ = run("audit", "acme", "--since", "1h", "--json")
    _, nothing, _ = run("audit", "acme", "--since", future, "--json")

    assert len(recent.splitlines()) > 5
    assert nothing == ""


def test_audit_filters_by_version_and_project(client, world, run):
    lifetimes(client, world)

    _, out, _ = run("audit", "acme", "--version", "1.0", "--project", "api", "--json")

    assert [json.loads(line)["type"] for line in out.splitlines()] == [
        "release.project_added", "release.recreated"]


def test_audit_rejects_an_invalid_since(world, run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run("audit", "acme", "--since", "yesterday")

    assert exit_info.value.code == 2
    assert "--since" in capsys.readouterr().err


def test_audit_of_unknown_organization_fails(world, run):
    status, _, err = run("audit", "nope")

    assert status == 1
    assert "Organization 'nope' not found" in err
