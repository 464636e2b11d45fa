"""Registering repositories with the release-ledger command."""

from __future__ import annotations

from api import cli


def test_repo_register_creates_then_updates(settings, services, world, client, monkeypatch,
                                            capsys):
    monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url)

    created = cli.main(["repo", "register", "acme", "acme/app", "--provider", "git",
                        "--url", "/srv/git/app"])
    updated = cli.main(["repo", "register", "acme", "ACME/App"])
    missing = cli.main(["repo", "register", "nowhere", "acme/app"])

    output = capsys.readouterr()
    listed = client.simulate_get("/api/0/organizations/acme/repos/", headers=world.headers())
    assert (created, updated, missing) == (0, 0, 1)
    assert "Registered repository acme/app in acme." in output.out
    assert "Updated repository acme/app in acme." in output.out
    assert "not found" in output.err
    assert [(r["name"], r["url"], r["provider"]["id"]) for r in listed.json] == [
        ("acme/app", None, "unknown")
    ]
