"""The JSON text that read models store, encoded by orjson or the standard library."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from uuid import UUID

import pytest

from domain.cause import Cause, CauseAsDict
from projections.projection import to_json


def test_stored_json_is_compact_with_sorted_keys():
    value = {"b": 1, "a": [UUID(int=5), None, True, 1.5], "c": "naïve ✓"}

    text = to_json(value)

    assert text == ('{"a":["00000000-0000-0000-0000-000000000005",null,true,1.5],'
                    '"b":1,"c":"naïve ✓"}')


def test_stored_json_writes_datetimes_as_str():
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    assert to_json({"at": moment}) == json.dumps({"at": str(moment)}, separators=(",", ":"))


@pytest.mark.parametrize("value", [
    {"big": 2**70},
    {2: "integer key", 1: "another"},
    {"lone": "\ud800"},
])
def test_stored_json_falls_back_for_what_orjson_rejects(value):
    text = to_json(value)

    assert json.loads(text) == json.loads(json.dumps(value, sort_keys=True, default=str))
    text.encode()


def test_cause_encodes_every_field():
    cause = Cause("user", "17", "ann@example.com", "request-1")

    encoded = CauseAsDict().encode(cause)

    assert encoded == dataclasses.asdict(cause)
    assert CauseAsDict().decode(encoded) == cause
