"""Response bodies encoded by orjson, with the standard library for what orjson rejects."""

from __future__ import annotations

import json

import pytest

from api.json_bodies import dumps


@pytest.mark.parametrize("value", [
    {"version": "naïve ✓ </script>", "count": 3, "items": [None, True, 1.5]},
    {"big": 2**70},
    {1: "integer key"},
])
def test_dumps_encodes_what_json_reads_back(value):
    encoded = dumps(value)

    assert isinstance(encoded, bytes)
    assert json.loads(encoded) == json.loads(json.dumps(value))
    assert b", " not in encoded


def test_responses_are_compact_utf8(client, world):
    response = client.simulate_get("/api/0/organizations/acme/projects/",
                                   headers=world.headers())

    assert response.status_code == 200
    assert b'": ' not in response.content
