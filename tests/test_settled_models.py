"""Read models behind the ledger only by events they ignore count as current.

Release writes do not change the directory, and only deleting a release
changes the issues, so a read of those models need not apply, or wait
for, a stream of release events first.
"""

from __future__ import annotations

from eventsourcing.domain import DomainEvent

from domain.release import Release
from projections import projector as projector_module
from projections.directory import _IGNORED, DirectoryProjection, _handler
from projections.issues import IssuesProjection
from projections.projection import events_of
from tests.builders import CAUSE

RELEASES = "/api/0/organizations/acme/releases/"


def create_release(client, world, version: str) -> None:
    response = client.simulate_post(RELEASES, json={"version": version, "projects": ["web"]},
                                    headers=world.headers())
    assert response.status_code == 201


def check(services):
    with services.database.transaction() as cursor:
        return services.projector.check(cursor)


def test_release_writes_leave_directory_settled(services, client, world):
    services.projector.catch_up()
    create_release(client, world, "1.0")

    result = check(services)

    assert result.positions["directory_v2"] < result.head
    assert "directory_v2" in result.settled
    assert "issues_v1" in result.settled
    assert "directory_v2" not in result.behind
    assert "audit_v2" in result.behind


def test_directory_event_unsettles_directory(services, client, world):
    services.projector.catch_up()
    create_release(client, world, "1.0")
    services.ledger.create_team(world.org, "late", None, CAUSE)

    result = check(services)

    assert "directory_v2" not in result.settled
    assert "directory_v2" in result.behind


def test_release_deletion_unsettles_issues(services, client, world):
    services.projector.catch_up()
    create_release(client, world, "1.0")
    deleted = client.simulate_delete(f"{RELEASES}1.0/", headers=world.headers())
    assert deleted.status_code == 204
    services.projector.catch_up(projections=[p for p in services.projector.projections
                                             if p.name != IssuesProjection.name])

    result = check(services)

    assert "issues_v1" in result.behind
    assert "directory_v2" not in result.behind


def test_far_behind_model_is_not_settled(services, client, world, monkeypatch):
    services.projector.catch_up()
    create_release(client, world, "1.0")
    monkeypatch.setattr(projector_module, "SETTLED_WITHIN_EVENTS", 1)

    result = check(services)

    assert result.head - result.positions["directory_v2"] > 1
    assert "directory_v2" in result.behind


def test_read_skips_settled_directory(services, client, world):
    services.projector.catch_up()
    create_release(client, world, "1.0")
    before = services.projector.positions()["directory_v2"]

    with services.read("directory") as queries:
        organization = queries.directory.organization(world.org)

    assert organization["slug"] == world.org
    assert services.projector.positions()["directory_v2"] == before


def test_settled_read_sees_same_directory(services, client, world):
    create_release(client, world, "1.0")
    with services.read("directory") as queries:
        settled = queries.directory.projects(queries.directory.organization(world.org)["id"])

    services.projector.catch_up()
    with services.read("directory") as queries:
        current = queries.directory.projects(queries.directory.organization(world.org)["id"])

    assert settled == current


def test_directory_ignored_events_unhandled():
    assert DirectoryProjection.ignored_events
    for event in DirectoryProjection.ignored_events:
        assert _handler(event) is _IGNORED, event


def test_issues_ignored_events_unhandled():
    dispatcher = vars(IssuesProjection)["apply"].dispatcher
    default = dispatcher.dispatch(DomainEvent)
    assert Release.Deleted not in IssuesProjection.ignored_events
    assert IssuesProjection.ignored_events
    for event in IssuesProjection.ignored_events:
        assert dispatcher.dispatch(event) is default, event


def test_events_of_lists_release_events():
    events = events_of(Release)

    assert Release.Created in events
    assert Release.Deleted in events
    assert all(issubclass(event, DomainEvent) for event in events)
