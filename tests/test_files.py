"""Files uploaded with a release: upload, list, download, rename, delete, and release deletion."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from uuid import UUID

import falcon.testing

from api.app import create_app
from api.services import Services
from tests.builders import World, release_body
from tests.files import multipart, scratch_files, stored_blobs
from tests.read_models import with_failing

R = "/api/0/organizations/acme/releases/"
SCRIPT = b"function main() { return 42; }\n"


def create_release(client: falcon.testing.TestClient, world: World, version: str,
                   *projects: str):
    response = client.simulate_post(R, json=release_body(version, *projects),
                                    headers=world.headers())
    assert response.status_code == 201
    return response


def upload(client: falcon.testing.TestClient, world: World, version: str, content: bytes,
           path: str | None = None, who: str = "superuser", **fields):
    body, content_type = multipart(content, **fields)
    return client.simulate_post(path or f"{R}{version}/files/", body=body,
                                headers={**world.headers(who), "Content-Type": content_type})


def files(client: falcon.testing.TestClient, world: World, version: str) -> list[dict]:
    response = client.simulate_get(f"{R}{version}/files/", headers=world.headers())
    assert response.status_code == 200
    return response.json


def release_event_names(services: Services, version: str) -> list[str]:
    with services.read() as queries:
        org_id = UUID(queries.directory.organization("acme")["id"])
    release = services.ledger.get_release(org_id, version)
    return [type(event).__name__ for event in services.ledger.events.get(release.id)]


def head(services: Services) -> int:
    return services.ledger.recorder.max_notification_id() or 0


def test_upload_returns_file_body(client, world):
    create_release(client, world, "1.0", "web")

    response = upload(client, world, "1.0", SCRIPT, name="~/static/app.js",
                      header=["Content-Type: text/javascript", "X-Build:7"])

    assert response.status_code == 201
    body = response.json
    assert body["id"].isdigit()
    assert response.headers["location"] == f"{R}1.0/files/{body['id']}/"
    assert int(response.headers["x-ledger-position"]) == int(body["id"])
    assert body["name"] == "~/static/app.js"
    assert body["dist"] is None
    assert body["headers"] == {"Content-Type": "text/javascript", "X-Build": "7"}
    assert body["size"] == len(SCRIPT)
    assert body["sha1"] == hashlib.sha1(SCRIPT).hexdigest()
    assert body["dateCreated"].endswith("Z")
    assert stored_blobs(world.services) == [body["sha1"]]
    assert scratch_files(world.services) == []
    assert release_event_names(world.services, "1.0")[-1] == "FileAdded"


def test_upload_name_defaults_to_file_name(client, world):
    create_release(client, world, "1.0", "web")

    response = upload(client, world, "1.0", SCRIPT, filename="bundle.min.js", dist="android")

    assert response.status_code == 201
    assert response.json["name"] == "bundle.min.js"
    assert response.json["dist"] == "android"


def test_empty_file_is_accepted(client, world):
    create_release(client, world, "1.0", "web")

    response = upload(client, world, "1.0", b"", name="empty.txt")

    assert response.status_code == 201
    assert response.json["size"] == 0
    assert response.json["sha1"] == hashlib.sha1(b"").hexdigest()


def test_invalid_upload_fields_are_rejected(client, world):
    create_release(client, world, "1.0", "web")
    cases = [
        ({"header": "no separator"}, "header"),
        ({"header": "Bad Name: x"}, "header"),
        ({"header": ": value"}, "header"),
        ({"name": "a\\b.js"}, "name"),
        ({"name": "a\tb.js"}, "name"),
        ({"name": "n" * 1025}, "name"),
        ({"dist": "has space"}, "dist"),
        ({"dist": "d" * 65}, "dist"),
    ]
    position = head(world.services)

    responses = [upload(client, world, "1.0", SCRIPT, **fields) for fields, _ in cases]
    nameless = upload(client, world, "1.0", SCRIPT, filename=None)

    for (fields, field), response in zip(cases, responses, strict=True):
        assert response.status_code == 400, fields
        assert list(response.json) == [field], fields
    assert nameless.status_code == 400
    assert list(nameless.json) == ["name"]
    assert head(world.services) == position
    assert stored_blobs(world.services) == []
    assert scratch_files(world.services) == []


def test_upload_without_file_is_rejected(client, world):
    create_release(client, world, "1.0", "web")
    body, content_type = multipart(None, name="app.js")

    response = client.simulate_post(f"{R}1.0/files/", body=body,
                                    headers={**world.headers(), "Content-Type": content_type})

    assert response.status_code == 400
    assert list(response.json) == ["file"]


def test_upload_that_is_not_multipart_is_rejected(client, world):
    create_release(client, world, "1.0", "web")

    response = client.simulate_post(f"{R}1.0/files/", json={"name": "app.js"},
                                    headers=world.headers())

    assert response.status_code == 415
    assert list(response.json) == ["detail"]


def test_malformed_multipart_is_rejected(client, world):
    create_release(client, world, "1.0", "web")

    response = client.simulate_post(
        f"{R}1.0/files/", body=b"--x\r\nnot a part",
        headers={**world.headers(), "Content-Type": "multipart/form-data; boundary=x"},
    )

    assert response.status_code == 400
    assert list(response.json) == ["detail"]
    assert scratch_files(world.services) == []


def test_name_already_in_release_is_409(client, world):
    create_release(client, world, "1.0", "web")
    first = upload(client, world, "1.0", SCRIPT, name="app.js")
    position = head(world.services)

    again = upload(client, world, "1.0", b"other bytes", name="app.js")

    assert again.status_code == 409
    assert list(again.json) == ["detail"]
    assert "'app.js'" in again.json["detail"]
    assert head(world.services) == position
    assert stored_blobs(world.services) == [first.json["sha1"]]
    assert scratch_files(world.services) == []


def test_same_name_elsewhere_is_accepted(client, world):
    create_release(client, world, "1.0", "web")
    create_release(client, world, "2.0", "web")
    upload(client, world, "1.0", SCRIPT, name="app.js")

    other_dist = upload(client, world, "1.0", SCRIPT, name="app.js", dist="ios")
    same_dist = upload(client, world, "1.0", SCRIPT, name="app.js", dist="ios")
    other_release = upload(client, world, "2.0", SCRIPT, name="app.js")

    assert other_dist.status_code == 201
    assert same_dist.status_code == 409
    assert other_release.status_code == 201
    assert stored_blobs(world.services) == [hashlib.sha1(SCRIPT).hexdigest()]


def test_files_are_listed_in_upload_order(client, world):
    create_release(client, world, "1.0", "web")
    for name in ("b.js", "a.js", "c.js"):
        upload(client, world, "1.0", name.encode(), name=name)

    listed = files(client, world, "1.0")
    first = client.simulate_get(f"{R}1.0/files/", params={"per_page": "2"},
                                headers=world.headers())
    cursor = re.search(r'rel="next"; results="true"; cursor="([^"]+)"',
                       first.headers["link"]).group(1)
    second = client.simulate_get(f"{R}1.0/files/", params={"per_page": "2", "cursor": cursor},
                                 headers=world.headers())

    assert [item["name"] for item in listed] == ["b.js", "a.js", "c.js"]
    assert [item["name"] for item in first.json] == ["b.js", "a.js"]
    assert [item["name"] for item in second.json] == ["c.js"]
    assert 'results="false"' in second.headers["link"].split("rel=\"next\"")[1]


def test_download_returns_bytes_with_content_type(client, world):
    create_release(client, world, "1.0", "web")
    typed = upload(client, world, "1.0", SCRIPT, name="~/static/app.js",
                   header=["content-type: text/javascript; charset=utf-8"]).json
    untyped = upload(client, world, "1.0", b"\x00\x01\xff", name="blob.bin").json

    script = client.simulate_get(f"{R}1.0/files/{typed['id']}/", params={"download": "1"},
                                 headers=world.headers())
    binary = client.simulate_get(f"{R}1.0/files/{untyped['id']}/", params={"download": "1"},
                                 headers=world.headers())
    metadata = client.simulate_get(f"{R}1.0/files/{typed['id']}/", headers=world.headers())

    assert script.status_code == 200
    assert script.content == SCRIPT
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["content-length"] == str(len(SCRIPT))
    assert script.headers["content-disposition"] == 'attachment; filename="app.js"'
    assert binary.content == b"\x00\x01\xff"
    assert binary.headers["content-type"] == "application/octet-stream"
    assert binary.headers["content-length"] == "3"
    assert metadata.headers["content-type"] == "application/json"
    assert metadata.json == typed


def test_rename_changes_name_and_dist(client, world):
    create_release(client, world, "1.0", "web")
    uploaded = upload(client, world, "1.0", SCRIPT, name="app.js").json
    path = f"{R}1.0/files/{uploaded['id']}/"

    renamed = client.simulate_put(path, json={"name": "~/app.js", "dist": "web"},
                                  headers=world.headers())
    unchanged = client.simulate_put(path, json={"name": "~/app.js"}, headers=world.headers())
    cleared = client.simulate_put(path, json={"dist": None}, headers=world.headers())

    assert renamed.status_code == 200
    assert renamed.json["name"] == "~/app.js"
    assert renamed.json["dist"] == "web"
    assert renamed.json["sha1"] == uploaded["sha1"]
    assert "x-ledger-position" not in unchanged.headers
    assert cleared.json["dist"] is None
    assert [item["name"] for item in files(client, world, "1.0")] == ["~/app.js"]
    assert release_event_names(world.services, "1.0")[-3:] == [
        "FileAdded", "FileUpdated", "FileUpdated"]


def test_rename_to_taken_name_is_409(client, world):
    create_release(client, world, "1.0", "web")
    upload(client, world, "1.0", SCRIPT, name="a.js")
    second = upload(client, world, "1.0", SCRIPT, name="b.js").json

    response = client.simulate_put(f"{R}1.0/files/{second['id']}/", json={"name": "a.js"},
                                   headers=world.headers())
    invalid = client.simulate_put(f"{R}1.0/files/{second['id']}/", json={"name": ""},
                                  headers=world.headers())

    assert response.status_code == 409
    assert invalid.status_code == 400
    assert list(invalid.json) == ["name"]
    assert sorted(item["name"] for item in files(client, world, "1.0")) == ["a.js", "b.js"]


def test_delete_removes_file_and_unused_blob(client, world):
    create_release(client, world, "1.0", "web")
    uploaded = upload(client, world, "1.0", SCRIPT, name="app.js").json
    path = f"{R}1.0/files/{uploaded['id']}/"

    deleted = client.simulate_delete(path, headers=world.headers())
    shown = client.simulate_get(path, headers=world.headers())
    again = client.simulate_delete(path, headers=world.headers())

    assert deleted.status_code == 204
    assert shown.status_code == 404
    assert again.status_code == 404
    assert files(client, world, "1.0") == []
    assert stored_blobs(world.services) == []
    assert release_event_names(world.services, "1.0")[-1] == "FileRemoved"


def test_shared_blob_stays_until_last_file_goes(client, world):
    create_release(client, world, "1.0", "web")
    create_release(client, world, "2.0", "web")
    first = upload(client, world, "1.0", SCRIPT, name="app.js").json
    second = upload(client, world, "2.0", SCRIPT, name="app.js").json

    client.simulate_delete(f"{R}1.0/files/{first['id']}/", headers=world.headers())
    after_first = stored_blobs(world.services)
    client.simulate_delete(f"{R}2.0/files/{second['id']}/", headers=world.headers())

    assert after_first == [first["sha1"]]
    assert stored_blobs(world.services) == []


def test_release_delete_removes_its_files(client, world):
    create_release(client, world, "1.0", "web")
    create_release(client, world, "2.0", "web")
    upload(client, world, "1.0", SCRIPT, name="app.js")
    upload(client, world, "1.0", b"only in 1.0", name="other.js")
    kept = upload(client, world, "2.0", SCRIPT, name="app.js").json

    deleted = client.simulate_delete(f"{R}1.0/", headers=world.headers())
    listed = client.simulate_get(f"{R}1.0/files/", headers=world.headers())
    create_release(client, world, "1.0", "web")

    assert deleted.status_code == 204
    assert listed.status_code == 404
    assert files(client, world, "1.0") == []
    assert stored_blobs(world.services) == [kept["sha1"]]


def test_upload_over_size_limit_leaves_nothing(client, world, services):
    create_release(client, world, "1.0", "web")
    services.settings = dataclasses.replace(services.settings, max_file_bytes=1000)
    position = head(services)

    streamed = upload(client, world, "1.0", b"x" * 1001, name="big.js")
    declared = upload(client, world, "1.0", b"x" * (1024 * 1024 + 2000), name="huge.js")
    at_limit = upload(client, world, "1.0", b"x" * 1000, name="fits.js")

    assert streamed.status_code == 413
    assert list(streamed.json) == ["detail"]
    assert "1000 bytes" in streamed.json["detail"]
    assert declared.status_code == 413
    assert at_limit.status_code == 201
    assert [item["name"] for item in files(client, world, "1.0")] == ["fits.js"]
    assert stored_blobs(world.services) == [at_limit.json["sha1"]]
    assert scratch_files(world.services) == []
    assert head(services) == position + 1


def test_project_file_routes_work_for_linked_release(client, world):
    create_release(client, world, "1.0", "web")
    path = "/api/0/projects/acme/web/releases/1.0/files/"

    uploaded = upload(client, world, "1.0", SCRIPT, path=path, name="app.js")
    listed = client.simulate_get(path, headers=world.headers())
    shown = client.simulate_get(f"{path}{uploaded.json['id']}/", params={"download": "1"},
                                headers=world.headers())
    renamed = client.simulate_put(f"{path}{uploaded.json['id']}/", json={"name": "b.js"},
                                  headers=world.headers())
    deleted = client.simulate_delete(f"{path}{uploaded.json['id']}/", headers=world.headers())

    assert uploaded.status_code == 201
    assert [item["name"] for item in listed.json] == ["app.js"]
    assert shown.content == SCRIPT
    assert renamed.json["name"] == "b.js"
    assert deleted.status_code == 204


def test_project_file_routes_hide_unlinked_release(client, world):
    create_release(client, world, "1.0", "web")
    uploaded = upload(client, world, "1.0", SCRIPT, name="app.js").json
    path = "/api/0/projects/acme/api/releases/1.0/files/"

    listed = client.simulate_get(path, headers=world.headers())
    posted = upload(client, world, "1.0", SCRIPT, path=path, name="b.js")
    shown = client.simulate_get(f"{path}{uploaded['id']}/", headers=world.headers())

    assert listed.status_code == 404
    assert posted.status_code == 404
    assert shown.status_code == 404


def test_file_of_another_release_is_not_found(client, world):
    create_release(client, world, "1.0", "web")
    create_release(client, world, "2.0", "web")
    uploaded = upload(client, world, "1.0", SCRIPT, name="app.js").json

    response = client.simulate_get(f"{R}2.0/files/{uploaded['id']}/", headers=world.headers())

    assert response.status_code == 404
    assert response.json == {"detail": "File not found."}


def test_files_of_hidden_release_are_not_found(client, world):
    create_release(client, world, "1.0", "api")

    listed = client.simulate_get(f"{R}1.0/files/", headers=world.headers("frontend"))
    posted = upload(client, world, "1.0", SCRIPT, who="frontend", name="app.js")

    assert listed.status_code == 404
    assert posted.status_code == 404
    assert stored_blobs(world.services) == []
    assert scratch_files(world.services) == []


def test_file_delete_needs_delete_scope(client, world):
    create_release(client, world, "1.0", "web")
    uploaded = upload(client, world, "1.0", SCRIPT, name="app.js").json

    response = client.simulate_delete(f"{R}1.0/files/{uploaded['id']}/",
                                      headers=world.headers("org"))

    assert response.status_code == 403
    assert len(files(client, world, "1.0")) == 1


def test_download_of_missing_blob_is_404(client, world):
    create_release(client, world, "1.0", "web")
    uploaded = upload(client, world, "1.0", SCRIPT, name="app.js").json
    world.services.blobs.remove(uploaded["sha1"])

    response = client.simulate_get(f"{R}1.0/files/{uploaded['id']}/", params={"download": "1"},
                                   headers=world.headers())

    assert response.status_code == 404
    assert "missing from the blob store" in response.json["detail"]


def test_upload_response_matches_stored_file(client, world):
    create_release(client, world, "1.0", "web")

    uploaded = upload(client, world, "1.0", SCRIPT, name="~/app.js", dist="web",
                      header=["Content-Type: application/javascript", "X-Build: 7"])
    stored = client.simulate_get(uploaded.headers["Location"], headers=world.headers())

    assert uploaded.status_code == 201
    assert stored.status_code == 200
    assert uploaded.json == stored.json
    assert uploaded.json["id"] == uploaded.headers["X-Ledger-Position"]


def test_upload_stored_while_files_model_fails(settings, services, world):
    failing = Services(settings, projections=with_failing("files_v1"))
    client = falcon.testing.TestClient(create_app(settings, failing))
    try:
        create_release(client, world, "1.0", "web")
        uploaded = upload(client, world, "1.0", SCRIPT, name="~/app.js")
        retried = upload(client, world, "1.0", SCRIPT, name="~/app.js")
    finally:
        failing.close()

    assert uploaded.status_code == 201
    assert uploaded.json["name"] == "~/app.js"
    assert uploaded.json["sha1"] == hashlib.sha1(SCRIPT).hexdigest()
    assert retried.status_code == 409
