"""Dropping the tables and position of a read model removed from the registry."""

from __future__ import annotations

import pytest
from eventsourcing.domain import DomainEvent

from api.cli import main
from domain.errors import InvalidRequestError, NotFoundError
from projections.database import Cursor
from projections.projection import Projection
from projections.projector import POSITIONS_TABLE, Projector
from projections.rebuild import COPY_PREFIX, COPY_SUFFIX
from projections.registry import all_projections
from projections.retirement import drop_retired

WIDGETS = "widgets_v1_widgets"
WIDGET_PARTS = "widgets_v1_parts"


class Widgets(Projection):
    """A read model that counts events, registered only while a test fills it."""

    name = "widgets_v1"
    create_statements = (
        f"CREATE TABLE IF NOT EXISTS {WIDGETS} (position BIGINT PRIMARY KEY)",
        f"CREATE TABLE IF NOT EXISTS {WIDGET_PARTS} (position BIGINT PRIMARY KEY)",
    )

    def apply(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        cursor.execute(f"INSERT INTO {WIDGETS} (position) VALUES (%s)", (position,))


def table_names(services) -> set[str]:
    with services.database.transaction() as cursor:
        return services.database.table_names(cursor)


def position_names(services) -> set[str]:
    with services.database.transaction() as cursor:
        rows = cursor.execute(f"SELECT name FROM {POSITIONS_TABLE}").fetchall()
    return {row["name"] for row in rows}


@pytest.fixture
def retired(services, world):
    """Fill widgets_v1 and leave a rebuild copy of it, as an earlier release would have."""
    projector = Projector(services.ledger, services.database, [Widgets()])
    projector.create_tables()
    projector.catch_up()
    with services.database.transaction(write=True) as cursor:
        cursor.execute(f"CREATE TABLE {COPY_PREFIX}{WIDGETS} (position BIGINT PRIMARY KEY)")
        cursor.execute(
            f"INSERT INTO {POSITIONS_TABLE} (name, position, updated_at) VALUES (%s, 0, %s)",
            ("widgets_v1" + COPY_SUFFIX, "2024-01-01T00:00:00+00:00"),
        )
    return services


def test_drop_removes_tables_and_positions(retired):
    registered = all_projections()
    live_tables = {table for projection in registered for table in projection.tables}

    dropped = drop_retired(retired.database, registered, "widgets_v1")

    assert dropped == sorted([WIDGET_PARTS, WIDGETS, COPY_PREFIX + WIDGETS])
    assert not {WIDGETS, WIDGET_PARTS, COPY_PREFIX + WIDGETS} & table_names(retired)
    assert live_tables <= table_names(retired)
    assert position_names(retired) == {projection.name for projection in registered}


def test_drop_rejects_registered_models(services):
    registered = all_projections()

    with pytest.raises(InvalidRequestError, match="is registered"):
        drop_retired(services.database, registered, "releases_v1")

    assert {"releases_v1_releases", "releases_v1_projects"} <= table_names(services)


@pytest.mark.parametrize("name", ["releases", "Releases_v1", "releases_v1; DROP", "_v1"])
def test_drop_rejects_invalid_names(services, name):
    with pytest.raises(InvalidRequestError, match="Invalid read model name"):
        drop_retired(services.database, all_projections(), name)


def test_drop_of_unknown_model_not_found(services):
    with pytest.raises(NotFoundError, match="no tables and no position"):
        drop_retired(services.database, all_projections(), "gadgets_v3")


def test_drop_command_prints_tables(retired, settings, monkeypatch, capsys):
    monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("LEDGER_BLOB_DIR", settings.blob_dir)

    code = main(["projections", "drop", "widgets_v1"])
    again = main(["projections", "drop", "widgets_v1"])

    output = capsys.readouterr()
    assert code == 0
    assert output.out == (
        "Dropped read model widgets_v1 and its tables:"
        f" {COPY_PREFIX}{WIDGETS}, {WIDGET_PARTS}, {WIDGETS}.\n"
    )
    assert again == 1
    assert "Read model 'widgets_v1' has no tables and no position here." in output.err
