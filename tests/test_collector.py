"""Requests with large bodies are served with the cyclic garbage collector paused."""

from __future__ import annotations

import gc

import pytest

from api.operations import LARGE_BODY_BYTES, collector_paused
from domain.application import ReleaseLedger
from tests.builders import release_body

R = "/api/0/organizations/acme/releases/"


@pytest.mark.parametrize(("length", "paused"), [
    (None, False),
    (LARGE_BODY_BYTES - 1, False),
    (LARGE_BODY_BYTES, True),
])
def test_collector_pauses_for_large_bodies_only(length, paused):
    with collector_paused(length):
        enabled_inside = gc.isenabled()

    assert enabled_inside is not paused
    assert gc.isenabled()


def test_collector_resumes_after_a_failure():
    with pytest.raises(RuntimeError), collector_paused(LARGE_BODY_BYTES):
        raise RuntimeError("handler failed")

    assert gc.isenabled()


def test_large_put_pauses_the_collector(client, world, monkeypatch):
    client.simulate_post(R, json=release_body("1.0", "web"), headers=world.headers())
    commits = [{"id": f"{index:040x}", "message": "x" * 200, "repository": "acme/app"}
               for index in range(5000)]
    seen = []
    update = ReleaseLedger.update_release

    def recording(self, *args, **kwargs):
        seen.append(gc.isenabled())
        return update(self, *args, **kwargs)

    monkeypatch.setattr(ReleaseLedger, "update_release", recording)
    response = client.simulate_put(f"{R}1.0/", json={"commits": commits},
                                   headers=world.headers())

    assert response.status_code == 200
    assert response.json["commitCount"] == 5000
    assert seen == [False]
    assert gc.isenabled()
