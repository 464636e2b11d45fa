"""Events stored by an older class version are upcast and read by every read model."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from api.services import Services
from domain.application import ReleaseChanges
from domain.release import Release
from tests.builders import CAUSE
from tests.read_models import all_contents, org_id, project_ids, rebuild

PROJECT_ADDED_TOPIC = "domain.release:Release.ProjectAdded"
RELEASED_AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def store_project_added_v1(
    services: Services, release: Release, project_id: UUID, date_released: datetime | None
) -> int:
    """Append a ProjectAdded event as version 1 stored it: one `project_id`, no class_version."""
    state = {
        "timestamp": datetime.now(UTC),
        "project_id": project_id,
        "date_released": date_released,
        "cause": CAUSE,
    }
    stored = StoredEvent(
        originator_id=release.id,
        originator_version=release.version + 1,
        topic=PROJECT_ADDED_TOPIC,
        state=services.ledger.mapper.transcoder.encode(state),
    )
    return services.ledger.recorder.insert_events([stored])[-1]


def legacy_release(services: Services) -> tuple[Release, list[UUID]]:
    """Record release `legacy` on web, released, then link api and billing with version 1 events."""
    web, api, billing = project_ids(services, "web", "api", "billing")
    org = org_id(services)
    services.ledger.create_release(
        org, "legacy", ReleaseChanges(project_ids=[web], date_released=RELEASED_AT), CAUSE
    )
    store_project_added_v1(services, services.ledger.get_release(org, "legacy"), api, RELEASED_AT)
    store_project_added_v1(services, services.ledger.get_release(org, "legacy"), billing, None)
    return services.ledger.get_release(org, "legacy"), [web, api, billing]


def test_version_1_event_is_upcast_to_project_ids(services, world):
    web, api = project_ids(services, "web", "api")
    services.ledger.create_release(org_id(services), "1.0", ReleaseChanges(project_ids=[web]),
                                   CAUSE)
    release = services.ledger.get_release(org_id(services), "1.0")

    position = store_project_added_v1(services, release, api, None)

    notification = services.ledger.recorder.select_notifications(start=position, limit=1)[0]
    event = services.ledger.mapper.to_domain_event(notification)
    assert b"class_version" not in notification.state
    assert type(event) is Release.ProjectAdded
    assert event.project_ids == [api]
    assert event.date_released is None
    assert not hasattr(event, "project_id")


def test_new_event_is_stored_as_version_2(services, world):
    web, api = project_ids(services, "web", "api")

    outcome = services.ledger.create_release(
        org_id(services), "2.0", ReleaseChanges(project_ids=[web, api]), CAUSE
    )

    notification = services.ledger.recorder.select_notifications(
        start=outcome.position, limit=1
    )[0]
    event = services.ledger.mapper.to_domain_event(notification)
    assert notification.topic == PROJECT_ADDED_TOPIC
    assert b'"class_version":2' in notification.state
    assert event.project_ids == [web, api]


def test_aggregate_loads_version_1_events(services, world):
    release, linked = legacy_release(services)

    assert release.project_ids == linked


def test_every_read_model_reads_version_1_events(services, world, client):
    release, (web, api, billing) = legacy_release(services)

    services.projector.catch_up()

    with services.read() as queries:
        linked = queries.releases.project_ids([str(release.id)])[str(release.id)]
        organization = queries.directory.organization("acme")
        activity = queries.activity.page(organization["id"], None, None, 100)
        delivery = queries.delivery.release_times(
            organization["id"], [str(web), str(api), str(billing)], 0, 2**62
        )
    assert sorted(linked) == sorted([str(web), str(api), str(billing)])
    assert sorted(item["project_id"] for item in activity) == sorted([str(web), str(api)])
    assert sorted(row["project_id"] for row in delivery) == sorted(
        [str(web), str(api), str(billing)]
    )
    body = client.simulate_get("/api/0/organizations/acme/releases/legacy/",
                               headers=world.headers()).json
    assert [project["slug"] for project in body["projects"]] == ["api", "billing", "web"]


def test_rebuild_from_version_1_events_equals_live_models(services, world):
    legacy_release(services)
    services.projector.catch_up()
    live = all_contents(services)

    for projection in services.projector.projections:
        rebuild(services, projection.name)

    assert all_contents(services) == live
