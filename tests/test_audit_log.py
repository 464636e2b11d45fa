"""An organization's audit log: every event, newest first, filtered and paged, for auditors."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import falcon.testing
import pytest
from eventsourcing.domain import Aggregate, event

from domain.application import hash_token
from domain.cause import Cause
from domain.release import Release
from projections.audit import AuditProjection
from projections.projector import POSITIONS_TABLE
from projections.timeline import TimelineProjection
from tests.builders import CAUSE, RELEASE_SCOPES, World, build_world, release_body
from tests.paging import all_pages, get_link, links

R = "/api/0/organizations/acme/releases/"
LOG = "/api/0/organizations/acme/audit-logs/"
AUDITOR_SCOPES = (*RELEASE_SCOPES, "org:read")


class Checklist(Aggregate):
    """An aggregate that the audit read model has no handler for."""

    @event("Created")
    def __init__(self, release_id: UUID, name: str, cause: Cause) -> None:
        self.release_id = release_id

    @event("Ticked")
    def tick(self, item: str, cause: Cause) -> None:
        pass


@pytest.fixture
def auditor(world: World) -> str:
    world.tokens["auditor"] = world.token(org="acme", scopes=("org:read",))
    return "auditor"


def create(client: falcon.testing.TestClient, world: World, version: str, *projects: str,
           who: str = "superuser", **fields) -> falcon.testing.Result:
    response = client.simulate_post(R, json=release_body(version, *projects, **fields),
                                    headers=world.headers(who))
    assert response.status_code in (201, 208), response.json
    return response


def audit(client: falcon.testing.TestClient, world: World, who: str = "auditor",
          **params) -> falcon.testing.Result:
    return client.simulate_get(LOG, params=params, headers=world.headers(who))


def me(client: falcon.testing.TestClient, world: World, who: str) -> dict:
    return client.simulate_get("/api/0/", headers=world.headers(who)).json["user"]


def test_audit_log_lists_newest_first(client, world, auditor):
    create(client, world, "1.0", "web")
    client.simulate_delete(f"{R}1.0/", headers=world.headers())

    response = audit(client, world)

    assert response.status_code == 200
    items = response.json
    positions = [int(item["id"]) for item in items]
    assert positions == sorted(positions, reverse=True)
    types = [item["type"] for item in items]
    assert types[:3] == ["release.deleted", "release.project_added", "release.created"]
    assert types[-1] == "organization.created"
    for expected in ("team.created", "project.created", "member.created", "member.team_joined",
                     "api_token.created"):
        assert expected in types


def test_audit_log_names_what_each_event_happened_to(client, world, auditor):
    response = create(client, world, "1.0", "web")

    items = audit(client, world, event="release.created").json

    assert items[0]["target"] == {"type": "release", "id": response.json["id"], "name": "1.0"}
    assert items[0]["sequence"] == 1
    assert len(items[0]["hash"]) == 64


def test_audit_log_hides_token_secrets(client, world, auditor):
    secret = world.tokens["org"]

    response = audit(client, world, event="api_token.created")

    assert response.status_code == 200
    assert response.json
    assert secret not in response.text
    assert hash_token(secret) not in response.text
    for item in response.json:
        assert set(item["data"]) == {"organization", "user", "scopes", "label"}


def test_audit_log_leaves_out_other_organizations(client, world, services, auditor):
    build_world(services, org="globex")
    services.ledger.create_organization("initech", None, False, CAUSE)

    items = audit(client, world).json

    assert {item["target"]["name"] for item in items if item["type"] == "organization.created"} \
        == {"acme"}
    assert all(item["target"]["type"] != "user" for item in items)


def test_audit_log_filters_by_event_type(client, world, auditor):
    create(client, world, "1.0", "web")
    client.simulate_delete(f"{R}1.0/", headers=world.headers())
    create(client, world, "2.0", "web")

    items = audit(client, world, event=["release.created", "release.deleted"]).json

    assert [(item["type"], item["target"]["name"]) for item in items] == [
        ("release.created", "2.0"), ("release.deleted", "1.0"), ("release.created", "1.0")]


def test_audit_log_filters_by_actor_id_or_email(client, world, auditor):
    create(client, world, "1.0", "web", who="superuser")
    create(client, world, "2.0", "web", who="frontend")
    frontend = me(client, world, "frontend")

    by_id = audit(client, world, actor=frontend["id"]).json
    by_email = audit(client, world, actor=frontend["email"].upper()).json

    assert {item["target"]["name"] for item in by_id} == {"2.0"}
    assert by_email == by_id
    assert all(item["actor"]["id"] == frontend["id"] for item in by_id)


def test_audit_log_filters_by_project(client, world, auditor):
    create(client, world, "1.0", "web")
    create(client, world, "2.0", "api")
    create(client, world, "2.0", "api", "web")
    web_id = next(p["id"] for p in client.simulate_get(
        "/api/0/organizations/acme/projects/", headers=world.headers()).json if p["slug"] == "web")

    by_slug = audit(client, world, project="web").json
    by_id = audit(client, world, project=web_id).json

    assert by_slug == by_id
    assert [(item["type"], item["target"]["name"]) for item in by_slug] == [
        ("release.project_added", "2.0"),
        ("release.project_added", "2.0"),
        ("release.created", "2.0"),
        ("release.project_added", "1.0"),
        ("release.created", "1.0"),
        ("project.hook_token_rotated", "web"),
        ("project.created", "web"),
    ]


def test_project_filter_follows_each_lifetime(client, world, auditor):
    create(client, world, "1.0", "web")
    client.simulate_delete(f"{R}1.0/", headers=world.headers())
    create(client, world, "1.0", "api")

    web = audit(client, world, project="web", version="1.0").json
    api = audit(client, world, project="api", version="1.0").json

    assert [item["type"] for item in web] == [
        "release.deleted", "release.project_added", "release.created"]
    assert [item["type"] for item in api] == ["release.project_added", "release.recreated"]


def test_audit_log_filters_by_version(client, world, auditor):
    create(client, world, "1.0", "web")
    create(client, world, "1.0.1", "web")

    items = audit(client, world, version="1.0").json

    assert {item["target"]["name"] for item in items} == {"1.0"}
    assert len(items) == 2


def test_audit_log_filters_by_time(client, world, auditor):
    create(client, world, "1.0", "web")
    create(client, world, "2.0", "web")
    create(client, world, "3.0", "web")
    created = {item["target"]["name"]: item["dateCreated"]
               for item in audit(client, world, event="release.created").json}

    window = audit(client, world, event="release.created", start=created["2.0"],
                   end=created["3.0"]).json
    since = audit(client, world, event="release.created", start=created["2.0"]).json
    until = audit(client, world, event="release.created", end=created["2.0"]).json

    assert [item["target"]["name"] for item in window] == ["2.0"]
    assert [item["target"]["name"] for item in since] == ["3.0", "2.0"]
    assert [item["target"]["name"] for item in until] == ["1.0"]


def test_audit_log_combines_filters(client, world, auditor):
    create(client, world, "1.0", "web", who="frontend")
    create(client, world, "2.0", "web", who="frontend")
    create(client, world, "2.0", "web", "api", who="superuser")
    frontend = me(client, world, "frontend")

    items = audit(client, world, version="2.0", actor=frontend["email"],
                  event="release.project_added", project="web").json

    assert len(items) == 1
    assert items[0]["target"]["name"] == "2.0"
    assert items[0]["actor"]["email"] == frontend["email"]


def test_audit_log_pages_newest_first_through_link_header(client, world, auditor):
    for number in range(4):
        create(client, world, f"{number}.0", "web")
    everything = audit(client, world).json

    pages = all_pages(client, LOG, world.headers("auditor"), {"per_page": "5"})

    assert all(len(page) == 5 for page in pages[:-1])
    assert [item["id"] for page in pages for item in page] == [i["id"] for i in everything]
    last = audit(client, world, per_page="5", cursor=f"{pages[-2][-1]['id']}:0:0")
    assert links(last)["next"][1] is False


def test_audit_log_previous_link_returns_the_page_before(client, world, auditor):
    for number in range(3):
        create(client, world, f"{number}.0", "web")
    first = audit(client, world, per_page="4")
    second = get_link(client, links(first)["next"][0], world.headers("auditor"))

    back = get_link(client, links(second)["previous"][0], world.headers("auditor"))

    assert back.json == first.json


def test_audit_log_pages_keep_their_filters(client, world, auditor):
    for number in range(5):
        create(client, world, f"{number}.0", "web")

    pages = all_pages(client, LOG, world.headers("auditor"),
                      {"per_page": "2", "event": "release.created"})

    names = [item["target"]["name"] for page in pages for item in page]
    assert names == ["4.0", "3.0", "2.0", "1.0", "0.0"]


def test_audit_log_access_rules(client, world, auditor):
    world.tokens["admin"] = world.user(role="admin", scopes=AUDITOR_SCOPES)
    world.tokens["owner"] = world.user(role="owner", scopes=AUDITOR_SCOPES)
    world.tokens["root"] = world.user(superuser=True, scopes=AUDITOR_SCOPES)
    world.tokens["member"] = world.user(teams=("frontend",), scopes=AUDITOR_SCOPES)
    world.tokens["admin-without-org-scope"] = world.user(role="admin")
    world.tokens["org-project-reader"] = world.token(org="acme", scopes=("project:read",))

    statuses = {who: audit(client, world, who=who).status_code
                for who in ("auditor", "admin", "owner", "root", "member",
                            "admin-without-org-scope", "org", "org-project-reader")}

    assert statuses == {"auditor": 200, "admin": 200, "owner": 200, "root": 200,
                        "member": 403, "admin-without-org-scope": 403, "org": 403,
                        "org-project-reader": 403}


def test_audit_log_of_other_org_is_404(client, world, services):
    build_world(services, org="globex")
    world.tokens["globex-admin"] = world.user(org="globex", role="admin", scopes=AUDITOR_SCOPES)

    response = audit(client, world, who="globex-admin")

    assert response.status_code == 404


@pytest.mark.parametrize("params, field", [
    ({"event": "Release Created"}, "event"),
    ({"start": "yesterday"}, "start"),
    ({"end": "2024-13-01T00:00:00Z"}, "end"),
    ({"project": "nope"}, "project"),
    ({"actor": "x" * 300}, "actor"),
])
def test_audit_log_rejects_invalid_filters(client, world, auditor, params, field):
    response = audit(client, world, **params)

    assert response.status_code == 400
    assert field in response.json


def test_rebuilt_audit_and_timeline_models_answer_the_same(client, world, services, auditor):
    create(client, world, "1.0", "web", ref="first")
    client.simulate_put(f"{R}1.0/", json={"ref": "second"}, headers=world.headers())
    client.simulate_delete(f"{R}1.0/", headers=world.headers())
    create(client, world, "1.0", "api")
    at = (datetime.fromisoformat(audit(client, world, event="release.updated").json[0]
                                 ["dateCreated"]) - timedelta(microseconds=1)).isoformat()
    before = (audit(client, world).json, client.simulate_get(
        f"{R}1.0/", params={"at": at}, headers=world.headers()).json)

    with services.database.transaction(write=True) as cursor:
        for projection in (AuditProjection(), TimelineProjection()):
            for table in projection.tables:
                cursor.execute(f"DELETE FROM {table}")
            cursor.execute(f"UPDATE {POSITIONS_TABLE} SET position = 0 WHERE name = %s",
                           (projection.name,))
    after = (audit(client, world).json, client.simulate_get(
        f"{R}1.0/", params={"at": at}, headers=world.headers()).json)

    assert before[1]["ref"] == "first"
    assert after == before


def test_audit_log_places_aggregates_without_handlers(client, world, services, auditor):
    create(client, world, "1.0", "web")
    organization = services.ledger.get_organization("acme")
    checklist = Checklist(Release.create_id(organization.id, "1.0"), "go-live", CAUSE)
    checklist.tick("smoke tests", CAUSE)

    services.ledger.save(checklist)
    items = audit(client, world, event=["checklist.created", "checklist.ticked"]).json

    release_id = create(client, world, "1.0", "web").json["id"]
    assert [item["type"] for item in items] == ["checklist.ticked", "checklist.created"]
    assert items[1]["target"]["name"] == "go-live"
    assert items[1]["data"] == {"release": release_id, "name": "go-live"}
    assert items[0]["data"] == {"item": "smoke tests"}


def test_audit_log_never_shows_hook_secret(client, world, auditor):
    token = client.simulate_get("/api/0/projects/acme/web/releases/token/",
                                headers=world.headers()).json["token"]

    text = audit(client, world).text

    assert "project.hook_token_rotated" in text
    assert token not in text


def test_audit_reads_skip_unrelated_models(client, world, services, auditor):
    client.simulate_post(R, json=release_body("1.0"), headers=world.headers())
    services.projector.catch_up()
    services.ledger.create_team(world.org, "late", None, CAUSE)
    head = services.projector.head()

    log = client.simulate_get(LOG, headers=world.headers("auditor"))
    history = client.simulate_get(f"{R}1.0/history/", headers=world.headers())

    assert log.status_code == 200
    assert history.status_code == 200
    assert log.json[0]["type"] == "team.created"
    positions = services.projector.positions()
    assert {positions[name] for name in ("directory_v2", "audit_v2", "releases_v1")} == {head}
    assert positions["timeline_v2"] < head
    assert positions["delivery_v1"] < head
