"""The release create command: a new version is saved without loading it first."""

from __future__ import annotations

from domain.application import ReleaseChanges
from domain.directory import Project
from domain.release import Release
from tests.builders import CAUSE


def record_loads(ledger, monkeypatch) -> list:
    loaded = []
    original = ledger._get_or_none

    def get_or_none(aggregate_id):
        loaded.append(aggregate_id)
        return original(aggregate_id)

    monkeypatch.setattr(ledger, "_get_or_none", get_or_none)
    return loaded


def test_new_version_is_not_loaded(services, world, monkeypatch):
    ledger = services.ledger
    org_id = ledger.get_organization(world.org).id
    project_id = Project.create_id(org_id, "web")
    loaded = record_loads(ledger, monkeypatch)

    outcome = ledger.create_release(
        org_id, "1.0", ReleaseChanges(project_ids=[project_id]), CAUSE
    )

    assert outcome.created
    assert Release.create_id(org_id, "1.0") not in loaded


def test_existing_version_is_loaded_once_saved(services, world, monkeypatch):
    ledger = services.ledger
    org_id = ledger.get_organization(world.org).id
    web = Project.create_id(org_id, "web")
    api = Project.create_id(org_id, "api")
    ledger.create_release(org_id, "1.0", ReleaseChanges(project_ids=[web]), CAUSE)
    loaded = record_loads(ledger, monkeypatch)

    again = ledger.create_release(org_id, "1.0", ReleaseChanges(project_ids=[web]), CAUSE)
    wider = ledger.create_release(org_id, "1.0", ReleaseChanges(project_ids=[api]), CAUSE)

    release_id = Release.create_id(org_id, "1.0")
    assert not again.created
    assert wider.created
    assert loaded.count(release_id) == 2
    assert set(ledger.get_release(org_id, "1.0").project_ids) == {web, api}


def test_deleted_version_is_recreated(services, world):
    ledger = services.ledger
    org_id = ledger.get_organization(world.org).id
    web = Project.create_id(org_id, "web")
    ledger.create_release(org_id, "1.0", ReleaseChanges(project_ids=[web]), CAUSE)
    ledger.delete_release(org_id, "1.0", CAUSE)

    outcome = ledger.create_release(org_id, "1.0", ReleaseChanges(project_ids=[web]), CAUSE)

    assert outcome.created
    assert not ledger.get_release(org_id, "1.0").deleted


def test_save_records_aggregates_in_order(services, world):
    ledger = services.ledger
    org_id = ledger.get_organization(world.org).id
    web = Project.create_id(org_id, "web")
    first = Release(org_id, "7.0", None, None, None, None, CAUSE)
    second = Release(org_id, "8.0", None, None, None, None, CAUSE)
    second.add_projects([web], None, CAUSE)

    recordings = ledger.save(first, second)

    assert [recording.domain_event.originator_id for recording in recordings] == [
        first.id, second.id, second.id]
    assert [recording.notification.id for recording in recordings] == sorted(
        recording.notification.id for recording in recordings)
    loaded = ledger._get_or_none(second.id)
    assert loaded.version == second.version
    assert loaded.project_ids == second.project_ids


def test_save_of_nothing_records_nothing(services):
    assert services.ledger.save(None) == []
