"""Sentry's cursor for no position, `0:0:0`, reads the first page of every list."""

from __future__ import annotations

import pytest

from tests.builders import release_body

R = "/api/0/organizations/acme/releases/"


@pytest.mark.parametrize("path", [
    R,
    "/api/0/projects/acme/web/releases/",
    "/api/0/organizations/acme/audit-logs/",
    f"{R}1.0/history/",
    f"{R}1.0/commits/",
])
@pytest.mark.parametrize("cursor", ["0:0:0", "0:0:1"])
def test_zero_cursor_reads_first_page(client, world, path, cursor):
    for version in ("1.0", "2.0"):
        body = release_body(version, "web", commits=[{"id": "abc", "repository": "acme/app"}])
        assert client.simulate_post(R, json=body, headers=world.headers()).status_code == 201

    # An organization's own token with org:read may read the audit log too.
    reader = {"Authorization": "Bearer " + world.token(
        org=world.org, scopes=("org:read", "project:read", "project:releases"))}
    first = client.simulate_get(path, headers=reader)
    zero = client.simulate_get(path, params={"cursor": cursor}, headers=reader)

    assert first.status_code == 200
    assert first.json
    assert zero.status_code == 200
    assert zero.json == first.json
