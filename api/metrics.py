"""Prometheus metrics, served at GET /metrics in the text exposition format.

Under gunicorn every worker writes its samples to files in
PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py creates one per server when it
is unset), and whichever worker serves GET /metrics adds up the files of
all workers. The ledger's head, each read model's position and lag, and
which read models have an active projector are read from the database at
each scrape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import falcon
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from api.operations import Response, operation
from api.response_schemas import METRICS_TEXT
from domain.application import ReleaseLedger
from projections.database import UNAVAILABLE_ERRORS
from projections.postgres import PostgresDatabase

if TYPE_CHECKING:
    from api.services import Services

logger = logging.getLogger(__name__)

UNMATCHED_ROUTE = "unmatched"

REQUESTS = Counter(
    "ledger_http_requests", "HTTP requests answered.", ["route", "method", "status"]
)
REQUEST_SECONDS = Histogram(
    "ledger_http_request_duration_seconds", "Time taken to answer HTTP requests.",
    ["route", "method"],
)
EVENTS_APPENDED = Counter(
    "ledger_events_appended", "Events appended to the ledger by this service.", ["type"]
)
# Pool gauges are summed over the live processes of one server.
POOL_OPEN = Gauge(
    "ledger_db_pool_connections", "Database connections open in the pool.", ["pool"],
    multiprocess_mode="livesum",
)
POOL_IDLE = Gauge(
    "ledger_db_pool_idle_connections", "Open database connections not in use.", ["pool"],
    multiprocess_mode="livesum",
)
POOL_MAX = Gauge(
    "ledger_db_pool_max_connections", "Database connections the pool may open.", ["pool"],
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "ledger_db_pool_waiting_requests", "Requests waiting for a pool connection.", ["pool"],
    multiprocess_mode="livesum",
)


class MeteredReleaseLedger(ReleaseLedger):
    """The ledger application, counting the events it appends by type.

    `name` is repeated because eventsourcing names an application after its
    class, and the name chooses the events table and the settings prefix.
    """

    name = ReleaseLedger.name

    def _notify(self, recordings: list[Any]) -> None:
        for recording in recordings:
            EVENTS_APPENDED.labels(type(recording.domain_event).__qualname__).inc()


class MetricsMiddleware:
    """Count and time every request, and record pool usage after it."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.metrics_started = time.perf_counter()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        route = req.uri_template or UNMATCHED_ROUTE
        started = getattr(req.context, "metrics_started", time.perf_counter())
        REQUESTS.labels(route, req.method, str(resp.status_code)).inc()
        REQUEST_SECONDS.labels(route, req.method).observe(time.perf_counter() - started)
        record_pool_usage(self.services)


def record_pool_usage(services: Services) -> None:
    for name, pool in database_pools(services).items():
        stats = pool.get_stats()
        POOL_OPEN.labels(name).set(stats.get("pool_size", 0))
        POOL_IDLE.labels(name).set(stats.get("pool_available", 0))
        POOL_MAX.labels(name).set(stats.get("pool_max", 0))
        POOL_WAITING.labels(name).set(stats.get("requests_waiting", 0))


def database_pools(services: Services) -> dict[str, Any]:
    """Return the PostgreSQL connection pools by name; SQLite has none."""
    if not isinstance(services.database, PostgresDatabase):
        return {}
    pools = {"read_models": services.database.pool}
    if services.ledger_is_open:
        pools["events"] = services.ledger.recorder.datastore.pool  # type: ignore[attr-defined]
    return pools


class LedgerCollector(Collector):
    """Samples read from the database at each scrape."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("ledger_database_up", "Whether this scrape could read the ledger.")
        try:
            lags = self.services.projector.lags()
            active = self.services.active_runners()
        except UNAVAILABLE_ERRORS as error:
            logger.warning("metrics without database samples: database unavailable",
                           extra={"error": f"{type(error).__name__}: {error}"})
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        head = GaugeMetricFamily("ledger_head_position", "Position of the last ledger event.")
        head.add_metric([], lags[0].head if lags else 0)
        yield head

        position = GaugeMetricFamily(
            "ledger_read_model_position", "Last ledger position applied to the read model.",
            labels=["read_model"],
        )
        lag = GaugeMetricFamily(
            "ledger_read_model_lag_events", "Ledger events not yet applied to the read model.",
            labels=["read_model"],
        )
        failed = GaugeMetricFamily(
            "ledger_read_model_failed",
            "Whether the read model stopped on an event it failed to apply.",
            labels=["read_model"],
        )
        for item in lags:
            position.add_metric([item.name], item.position)
            lag.add_metric([item.name], item.events)
            failed.add_metric([item.name], 1 if item.failed else 0)
        yield position
        yield lag
        yield failed

        if active is not None:
            runner = GaugeMetricFamily(
                "ledger_read_model_runner_active",
                "Whether a projector process holds the read model's runner lock.",
                labels=["read_model"],
            )
            for item in lags:
                runner.add_metric([item.name], 1 if item.name in active else 0)
            yield runner


class Metrics:
    """GET /metrics: samples of every worker of this server, and of the database."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @operation("Prometheus metrics", {200: Response(
        "Samples", METRICS_TEXT, media_type="text/plain; version=0.0.4; charset=utf-8")},
        public=True, errors=())
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        record_pool_usage(self.services)
        if self.services.settings.metrics_dir:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            body = generate_latest(registry)
        else:
            body = generate_latest(REGISTRY)
        database = CollectorRegistry(auto_describe=False)
        database.register(LedgerCollector(self.services))
        resp.data = body + generate_latest(database)
        resp.content_type = CONTENT_TYPE_PLAIN_0_0_4
        resp.context.keep_content_type = True
