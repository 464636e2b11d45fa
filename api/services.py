"""Wiring: the ledger application, the read-model database and the projector."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from api.config import Settings
from domain.application import ReleaseLedger
from projections.activity import ActivityQueries
from projections.database import Cursor, Database
from projections.delivery import DeliveryQueries
from projections.directory import DirectoryQueries
from projections.postgres import PostgresDatabase
from projections.projection import Projection
from projections.projector import Projector
from projections.registry import all_projections
from projections.releases import ReleaseQueries
from projections.sqlite import SQLiteDatabase


@dataclass
class Queries:
    """Read-model queries sharing one transaction, so they see one state."""

    cursor: Cursor

    @property
    def directory(self) -> DirectoryQueries:
        return DirectoryQueries(self.cursor)

    @property
    def releases(self) -> ReleaseQueries:
        return ReleaseQueries(self.cursor)

    @property
    def activity(self) -> ActivityQueries:
        return ActivityQueries(self.cursor)

    @property
    def delivery(self) -> DeliveryQueries:
        return DeliveryQueries(self.cursor)


class Services:
    """The ledger for commands and the read models for queries."""

    def __init__(
        self,
        settings: Settings,
        *,
        create_tables: bool = False,
        projections: Sequence[Projection] | None = None,
    ) -> None:
        """Connect to the ledger and the read models, by default every registered one."""
        self.settings = settings
        if create_tables and settings.backend == "postgresql":
            _create_schema(settings)
        self.ledger = ReleaseLedger(env=settings.eventsourcing_env(create_table=create_tables))
        self.database = _open_database(settings)
        self.projector = Projector(
            self.ledger, self.database, all_projections() if projections is None else projections
        )
        if create_tables:
            self.projector.create_tables()

    @contextmanager
    def read(self) -> Iterator[Queries]:
        """Catch the read models up with the ledger, then query them in one transaction.

        Every event recorded before the call is visible to the queries, so a
        client always reads its own acknowledged writes, whichever process
        served them.
        """
        self.projector.catch_up()
        with self.database.transaction() as cursor:
            yield Queries(cursor)

    def close(self) -> None:
        self.database.close()
        self.ledger.close()


def _open_database(settings: Settings) -> Database:
    if settings.backend == "sqlite":
        return SQLiteDatabase(settings.sqlite_path)
    postgres = settings.postgres
    return PostgresDatabase(
        postgres.conninfo,
        postgres.schema,
        min_size=settings.pool_size,
        max_size=settings.pool_max,
    )


def _create_schema(settings: Settings) -> None:
    postgres = settings.postgres
    with psycopg.connect(postgres.conninfo, autocommit=True) as connection:
        connection.execute(
            psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                psycopg.sql.Identifier(postgres.schema)
            )
        )
