"""Delivery metrics of an organization's projects, per environment and interval.

GET /api/0/organizations/{org}/delivery-metrics/ takes `project` (an id or
slug, repeatable; default every project the caller may use),
`environment` (repeatable; default every environment deployed to),
`start` and `end` (RFC 3339; default the 30 days before now) and
`interval` (`1d` or `1w`, default `1d`). Intervals start at midnight UTC,
and weekly ones on Mondays as ISO weeks do. The first and last interval
may therefore reach outside [start, end), but only events inside it count.

`deploysPerInterval` is the number of deploys divided by the length of
[start, end) in intervals. Durations are in seconds. Medians and 90th
percentiles interpolate linearly between the two nearest values, as
PostgreSQL's `percentile_cont` does. A negative duration (a commit
timestamp after its deploy, a release date before the ledger recorded
the release) counts as zero.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import falcon

from api import response_schemas as bodies
from api import schemas
from api.auth import READ_SCOPES, OrganizationAccess
from api.operations import operation
from api.resource import Resource
from api.services import Queries
from domain.dates import parse_datetime
from domain.errors import InvalidFieldError, PermissionDeniedError
from projections.database import Row
from projections.projection import EPOCH, to_micros, to_text

INTERVALS = {"1d": timedelta(days=1), "1w": timedelta(weeks=1)}
# 1970-01-05 is the first Monday after the epoch.
INTERVAL_ORIGINS = {"1d": EPOCH, "1w": EPOCH + timedelta(days=4)}
DEFAULT_RANGE = timedelta(days=30)
MAX_INTERVALS = 1000
MICROS_PER_SECOND = 1_000_000


@dataclass(frozen=True)
class Window:
    """The time range of a request and the intervals it is cut into, in microseconds."""

    start: int
    end: int
    interval: str

    @property
    def width(self) -> int:
        return INTERVALS[self.interval] // timedelta(microseconds=1)

    @property
    def origin(self) -> int:
        return to_micros(INTERVAL_ORIGINS[self.interval])

    def index(self, micros: int) -> int:
        return (micros - self.origin) // self.width

    def interval_indexes(self) -> range:
        return range(self.index(self.start), self.index(self.end - 1) + 1)

    def interval_start(self, index: int) -> str:
        return _text(self.origin + index * self.width)


class DeliveryMetrics(Resource):
    scopes: ClassVar[dict[str, Collection[str]]] = {"GET": READ_SCOPES | {"org:read"}}

    @operation("Report deploy frequency and lead times", {200: bodies.DELIVERY_METRICS},
               query=schemas.DELIVERY_QUERY)
    def on_get(self, req: falcon.Request, resp: falcon.Response, org: str) -> None:
        window = read_window(req)
        environments = read_environments(req)
        requested = req.context.query.get("project") or []
        with self.services.read("directory", "delivery") as queries:
            access = self.access(queries, req, org)
            projects = chosen_projects(queries, access, requested)
            project_ids = [project["id"] for project in projects]
            delivery = queries.delivery
            deploys = delivery.deploys(
                access.org_id, project_ids, environments, window.start, window.end
            )
            lead_times = delivery.lead_times(
                access.org_id, project_ids, environments, window.start, window.end
            )
            releases = delivery.release_times(
                access.org_id, project_ids, window.start, window.end
            )
        resp.media = metrics_body(window, projects, environments, deploys, lead_times, releases)


def read_window(req: falcon.Request) -> Window:
    query = req.context.query
    interval = query["interval"]
    end = parse_datetime("end", query.get("end")) or datetime.now(UTC)
    try:
        start = parse_datetime("start", query.get("start")) or end - DEFAULT_RANGE
    except OverflowError:
        raise InvalidFieldError("end", "end must be after the year 1 by 30 days.") from None
    if start >= end:
        raise InvalidFieldError("start", "start must be before end.")
    window = Window(to_micros(start), to_micros(end), interval)
    if len(window.interval_indexes()) > MAX_INTERVALS:
        raise InvalidFieldError(
            "interval",
            f"The range spans more than {MAX_INTERVALS} intervals; use a shorter range"
            " or a longer interval.",
        )
    return window


def read_environments(req: falcon.Request) -> list[str] | None:
    environments = req.context.query.get("environment")
    if environments is None:
        return None
    return list(dict.fromkeys(environments))


def chosen_projects(
    queries: Queries, access: OrganizationAccess, requested: Sequence[str]
) -> list[Row]:
    """Return the requested projects, by id or slug, or every project the caller may use.

    A project that does not exist and one the caller may not use are
    rejected alike, so the response does not tell them apart.
    """
    usable = [p for p in queries.directory.projects(access.org_id) if access.may_use(p["id"])]
    if not requested:
        return usable
    by_key = {str(p["public_id"]): p for p in usable} | {p["slug"]: p for p in usable}
    chosen: dict[str, Row] = {}
    for value in requested:
        project = by_key.get(value)
        if project is None:
            raise PermissionDeniedError(
                f"Project {value[:60]!r} does not exist in {access.slug} or you may not use it."
            )
        chosen[project["id"]] = project
    return list(chosen.values())


def metrics_body(
    window: Window,
    projects: Sequence[Row],
    environments: Sequence[str] | None,
    deploys: Sequence[Row],
    lead_times: Sequence[Row],
    releases: Sequence[Row],
) -> dict[str, Any]:
    deploys_by_project = _group(deploys, "project_id")
    lead_times_by_project = _group(lead_times, "project_id")
    releases_by_project = _group(releases, "project_id")
    return {
        "start": _text(window.start),
        "end": _text(window.end),
        "interval": window.interval,
        "projects": [
            _project_body(
                window,
                project,
                environments,
                deploys_by_project[project["id"]],
                lead_times_by_project[project["id"]],
                releases_by_project[project["id"]],
            )
            for project in projects
        ],
    }


def _project_body(
    window: Window,
    project: Row,
    environments: Sequence[str] | None,
    deploys: list[Row],
    lead_times: list[Row],
    releases: list[Row],
) -> dict[str, Any]:
    deploys_by_environment = _group(deploys, "environment")
    lead_times_by_environment = _group(lead_times, "environment")
    if environments is None:
        environments = sorted({*deploys_by_environment, *lead_times_by_environment})
    return {
        "id": str(project["public_id"]),
        "slug": project["slug"],
        "timeToRelease": summary([_seconds(r["released_at"] - r["created_at"]) for r in releases]),
        "environments": [
            _environment_body(
                window,
                environment,
                deploys_by_environment[environment],
                lead_times_by_environment[environment],
            )
            for environment in environments
        ],
    }


def _environment_body(
    window: Window, environment: str, deploys: list[Row], lead_times: list[Row]
) -> dict[str, Any]:
    deploy_counts: dict[int, int] = defaultdict(int)
    for deploy in deploys:
        deploy_counts[window.index(deploy["finished_at"])] += 1
    lead_seconds: dict[int, list[float]] = defaultdict(list)
    for row in lead_times:
        seconds = _seconds(row["deployed_at"] - row["committed_at"])
        lead_seconds[window.index(row["deployed_at"])].append(seconds)
    intervals_in_range = (window.end - window.start) / window.width
    return {
        "name": environment,
        "deploys": len(deploys),
        "deploysPerInterval": len(deploys) / intervals_in_range,
        "leadTime": summary([s for values in lead_seconds.values() for s in values]),
        "intervals": [
            {
                "start": window.interval_start(index),
                "deploys": deploy_counts[index],
                "leadTime": summary(lead_seconds[index]),
            }
            for index in window.interval_indexes()
        ],
    }


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Return the count, median and 90th percentile of durations in seconds."""
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "medianSeconds": percentile(ordered, 0.5),
        "p90Seconds": percentile(ordered, 0.9),
    }


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """Return the value at `fraction` of sorted `ordered`, interpolating linearly; None if empty."""
    if not ordered:
        return None
    rank = (len(ordered) - 1) * fraction
    below = int(rank)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (rank - below)


def _group(rows: Sequence[Row], key: str) -> defaultdict[str, list[Row]]:
    grouped: defaultdict[str, list[Row]] = defaultdict(list)
    for row in rows:
        grouped[row[key]].append(row)
    return grouped


def _seconds(micros: int) -> float:
    return max(micros, 0) / MICROS_PER_SECOND


def _text(micros: int) -> str:
    return to_text(EPOCH + timedelta(microseconds=micros))
