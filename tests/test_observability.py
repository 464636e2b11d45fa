"""Readiness, Prometheus metrics and request-scoped logs."""

from __future__ import annotations

import dataclasses
import io
import json
import logging

import falcon
import falcon.testing
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.logs import JsonFormatter, RequestContextFilter
from api.services import Services
from domain.application import ReleaseChanges
from domain.directory import Project
from projections.activity import ActivityProjection
from projections.registry import all_projections
from tests.builders import CAUSE, build_world, release_body
from tests.read_models import with_failing

R = "/api/0/organizations/acme/releases/"
TOKEN = "sntryu_" + "ab" * 32


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Return every sample of a Prometheus text page by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_readyz_reports_read_model_positions(client, services, world):
    client.simulate_get(R, headers=world.headers())

    response = client.simulate_get("/readyz")

    head = services.projector.head()
    assert response.status_code == 200
    assert response.json["status"] == "ready"
    assert response.json["ledgerPosition"] == head
    assert response.json["readModels"]["releases_v1"] == {
        "position": head, "lag": 0, "state": "live"}


def test_readyz_503_when_read_models_lag(settings):
    strict = dataclasses.replace(settings, ready_max_lag=0)
    services = Services(strict, create_tables=True)
    try:
        build_world(services)
        client = falcon.testing.TestClient(create_app(strict, services))

        response = client.simulate_get("/readyz")
    finally:
        services.close()

    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert list(response.json) == ["detail"]
    assert "directory_v2" in response.json["detail"]
    assert "more than 0" in response.json["detail"]


def test_readyz_ignores_lag_of_ignored_events(settings):
    strict = dataclasses.replace(settings, ready_max_lag=0)
    services = Services(strict, create_tables=True)
    try:
        world = build_world(services)
        services.projector.catch_up()
        web = services.ledger.get_organization(world.org)
        services.ledger.create_release(
            web.id, "1.0", ReleaseChanges(project_ids=[Project.create_id(web.id, "web")]), CAUSE)
        others = [p for p in services.projector.projections if p.name != "directory_v2"]
        services.projector.catch_up(projections=others)
        client = falcon.testing.TestClient(create_app(strict, services))

        response = client.simulate_get("/readyz")
        positions = services.projector.positions()
    finally:
        services.close()

    assert positions["directory_v2"] < response.json["ledgerPosition"]
    assert response.status_code == 200
    assert response.json["readModels"]["directory_v2"]["lag"] == 0


def test_failed_model_listed_in_readyz_and_metrics(settings, services, world):
    failing = Services(settings, projections=with_failing(ActivityProjection.name))
    client = falcon.testing.TestClient(create_app(settings, failing))
    try:
        with pytest.raises(RuntimeError, match="injected failure"):
            failing.projector.catch_up()
        ready = client.simulate_get("/readyz")
        metrics = samples(client.simulate_get("/metrics").text)
    finally:
        failing.close()

    assert ready.status_code == 200
    assert ready.json["readModels"]["activity_v1"]["state"] == "failed"
    assert ready.json["readModels"]["releases_v1"]["state"] == "live"
    assert metrics[("ledger_read_model_failed", (("read_model", "activity_v1"),))] == 1
    assert metrics[("ledger_read_model_failed", (("read_model", "releases_v1"),))] == 0


def test_readyz_503_when_database_down(settings, tmp_path):
    if settings.backend == "sqlite":
        # A folder where the database file should be cannot be opened.
        down = dataclasses.replace(settings, database_url=f"sqlite:///{tmp_path}")
    else:
        down = dataclasses.replace(
            settings, database_url="postgresql://postgres@127.0.0.1:1/test", db_connect_timeout=1
        )
    services = Services(down)
    client = falcon.testing.TestClient(create_app(down, services))
    try:
        health = client.simulate_get("/healthz")
        ready = client.simulate_get("/readyz")
        api = client.simulate_get(R, headers={"Authorization": f"Bearer {TOKEN}"})
        metrics = samples(client.simulate_get("/metrics").text)
    finally:
        services.close()

    assert health.status_code == 200
    assert ready.status_code == 503
    assert ready.json == {"detail": "The database does not answer."}
    assert api.status_code == 503
    assert api.headers["retry-after"] == "2"
    assert list(api.json) == ["detail"]
    assert metrics[("ledger_database_up", ())] == 0


def test_metrics_cover_requests_events_read_models(backend, client, services, world):
    client.simulate_post(R, json=release_body("4.0.0"), headers=world.headers())
    client.simulate_get(f"{R}4.0.0/", headers=world.headers())

    response = client.simulate_get("/metrics")

    values = samples(response.text)
    head = services.projector.head()
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    route = "/api/0/organizations/{org}/releases/"
    assert values[("ledger_http_requests_total",
                   (("method", "POST"), ("route", route), ("status", "201")))] >= 1
    assert values[("ledger_http_request_duration_seconds_count",
                   (("method", "GET"), ("route", route + "{version}/")))] >= 1
    assert values[("ledger_events_appended_total", (("type", "Release.Created"),))] >= 1
    assert values[("ledger_database_up", ())] == 1
    assert values[("ledger_head_position", ())] == head
    # The release requests caught up only the read models they read. The
    # directory may stay behind by the release events, which it ignores,
    # and then lags by none.
    with services.database.transaction() as cursor:
        check = services.projector.check(cursor)
    for name in (projection.name for projection in all_projections()):
        position = values[("ledger_read_model_position", (("read_model", name),))]
        lag = values[("ledger_read_model_lag_events", (("read_model", name),))]
        assert lag == 0 if name in check.settled else position + lag == head
    assert values[("ledger_read_model_lag_events", (("read_model", "releases_v1"),))] == 0
    assert "directory_v2" not in check.behind
    assert values[("ledger_read_model_lag_events", (("read_model", "audit_v2"),))] > 0
    if backend == "postgresql":
        assert values[("ledger_db_pool_connections", (("pool", "events"),))] >= 1
        assert values[("ledger_db_pool_max_connections", (("pool", "read_models"),))] >= 1
        assert values[("ledger_read_model_runner_active", (("read_model", "releases_v1"),))] == 0


class LoggingResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        logging.getLogger("tests.resource").info("inside the request")
        resp.media = {}


@pytest.fixture
def log_lines():
    """Capture the root logger's output in the service's JSON format."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def test_request_log_lines_carry_request_id(settings, services, log_lines):
    app = create_app(settings, services)
    app.add_route("/logging", LoggingResource())
    client = falcon.testing.TestClient(app)

    given = client.simulate_get("/logging", headers={"X-Request-ID": "deploy-42"})
    generated = client.simulate_get("/logging")
    logging.getLogger("tests.resource").info("outside any request")

    lines = [line for line in log_lines() if line["logger"] in ("tests.resource", "api.access")]
    assert given.headers["x-request-id"] == "deploy-42"
    generated_id = generated.headers["x-request-id"]
    assert len(generated_id) == 32
    assert [line.get("request_id") for line in lines] == [
        "deploy-42", "deploy-42", generated_id, generated_id, None
    ]


def test_logs_mask_tokens(client, log_lines):
    client.simulate_get(R, headers={"Authorization": f"Bearer {TOKEN}"})
    logging.getLogger("tests").warning("header was Bearer opaque-secret-1 and %s", TOKEN)
    logging.getLogger("tests").warning("failed", extra={"error": f"bad token {TOKEN}"})

    output = json.dumps(log_lines())
    assert TOKEN not in output
    assert "opaque-secret-1" not in output
    assert output.count("[token]") == 3
