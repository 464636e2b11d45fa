"""An event's shape renders the same data and references as its fields do."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.application import ReleaseChanges
from projections.event_data import event_data, event_fields, event_shape, referenced_ids
from tests.builders import CAUSE
from tests.read_models import project_ids


def test_shape_renders_what_fields_render(services, world):
    ledger = services.ledger
    org_id = ledger.get_organization(world.org).id
    changes = ReleaseChanges(project_ids=project_ids(services, "web", "api"),
                             date_released=datetime(2024, 5, 1, tzinfo=UTC))
    ledger.create_release(org_id, "5.0", changes, CAUSE)
    ledger.record_deploy(org_id, "5.0", {
        "environment": "prod", "name": None, "url": None, "date_started": None,
        "date_finished": datetime(2024, 5, 2, tzinfo=UTC),
    }, [], CAUSE)
    notifications = ledger.recorder.select_notifications(start=1, limit=10_000)
    events = [ledger.mapper.to_domain_event(notification) for notification in notifications]
    public_ids = {text: f"public-{index}" for index, text in enumerate(sorted(
        {text for event in events for text in referenced_ids(event_fields(event))}
    ))}

    assert len({type(event) for event in events}) >= 8
    for event in events:
        fields = event_fields(event)
        shape = event_shape(event)
        assert shape.referenced_ids(vars(event)) == referenced_ids(fields)
        assert shape.render(vars(event), public_ids) == event_data(fields, public_ids)
