"""Hostile and careless input: limits, malformed bodies, and values the databases cannot hold."""

from __future__ import annotations

import dataclasses
import json

import falcon.testing
import pytest

from api.app import create_app
from api.services import Services
from tests.builders import release_body

R = "/api/0/organizations/acme/releases/"
SMALL_LIMIT = 2000
SMALL_RELEASE_LIMIT = 20_000


@pytest.fixture
def limited(settings, services, world) -> falcon.testing.TestClient:
    """A client of an app with small body limits on the same ledger."""
    small = dataclasses.replace(settings, max_body_bytes=SMALL_LIMIT,
                                max_release_body_bytes=SMALL_RELEASE_LIMIT)
    limited_services = Services(small)
    try:
        yield falcon.testing.TestClient(create_app(small, limited_services))
    finally:
        limited_services.close()


def post(client, path: str, body: bytes | str, world, content_type="application/json"):
    return client.simulate_post(path, body=body, headers={
        **world.headers(), "Content-Type": content_type})


def head(services: Services) -> int:
    return services.projector.head()


def test_body_over_the_limit_answers_413(limited, world, services):
    limited.simulate_post(R, json=release_body("1.0"), headers=world.headers())
    deploy = json.dumps({"environment": "production", "name": "x" * SMALL_LIMIT})

    response = post(limited, f"{R}1.0/deploys/", deploy, world)

    assert response.status_code == 413
    assert list(response.json) == ["detail"]
    assert str(SMALL_LIMIT) in response.json["detail"]


def test_release_bodies_have_their_own_limit(limited, world):
    commits = [{"id": f"{index:040x}", "message": "m" * 50} for index in range(150)]
    fits = json.dumps(release_body("1.0", commits=commits))
    too_large = json.dumps(release_body("1.1", commits=commits * 3))

    accepted = post(limited, R, fits, world)
    rejected = post(limited, R, too_large, world)

    assert SMALL_LIMIT < len(fits) < SMALL_RELEASE_LIMIT < len(too_large)
    assert accepted.status_code == 201
    assert accepted.json["commitCount"] == 150
    assert rejected.status_code == 413


def test_upload_limit_does_not_apply_to_json(limited, world, settings):
    assert settings.max_file_bytes > SMALL_RELEASE_LIMIT


@pytest.mark.parametrize("raw", [
    b"{not json",
    b'{"version": "1.0"',
    b"\xff\xfe{}",
    b'{"version": "\\ud800", "projects": ["web"]}',
    b"[" * 100_000,
    b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b'"a string"',
    b"[1, 2]",
    b"null",
    b"12",
])
def test_malformed_or_non_object_body_answers_400(client, world, services, raw):
    position = head(services)

    response = post(client, R, raw, world)

    assert response.status_code == 400
    assert list(response.json) == ["detail"]
    assert head(services) == position


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "application/xml", "multipart/form-data"])
def test_other_content_type_answers_415(client, world, services, content_type):
    response = post(client, R, json.dumps(release_body("1.0")), world, content_type)

    assert response.status_code == 415
    assert list(response.json) == ["detail"]


def test_json_with_charset_is_accepted(client, world):
    response = post(client, R, json.dumps(release_body("1.0")), world,
                    "application/json; charset=utf-8")

    assert response.status_code == 201


@pytest.mark.parametrize(("field", "value"), [
    ("ref", "a\u0000b"),
    ("url", "\u0000"),
    ("owner", "x\u0000@example.com"),
    ("version", "1.0\u0000"),
])
def test_nul_characters_are_rejected(client, world, services, field, value):
    position = head(services)

    response = client.simulate_post(R, json={**release_body("1.0"), field: value},
                                    headers=world.headers())

    assert response.status_code == 400
    assert head(services) == position


def test_nul_in_a_commit_is_rejected_with_its_place(client, world):
    commits = [{"id": "a1"}, {"id": "b2", "message": "fix\u0000"}]

    response = client.simulate_post(R, json=release_body("1.0", commits=commits),
                                    headers=world.headers())

    assert response.status_code == 400
    assert response.json["commits"][0].startswith("commits[1].message:")


@pytest.mark.parametrize("path", [
    f"{R}1.0%00/",
    "/api/0/organizations/ac%00me/releases/",
    f"{R}{'v' * 201}/",
    f"{R}1.0/files/{2**64}/",
    "/api/0/organizations/acme/repos/%C2%B2/",
    "/api/0/organizations/acme/repos/99999999999999999999999/",
])
def test_paths_that_cannot_name_anything_answer_404(client, world, path):
    response = client.simulate_get(path, headers=world.headers())

    assert response.status_code == 404
    assert list(response.json) == ["detail"]


@pytest.mark.parametrize("path", [
    "/api/hooks/release/builtin/%C2%B2/abc/",
    "/api/hooks/release/builtin/99999999999999999999/abc/",
    "/api/hooks/release/built%00in/1/abc/",
])
def test_hook_paths_that_cannot_name_anything_answer_403(client, world, path):
    response = client.simulate_post(path, json={"version": "1.0"})

    assert response.status_code == 403


@pytest.mark.parametrize("params", [
    {"cursor": f"{2**70}:1:0"},
    {"cursor": "1:99999999999999999999999:0"},
    {"cursor": "²:1:0"},
    {"per_page": "0"},
    {"per_page": "1" * 5000},
    {"project": str(2**70)},
    {"project": "²"},
    {"at": "0001-01-01T00:00:00+01:00"},
    {"at": "9999-12-31T23:59:59-01:00"},
    {"status": "deleted"},
    {"query": "q" * 201},
])
def test_invalid_query_answers_400(client, world, params):
    response = client.simulate_get(R, params=params, headers=world.headers())

    assert response.status_code == 400


@pytest.mark.parametrize("params", [
    {"end": "0001-01-02T00:00:00Z"},
    {"start": "0001-01-01T00:00:00+05:00"},
    {"interval": "1y"},
    {"environment": "e" * 65},
])
def test_invalid_delivery_window_answers_400(client, world, params):
    response = client.simulate_get("/api/0/organizations/acme/delivery-metrics/",
                                   params=params, headers=world.headers())

    assert response.status_code == 400


@pytest.mark.parametrize("body", [
    {"version": "1.0", "projects": [2**64]},
    {"version": "1.0", "projects": [-1]},
    {"version": "1.0", "projects": [1.5]},
    {"version": "1.0", "projects": [True]},
    {"version": "1.0", "projects": ["web"] * 1001},
    {"version": "1.0", "projects": ["web"], "commits": [{"id": "a", "patch_set": [[[]]]}]},
    {"version": "1.0", "projects": ["web"], "dateReleased": "0001-01-01T00:00:00+01:00"},
    {"version": "1.0", "projects": ["web"], "refs": [{"repository": "r"}] * 101},
])
def test_out_of_range_values_answer_400(client, world, services, body):
    position = head(services)

    response = client.simulate_post(R, json=body, headers=world.headers())

    assert response.status_code == 400
    assert head(services) == position


def test_ten_thousand_commits_fit_a_release_body(settings, world):
    # Applying 10,000 commits to the read models may take longer than a read waits.
    patient = dataclasses.replace(settings, read_timeout=120)
    patient_services = Services(patient)
    client = falcon.testing.TestClient(create_app(patient, patient_services))
    commits = [
        {"id": f"{index:040x}", "repository": "acme/app", "message": "Fix the thing\n" * 4,
         "author_name": "Dev", "author_email": "dev@example.com",
         "timestamp": "2024-05-01T10:00:00Z",
         "patch_set": [{"path": f"src/module_{index % 50}/file_{file}.py", "type": "M"}
                       for file in range(2)]}
        for index in range(10_000)
    ]
    raw = json.dumps(release_body("big", commits=commits))

    try:
        response = post(client, R, raw, world)
    finally:
        patient_services.close()

    assert len(raw) > 1024 * 1024
    assert response.status_code == 201
    assert response.json["commitCount"] == 10_000
