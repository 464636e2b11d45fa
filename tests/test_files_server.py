"""Release files through gunicorn: streamed upload and download across worker processes."""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
from urllib.parse import urlsplit

import pytest

from tests.builders import release_body
from tests.files import multipart, scratch_files, stored_blobs
from tests.servers import gunicorn

pytestmark = pytest.mark.slow

MAX_FILE_BYTES = 512 * 1024
R = "/api/0/organizations/acme/releases/"


def request(url: str, method: str, path: str, token: str, body: bytes = b"",
            content_type: str | None = None) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    if content_type:
        headers["Content-Type"] = content_type
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_files_round_trip_through_gunicorn(settings, services, world):
    token = world.tokens["superuser"]
    content = bytes(range(256)) * 1024
    too_large = b"x" * (MAX_FILE_BYTES + 1)
    limited = dataclasses.replace(settings, max_file_bytes=MAX_FILE_BYTES)

    with gunicorn(limited) as server:
        created = request(server.url, "POST", R, token, json.dumps(release_body("1.0")).encode(),
                          "application/json")
        body, content_type = multipart(content, name="~/static/vendor.js",
                                       header="Content-Type: application/javascript")
        uploaded = request(server.url, "POST", f"{R}1.0/files/", token, body, content_type)
        file_id = json.loads(uploaded[2])["id"]
        downloaded = request(server.url, "GET", f"{R}1.0/files/{file_id}/?download=1", token)
        body, content_type = multipart(too_large, name="big.js")
        rejected = request(server.url, "POST", f"{R}1.0/files/", token, body, content_type)
        listed = request(server.url, "GET", f"{R}1.0/files/", token)

    assert created[0] == 201
    assert uploaded[0] == 201
    assert json.loads(uploaded[2])["sha1"] == hashlib.sha1(content).hexdigest()
    status, headers, data = downloaded
    assert status == 200
    assert data == content
    assert headers["content-type"] == "application/javascript"
    assert headers["content-length"] == str(len(content))
    assert rejected[0] == 413
    assert [item["name"] for item in json.loads(listed[2])] == ["~/static/vendor.js"]
    assert stored_blobs(services) == [hashlib.sha1(content).hexdigest()]
    assert scratch_files(services) == []
