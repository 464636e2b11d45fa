"""Authentication results kept per process while the directory's version is unchanged."""

from __future__ import annotations

import pytest

from domain.application import ReleaseChanges
from projections.directory import CachedDirectory, DirectoryQueries
from projections.postgres import PostgresCursor
from projections.sqlite import SQLiteCursor
from tests.builders import CAUSE, RELEASE_SCOPES, release_body
from tests.read_models import org_id, project_ids

R = "/api/0/organizations/acme/releases/"
LOG = "/api/0/organizations/acme/audit-logs/"


def directory_version(services):
    with services.read("directory") as queries:
        return queries.directory_version


def statements_of(services, monkeypatch, request) -> int:
    """Return how many statements `request()` sends to the read models."""
    cursor_class = PostgresCursor if services.settings.backend == "postgresql" else SQLiteCursor
    execute = cursor_class.execute
    sent = []

    def counting(self, statement, params=()):
        sent.append(statement)
        return execute(self, statement, params)

    with monkeypatch.context() as patch:
        patch.setattr(cursor_class, "execute", counting)
        request()
    return len(sent)


def test_cache_saves_two_statements(client, world, services, monkeypatch):
    client.simulate_post(R, json=release_body("1.0"), headers=world.headers())

    def read():
        response = client.simulate_get(R, headers=world.headers("frontend"))
        assert response.status_code == 200

    first = statements_of(services, monkeypatch, read)
    second = statements_of(services, monkeypatch, read)

    assert second == first - 2


def test_revoked_token_is_refused_by_the_next_request(client, world, services):
    secret = world.token(org="acme", scopes=("org:ci",))
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.simulate_get(R, headers=headers).status_code == 200

    services.ledger.revoke_token(secret, CAUSE)

    assert client.simulate_get(R, headers=headers).status_code == 401


def test_team_join_applies_next_request(client, world, services):
    client.simulate_post(R, json=release_body("1.0", "api"), headers=world.headers())
    email = "newcomer@example.com"
    services.ledger.create_user(email, False, CAUSE)
    services.ledger.add_member("acme", email, "member", ["frontend"], CAUSE)
    headers = {"Authorization": f"Bearer {world.token(user=email, scopes=RELEASE_SCOPES)}"}
    assert client.simulate_get(f"{R}1.0/", headers=headers).status_code == 404

    services.ledger.add_member("acme", email, None, ["backend"], CAUSE)

    assert client.simulate_get(f"{R}1.0/", headers=headers).status_code == 200


def test_directory_version_moves_with_directory_events_only(services, world):
    versions = [directory_version(services)]
    services.ledger.create_release(org_id(services), "2.0",
                                   ReleaseChanges(project_ids=project_ids(services, "web")), CAUSE)
    versions.append(directory_version(services))
    secret = world.token(org="acme", scopes=("org:ci",))
    versions.append(directory_version(services))
    services.ledger.revoke_token(secret, CAUSE)
    versions.append(directory_version(services))
    services.ledger.create_project("acme", "mobile", None, ["frontend"], CAUSE)
    versions.append(directory_version(services))

    assert versions[0] is not None
    assert versions[1] == versions[0]
    assert versions[1] < versions[2] < versions[3] < versions[4]


@pytest.mark.parametrize("found", [None, {"id": "org"}])
def test_cache_keeps_only_results_that_found_something(services, world, found, monkeypatch):
    monkeypatch.setattr(DirectoryQueries, "organization", lambda self, slug: found)
    cache = services.directory_cache
    cache.clear()
    with services.database.transaction() as cursor:
        CachedDirectory(cursor, cache, 7).organization("acme")

    assert ("organization:acme" in cache) is (found is not None)


def test_unmigrated_database_answers_503_naming_migrate(client, world, services):
    # New code serving before `release-ledger migrate` reads a table that
    # does not exist yet; SQLite reports it as an operational error.
    with services.database.transaction(write=True) as cursor:
        cursor.execute("DROP TABLE directory_v2_changes")

    response = client.simulate_get(R, headers=world.headers())

    assert response.status_code == 503
    assert response.headers["retry-after"]
    if services.settings.backend == "postgresql":
        assert "release-ledger migrate" in response.json["detail"]


def test_cache_saves_the_audit_filter_project_lookup(client, world, services, monkeypatch):
    projects = client.simulate_get("/api/0/organizations/acme/projects/",
                                   headers=world.headers()).json
    web = next(project["id"] for project in projects if project["slug"] == "web")
    auditor = {"Authorization": f"Bearer {world.token(org='acme', scopes=('org:read',))}"}

    def read():
        response = client.simulate_get(f"{LOG}?project={web}", headers=auditor)
        assert response.status_code == 200

    read()
    services.directory_cache.clear()
    first = statements_of(services, monkeypatch, read)
    second = statements_of(services, monkeypatch, read)

    # The token, the organization and the project come from the cache.
    assert second == first - 3


def test_project_name_lookup_sees_a_later_slug(services, world):
    # A slug takes precedence over a public id. A project created with a
    # slug that is another project's public id changes the directory's
    # version, so the cached lookup of that name is not used again.
    org = str(org_id(services))
    with services.read("directory") as queries:
        web = queries.directory.project(org, "web")
        name = str(web["public_id"])
        before = queries.directory.project_named(org, name)

    services.ledger.create_project("acme", name, None, ["frontend"], CAUSE)
    with services.read("directory") as queries:
        after = queries.directory.project_named(org, name)

    assert before["slug"] == "web"
    assert after["slug"] == name


def test_projects_by_id_cache_per_version(services, world, monkeypatch):
    services.projector.catch_up()
    known = sorted(str(project_id) for project_id in project_ids(services, "web", "api"))
    missing = "00000000-0000-0000-0000-000000000000"
    cache = services.directory_cache
    cache.clear()

    def lookup(version, ids):
        found = {}

        def read():
            with services.database.transaction() as cursor:
                found.update(CachedDirectory(cursor, cache, version).projects_by_id(ids))

        return found, statements_of(services, monkeypatch, read)

    first, first_statements = lookup(7, [*known, missing])
    again, again_statements = lookup(7, [*known, missing])
    cached, cached_statements = lookup(7, known)
    moved, moved_statements = lookup(8, known)

    assert sorted(first) == known
    assert again == first
    assert cached == first
    assert moved == first
    # The id that found nothing is read again, and the found ones only at a new version.
    assert (first_statements, again_statements, cached_statements, moved_statements) == (1, 1, 0, 1)
