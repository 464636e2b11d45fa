"""The release-ledger command: directory administration, tokens and bootstrap."""

from __future__ import annotations

import pytest

from api.cli import main
from api.services import Services


@pytest.fixture
def ledger_env(settings, services, monkeypatch) -> Services:
    monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url)
    return services


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def directory_state(services: Services) -> tuple:
    with services.read() as queries:
        cursor = queries.cursor
        return tuple(
            cursor.execute(f"SELECT COUNT(*) AS n FROM {table}").fetchone()["n"]
            for table in ("directory_v2_organizations", "directory_v2_teams",
                          "directory_v2_projects", "directory_v2_users",
                          "directory_v2_tokens", "directory_v2_members")
        )


def test_commands_build_a_directory(ledger_env, capsys):
    steps = [
        ("user", "create", "ada@example.com"),
        ("org", "create", "acme", "--name", "Acme Inc"),
        ("team", "create", "acme", "frontend"),
        ("project", "create", "acme", "web", "--team", "frontend"),
        ("member", "add", "acme", "ada@example.com", "--team", "frontend", "--role", "admin"),
    ]

    codes = [run(capsys, *step)[0] for step in steps]

    assert codes == [0] * len(steps)
    with ledger_env.read() as queries:
        org = queries.directory.organization("acme")
        user = queries.directory.user_by_email("ada@example.com")
        assert org["name"] == "Acme Inc"
        assert queries.directory.member(org["id"], user["id"])["role"] == "admin"
        assert len(queries.directory.team_project_ids(org["id"], user["id"])) == 1


def test_token_create_prints_only_the_token(ledger_env, capsys):
    run(capsys, "user", "create", "ada@example.com")

    code, out, _err = run(capsys, "token", "create", "--user", "ada@example.com",
                         "--scope", "project:releases")

    assert code == 0
    assert out.strip().startswith("sntryu_")
    assert len(out.strip()) == len("sntryu_") + 64
    assert out.count("\n") == 1


@pytest.mark.parametrize("args", [
    ("team", "create", "nowhere", "frontend"),
    ("org", "create", "acme"),
    ("user", "create", "not-an-email"),
    ("token", "create", "--org", "acme", "--scope", "everything"),
    ("project", "create", "acme", "web", "--team", "missing"),
    ("member", "add", "acme", "ghost@example.com"),
    ("org", "create", "Bad Slug"),
])
def test_bad_input_prints_one_line_and_changes_nothing(ledger_env, capsys, args):
    run(capsys, "org", "create", "acme")
    before = directory_state(ledger_env)

    code, _out, err = run(capsys, *args)

    assert code != 0
    assert err.startswith("release-ledger: ")
    assert err.count("\n") == 1
    assert directory_state(ledger_env) == before


def test_bootstrap_is_idempotent_and_prints_sentry_cli_environment(ledger_env, capsys):
    first_code, first, _ = run(capsys, "bootstrap")
    counts = directory_state(ledger_env)
    second_code, _second, _ = run(capsys, "bootstrap")

    assert (first_code, second_code) == (0, 0)
    for name in ("SENTRY_URL", "SENTRY_AUTH_TOKEN", "SENTRY_ORG", "SENTRY_PROJECT"):
        assert f"export {name}=" in first
    assert directory_state(ledger_env)[:4] == counts[:4]


def test_revoked_token_answers_401(ledger_env, client, capsys):
    run(capsys, "bootstrap")
    _, token, _ = run(capsys, "token", "create", "--user", "admin@localhost")
    token = token.strip()
    before = client.simulate_get("/api/0/organizations/acme/releases/",
                                 headers={"Authorization": f"Bearer {token}"})

    code, _, _ = run(capsys, "token", "revoke", token)
    after = client.simulate_get("/api/0/organizations/acme/releases/",
                                headers={"Authorization": f"Bearer {token}"})

    assert before.status_code == 200
    assert code == 0
    assert after.status_code == 401
