"""Reads wait, within a bound, for the read models to reach the ledger's position."""

from __future__ import annotations

import dataclasses
import time

import falcon.testing
import pytest

from api.app import create_app
from api.services import Services, _open_database
from projections.projector import CatchUpTimeoutError
from tests.builders import build_world, release_body
from tests.rebuild import positions

R = "/api/0/organizations/acme/releases/"


@pytest.fixture
def impatient(settings):
    """Services whose reads give up after 0.3 s."""
    services = Services(dataclasses.replace(settings, read_timeout=0.3), create_tables=True)
    try:
        yield services
    finally:
        services.close()


def test_read_503_while_read_models_locked(settings, impatient):
    world = build_world(impatient)
    client = falcon.testing.TestClient(create_app(impatient.settings, impatient))
    other = _open_database(settings)

    try:
        with other.transaction(write=True) as cursor:
            other.lock(cursor, "directory_v2")
            started = time.monotonic()
            blocked = client.simulate_get(R, headers=world.headers())
            elapsed = time.monotonic() - started
    finally:
        other.close()
    recovered = client.simulate_get(R, headers=world.headers())

    assert blocked.status_code == 503
    assert blocked.headers["retry-after"] == "2"
    assert list(blocked.json) == ["detail"]
    assert "directory_v2" in blocked.json["detail"]
    assert elapsed < 3
    assert recovered.status_code == 200


def test_catch_up_past_deadline_raises(impatient):
    build_world(impatient)
    head = impatient.projector.head()

    with pytest.raises(CatchUpTimeoutError) as raised:
        impatient.projector.catch_up(deadline=time.monotonic() - 1)

    assert raised.value.target == head
    assert raised.value.position == 0
    assert set(positions(impatient.database).values()) == {0}


def test_write_visible_to_other_process(settings, services, world):
    other = Services(settings)
    writer = falcon.testing.TestClient(create_app(settings, services))
    reader = falcon.testing.TestClient(create_app(settings, other))

    try:
        created = writer.simulate_post(R, json=release_body("9.9.9"), headers=world.headers())
        read = reader.simulate_get(f"{R}9.9.9/", headers=world.headers())
    finally:
        other.close()

    assert created.status_code == 201
    assert int(created.headers["x-ledger-position"]) > 0
    assert read.status_code == 200
    assert read.json["version"] == "9.9.9"
