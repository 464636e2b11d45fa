"""Release hooks: signed URLs that deploy platforms call, through gunicorn on both backends."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from uuid import UUID

import pytest

from api.hooks.resources import sign
from tests.builders import World
from tests.servers import gunicorn

pytestmark = pytest.mark.slow

TOKEN_PATH = "/api/0/projects/acme/web/releases/token/"


@pytest.fixture
def server(settings, services, world):
    with gunicorn(settings) as server:
        yield server


def call(server, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"{server.url}{path}", method=method, data=body,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hook_url(server, world: World) -> str:
    _, body = call(server, "GET", TOKEN_PATH, headers=world.headers())
    return urllib.parse.urlsplit(body["webhookUrl"]).path


def heroku_url(server, world: World) -> str:
    project_id = hook_url(server, world).split("/")[5]
    _, body = call(server, "GET", TOKEN_PATH, headers=world.headers())
    return f"/api/hooks/release/heroku/{project_id}/{sign(body['token'], 'heroku', project_id)}/"


def post_json(server, path: str, body: dict) -> tuple[int, dict]:
    return call(server, "POST", path, json.dumps(body).encode(),
                {"Content-Type": "application/json"})


def activity(server, world: World) -> list[dict]:
    return call(server, "GET", "/api/0/organizations/acme/activity/",
                headers=world.headers())[1]


def test_builtin_hook_creates_and_finishes_release(server, world, services):
    path = hook_url(server, world)
    commits = [{"id": "c" * 40, "message": "Ship it", "author_email": "dev@example.com"}]

    status, body = post_json(server, path, {"version": "hook-1.0", "ref": "main",
                                            "commits": commits})

    assert status == 200
    assert body["version"] == "hook-1.0"
    assert body["dateReleased"] is not None
    assert body["commitCount"] == 1
    assert [p["slug"] for p in body["projects"]] == ["web"]
    items = activity(server, world)
    assert [(item["type"], item["project"]["slug"]) for item in items] == [("release", "web")]
    assert items[0]["actor"]["type"] == "hook"
    assert items[0]["actor"]["id"].startswith("builtin:")


def test_same_hook_call_twice_changes_nothing(server, world, services):
    path = hook_url(server, world)
    post_json(server, path, {"version": "hook-2.0"})
    head = services.projector.head()

    status, _ = post_json(server, path, {"version": "hook-2.0"})

    assert status == 200
    assert services.projector.head() == head
    assert len(activity(server, world)) == 1


def test_heroku_hook_finishes_release_with_owner(server, world, services):
    signed = heroku_url(server, world)
    _, me = call(server, "GET", "/api/0/", headers=world.headers())
    form = urllib.parse.urlencode({"app": "shop", "head_long": "a" * 40,
                                   "url": "https://app.example.com",
                                   "user": me["user"]["email"], "prev_head": "b" * 40,
                                   "git_log": "  * Dev: change"}).encode()

    status, body = call(server, "POST", signed, form,
                        {"Content-Type": "application/x-www-form-urlencoded"})
    again, _ = call(server, "POST", signed, form,
                    {"Content-Type": "application/x-www-form-urlencoded"})

    assert status == 200
    assert body["version"] == "a" * 40
    assert body["url"] == "https://app.example.com"
    assert body["owner"]["email"] == me["user"]["email"]
    assert body["dateReleased"] is not None
    assert again == 200
    assert len(activity(server, world)) == 1
    assert body["commitCount"] == 1
    assert body["lastCommit"]["id"] == "a" * 40
    with services.read() as queries:
        org_id = queries.directory.organization("acme")["id"]
        release_id = queries.releases.get(org_id, "a" * 40)["id"]
    release = services.ledger.repository.get(UUID(release_id))
    assert [(head["repository"], head["commit"], head["previous_commit"])
            for head in release.head_commits] == [("shop", "a" * 40, "b" * 40)]


@pytest.mark.parametrize("change", ["signature", "plugin", "project"])
def test_wrong_url_answers_403_without_saying_which(server, world, change):
    path = hook_url(server, world)
    parts = path.split("/")
    if change == "signature":
        parts[6] = "0" * 64
    elif change == "plugin":
        parts[4] = "jenkins"
    else:
        parts[5] = "999999"

    status, body = post_json(server, "/".join(parts), {"version": "x"})

    assert status == 403
    assert body == {"detail": "Invalid release hook URL."}


def test_rotated_token_invalidates_old_url(server, world):
    old = hook_url(server, world)

    rotated, _ = call(server, "POST", TOKEN_PATH, headers=world.headers())
    status, _ = post_json(server, old, {"version": "hook-3.0"})
    new_status, _ = post_json(server, hook_url(server, world), {"version": "hook-3.0"})

    assert rotated == 200
    assert status == 403
    assert new_status == 200


@pytest.mark.parametrize(("body", "field"), [
    ({}, "version"),
    ({"version": "ok", "commits": [{"message": "no id"}]}, "commits"),
    ({"version": "ok", "dateReleased": "soon"}, "dateReleased"),
])
def test_malformed_body_names_the_field(server, world, body, field):
    status, answer = post_json(server, hook_url(server, world), body)

    assert status == 400
    assert field in answer


def test_heroku_hook_without_head_long_names_it(server, world):
    status, body = call(server, "POST", heroku_url(server, world), b"url=x",
                        {"Content-Type": "application/x-www-form-urlencoded"})

    assert status == 400
    assert "head_long" in body


def test_token_needs_release_admin_scope_or_admin_role(server, world):
    member = world.user(teams=("frontend",), scopes=("project:read", "project:write"))
    admin = world.user(teams=("frontend",), role="admin", scopes=("project:write",))

    member_status, _ = call(server, "GET", TOKEN_PATH, headers=bearer(member))
    releases_status, _ = call(server, "GET", TOKEN_PATH, headers=world.headers("frontend"))
    admin_status, _ = call(server, "GET", TOKEN_PATH, headers=bearer(admin))

    assert member_status == 403
    assert releases_status == 200
    assert admin_status == 200
