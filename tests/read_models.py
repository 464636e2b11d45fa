"""Helpers for read-model tests: table contents, rebuilds and a history of commands."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from api.config import Settings
from api.services import Services
from domain.application import ReleaseChanges
from projections.projection import Projection
from projections.rebuild import Rebuild
from projections.registry import all_projections
from projections.releases import ReleasesProjection
from projections.status import ReadModelStatus, read_model_statuses
from tests.builders import CAUSE
from tests.conftest import drop_schema, postgres_url

BASE_TIME = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


class FailingReleases(ReleasesProjection):
    """The release read model, failing on the event at one ledger position."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at

    def apply(self, event, cursor, position):
        if position == self.fail_at:
            raise RuntimeError("injected failure")
        super().apply(event, cursor, position)


def head(services: Services) -> int:
    return services.ledger.recorder.max_notification_id() or 0


def count_events_after(services: Services, start: int) -> int:
    return len(services.ledger.recorder.select_notifications(
        start=start, limit=1_000_000, inclusive_of_start=False
    ))


def table_contents(services: Services, projection: Projection) -> dict[str, list[str]]:
    """Return every row of the projection's tables, as sorted JSON, by table."""
    contents = {}
    with services.database.transaction() as cursor:
        for table in projection.tables:
            rows = cursor.execute(f"SELECT * FROM {table}").fetchall()
            contents[table] = sorted(json.dumps(row, sort_keys=True, default=str) for row in rows)
    return contents


def all_contents(services: Services) -> dict[str, dict[str, list[str]]]:
    return {p.name: table_contents(services, p) for p in services.projector.projections}


def rebuild(services: Services, name: str, **options) -> int:
    """Rebuild the registered read model `name` in this process; return its live position.

    Batches follow each other without a pause unless `pause` is given.
    """
    projection = projection_named(services, name)
    options.setdefault("pause", 0.0)
    return Rebuild(services.ledger, services.database, projection, **options).run()


def projection_named(services: Services, name: str) -> Projection:
    return next(p for p in services.projector.projections if p.name == name)


def position(services: Services, name: str) -> int | None:
    with services.database.transaction() as cursor:
        row = cursor.execute(
            "SELECT position FROM projection_positions WHERE name = %s", (name,)
        ).fetchone()
    return None if row is None else row["position"]


def statuses(services: Services, now: datetime | None = None) -> dict[str, ReadModelStatus]:
    found = read_model_statuses(
        services.ledger, services.database, services.projector.projections, now
    )
    return {status.name: status for status in found}


def org_id(services: Services, slug: str = "acme") -> UUID:
    return services.ledger.get_organization(slug).id


def project_ids(services: Services, *slugs: str) -> list[UUID]:
    with services.read() as queries:
        organization = queries.directory.organization("acme")
        return [UUID(queries.directory.project(organization["id"], slug)["id"]) for slug in slugs]


def record_history(services: Services, releases: int = 12) -> None:
    """Record releases with projects, commits, release dates and deploys.

    From three releases on, app@1.0 is also deleted and created again, and
    app@2.0 archived.
    """
    ledger = services.ledger
    org = org_id(services)
    web, api = project_ids(services, "web", "api")
    for number in range(releases):
        version = f"app@{number}.0"
        moment = BASE_TIME + timedelta(hours=number)
        commits = [
            {"id": f"{number:04x}{index:036x}", "repository": "acme/app", "message": "change",
             "author_name": "Ada", "author_email": "ada@example.com",
             "timestamp": (moment - timedelta(minutes=index)).isoformat(), "patch_set": []}
            for index in range(3)
        ]
        ledger.create_release(org, version, ReleaseChanges(project_ids=[web]), CAUSE)
        ledger.update_release(org, version, ReleaseChanges(
            project_ids=[api] if number % 2 else [], commits=commits, date_released=moment,
        ), CAUSE)
        deploy = {"environment": "production", "name": None, "url": None,
                  "date_started": None, "date_finished": moment + timedelta(minutes=30)}
        ledger.record_deploy(org, version, deploy, [], CAUSE)
    if releases >= 3:
        ledger.delete_release(org, "app@1.0", CAUSE)
        ledger.create_release(org, "app@1.0", ReleaseChanges(project_ids=[api]), CAUSE)
        ledger.update_release(org, "app@2.0", ReleaseChanges(status="archived"), CAUSE)


@contextmanager
def fresh_services(backend: str, folder: Path) -> Iterator[Services]:
    """Open services on an empty ledger: a new SQLite file or a new PostgreSQL schema."""
    if backend == "sqlite":
        configuration = Settings(database_url=f"sqlite:///{folder}/{uuid.uuid4().hex}.sqlite3")
    else:
        schema = f"test_{uuid.uuid4().hex[:12]}"
        separator = "&" if "?" in postgres_url() else "?"
        configuration = Settings(database_url=f"{postgres_url()}{separator}schema={schema}")
    services = Services(configuration, create_tables=True)
    try:
        yield services
    finally:
        services.close()
        if backend == "postgresql":
            drop_schema(configuration)


def _fail(self, event, cursor, position):
    raise RuntimeError("injected failure")


def with_failing(name: str) -> list[Projection]:
    """Return every registered read model, the one named `name` failing on every event."""
    return [
        type(f"Failing{type(projection).__name__}", (type(projection),), {"apply": _fail})()
        if projection.name == name else projection
        for projection in all_projections()
    ]
