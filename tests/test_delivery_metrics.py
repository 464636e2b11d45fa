"""Delivery metrics: a read model registered after the history happened, filled by rebuild.

The history is recorded through the API before the read model exists.
Then the model is registered and rebuilt, and its figures are checked
against values worked out by hand below.

Commits (timestamps from day 0, 08:00): a at +0 h, b at +1 h, c at +2 h, d
without a timestamp. Release 1.0 links web and api and contains a, b and
d. Release 1.1 links web and contains b and c. Release 0.9 links web,
contains a, is deployed at day 0 01:00 and then deleted. Release 0.8
links web and is deployed, deleted, created again and deployed once more.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import falcon.testing
import pytest

from api.app import create_app
from api.cli import main
from api.services import Services
from projections.registry import all_projections
from tests.builders import build_world
from tests.read_models import position

R = "/api/0/organizations/acme/releases/"
METRICS = "/api/0/organizations/acme/delivery-metrics/"
HOUR = 3600.0


def at(day: datetime, hours: float) -> str:
    return (day + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def commit(letter: str, repository: str, timestamp: str | None) -> dict:
    return {"id": letter * 40, "repository": repository, "timestamp": timestamp}


@pytest.fixture
def day0() -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=2)


@pytest.fixture
def history(settings, day0):
    """Record the history with every read model but delivery_v1, then close."""
    services = Services(
        settings,
        create_tables=True,
        projections=[p for p in all_projections() if p.name != "delivery_v1"],
    )
    try:
        world = build_world(services)
        client = falcon.testing.TestClient(create_app(settings, services))
        record(client, world.headers(), day0)
        yield world
    finally:
        services.close()


def record(client, headers, day0) -> None:
    a = commit("a", "acme/app", at(day0, 8))
    b = commit("b", "acme/app", at(day0, 9))
    c = commit("c", "acme/lib", at(day0, 10))
    d = commit("d", "acme/app", None)

    def post(path, body, status=201):
        response = client.simulate_post(path, json=body, headers=headers)
        assert response.status_code == status, response.text
        return response.json

    def deploy(version, environment, finished, projects=None):
        body = {"environment": environment, "dateFinished": finished}
        if projects:
            body["projects"] = projects
        post(f"{R}{version}/deploys/", body)

    def release_after(version, minutes):
        created = datetime.fromisoformat(client.simulate_get(
            f"{R}{version}/", headers=headers).json["dateCreated"])
        released = (created + timedelta(minutes=minutes)).isoformat()
        response = client.simulate_put(f"{R}{version}/", json={"dateReleased": released},
                                       headers=headers)
        assert response.status_code == 200, response.text

    post(R, {"version": "0.9", "projects": ["web"], "commits": [a]})
    deploy("0.9", "production", at(day0, 1))
    assert client.simulate_delete(f"{R}0.9/", headers=headers).status_code == 204

    post(R, {"version": "0.8", "projects": ["web"]})
    deploy("0.8", "production", at(day0, 2))
    assert client.simulate_delete(f"{R}0.8/", headers=headers).status_code == 204
    post(R, {"version": "0.8", "projects": ["web"]})
    deploy("0.8", "production", at(day0, 48 + 15))

    post(R, {"version": "1.0", "projects": ["web", "api"], "commits": [a, b, d]})
    release_after("1.0", 90)
    post(R, {"version": "1.1", "projects": ["web"], "commits": [b, c]})
    release_after("1.1", 30)
    deploy("1.0", "staging", at(day0, 10))
    deploy("1.0", "production", at(day0, 24 + 9))
    deploy("1.1", "production", at(day0, 24 + 12), projects=["web"])
    deploy("1.0", "production", at(day0, 48 + 9))


@pytest.fixture
def registered(settings, history, monkeypatch):
    """Register delivery_v1 on the recorded ledger and rebuild it with the command."""
    services = Services(settings)
    monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url)
    try:
        assert position(services, "delivery_v1") in (None, 0)
        command = ["projections", "rebuild", "delivery_v1", "--batch-size", "7", "--pause", "0"]
        assert main(command) == 0
        yield services
    finally:
        services.close()


@pytest.fixture
def metrics_client(settings, registered):
    return falcon.testing.TestClient(create_app(settings, registered))


def get_metrics(client, headers, day0, **params):
    query = {"start": at(day0, -7 * 24), "end": at(day0, 4 * 24), **params}
    return client.simulate_get(METRICS, params=query, headers=headers)


def by_slug(body: dict) -> dict:
    return {project["slug"]: project for project in body["projects"]}


def environment(project: dict, name: str) -> dict:
    return next(e for e in project["environments"] if e["name"] == name)


def test_rebuild_fills_model_to_head(registered):
    head = registered.ledger.recorder.max_notification_id()

    assert position(registered, "delivery_v1") == head


def test_deploys_per_day_skip_deleted_releases(metrics_client, history, day0):
    body = get_metrics(metrics_client, history.headers(), day0).json

    web = by_slug(body)["web"]
    production = environment(web, "production")
    days = {item["start"]: item["deploys"] for item in production["intervals"]}
    assert [e["name"] for e in web["environments"]] == ["production", "staging"]
    assert production["deploys"] == 4
    assert production["deploysPerInterval"] == pytest.approx(4 / 11)
    assert len(days) == 11
    assert days[at(day0, 24).replace("Z", ".000000Z")] == 2
    assert days[at(day0, 48).replace("Z", ".000000Z")] == 2
    assert sum(days.values()) == 4
    assert environment(by_slug(body)["api"], "production")["deploys"] == 2
    assert environment(web, "staging")["deploys"] == 1
    assert by_slug(body)["billing"]["environments"] == []


def test_lead_time_to_first_deploy(metrics_client, history, day0):
    body = get_metrics(metrics_client, history.headers(), day0).json

    web = by_slug(body)["web"]
    api = by_slug(body)["api"]
    # web, production: a 25 h (1.0 at day 1 09:00), b 24 h (1.0 before 1.1), c 26 h (1.1).
    assert environment(web, "production")["leadTime"] == {
        "count": 3, "medianSeconds": 25 * HOUR, "p90Seconds": 25.8 * HOUR,
    }
    # api, production: a 25 h, b 24 h; 1.1 was not deployed to api.
    assert environment(api, "production")["leadTime"] == {
        "count": 2, "medianSeconds": 24.5 * HOUR, "p90Seconds": 24.9 * HOUR,
    }
    # web, staging: a 2 h, b 1 h.
    assert environment(web, "staging")["leadTime"] == {
        "count": 2, "medianSeconds": 1.5 * HOUR, "p90Seconds": 1.9 * HOUR,
    }
    day1 = next(item for item in environment(web, "production")["intervals"]
                if item["start"] == at(day0, 24).replace("Z", ".000000Z"))
    assert day1["leadTime"]["count"] == 3


def test_time_to_release_from_creation(metrics_client, history, day0):
    body = get_metrics(metrics_client, history.headers(), day0).json

    projects = by_slug(body)
    assert projects["web"]["timeToRelease"] == {
        "count": 2, "medianSeconds": 3600.0, "p90Seconds": 5040.0,
    }
    assert projects["api"]["timeToRelease"] == {
        "count": 1, "medianSeconds": 5400.0, "p90Seconds": 5400.0,
    }
    assert projects["billing"]["timeToRelease"] == {
        "count": 0, "medianSeconds": None, "p90Seconds": None,
    }


def test_weekly_intervals_start_on_mondays(metrics_client, history, day0):
    body = get_metrics(metrics_client, history.headers(), day0, interval="1w").json

    production = environment(by_slug(body)["web"], "production")
    weeks = {item["start"]: item["deploys"] for item in production["intervals"]}
    expected: dict[str, int] = {}
    for hours in (24 + 9, 24 + 12, 48 + 9, 48 + 15):
        moment = day0 + timedelta(hours=hours)
        monday = (moment - timedelta(days=moment.weekday())).replace(hour=0)
        key = monday.isoformat().replace("+00:00", ".000000Z")
        expected[key] = expected.get(key, 0) + 1
    assert body["interval"] == "1w"
    assert all(datetime.fromisoformat(start).weekday() == 0 for start in weeks)
    assert {start: count for start, count in weeks.items() if count} == expected


def test_filters_by_project_and_environment(metrics_client, history, day0):
    web_id = by_slug(get_metrics(metrics_client, history.headers(), day0).json)["web"]["id"]

    body = get_metrics(metrics_client, history.headers(), day0,
                       project=[web_id, "api"], environment="staging").json

    assert [project["slug"] for project in body["projects"]] == ["web", "api"]
    assert [e["name"] for e in body["projects"][0]["environments"]] == ["staging"]
    assert environment(body["projects"][1], "staging")["deploys"] == 1


def test_range_excludes_deploys_outside_it(metrics_client, history, day0):
    body = get_metrics(metrics_client, history.headers(), day0,
                       start=at(day0, 24 + 10), end=at(day0, 48)).json

    production = environment(by_slug(body)["web"], "production")
    assert production["deploys"] == 1
    assert production["leadTime"]["count"] == 1
    assert production["leadTime"]["medianSeconds"] == 26 * HOUR
    assert [item["start"] for item in production["intervals"]] == [
        at(day0, 24).replace("Z", ".000000Z")
    ]


def test_caller_sees_only_usable_projects(metrics_client, history, day0):
    frontend = history.headers("frontend")

    mine = get_metrics(metrics_client, frontend, day0)
    other = get_metrics(metrics_client, frontend, day0, project="api")
    organization = get_metrics(metrics_client, history.headers("org"), day0)

    assert mine.status_code == 200
    assert [project["slug"] for project in mine.json["projects"]] == ["web"]
    assert other.status_code == 403
    assert "'api'" in other.json["detail"]
    assert [p["slug"] for p in organization.json["projects"]] == ["api", "billing", "web"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"interval": "1m"}, "interval"),
        ({"start": "yesterday"}, "start"),
        ({"start": "2024-02-01T00:00:00Z", "end": "2024-01-01T00:00:00Z"}, "start"),
        ({"start": "2000-01-01T00:00:00Z", "end": "2024-01-01T00:00:00Z"}, "interval"),
        ({"environment": ""}, "environment"),
    ],
)
def test_invalid_parameters_name_the_field(metrics_client, history, params, field):
    response = metrics_client.simulate_get(METRICS, params=params, headers=history.headers())

    assert response.status_code == 400
    assert list(response.json) == [field]


def test_unknown_organization_is_not_found(metrics_client, history):
    response = metrics_client.simulate_get(
        "/api/0/organizations/nope/delivery-metrics/", headers=history.headers()
    )

    assert response.status_code == 404
