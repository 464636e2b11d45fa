"""Wiring: the ledger application, the read-model database, the projector and the blob store."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg

from api.blobs import BlobStore, LocalBlobStore
from api.config import Settings
from api.metrics import MeteredReleaseLedger
from domain.application import ReleaseLedger
from projections.activity import ActivityProjection, ActivityQueries
from projections.audit import AuditProjection, AuditQueries
from projections.commits import CommitQueries, CommitsProjection
from projections.database import Cursor, Database
from projections.delivery import DeliveryProjection, DeliveryQueries
from projections.directory import CachedDirectory, DirectoryProjection, DirectoryQueries
from projections.files import FileQueries, FilesProjection
from projections.issues import IssueQueries, IssuesProjection
from projections.postgres import PostgresDatabase, advisory_lock_key
from projections.projection import Projection, RecentCache
from projections.projector import CatchUpTimeoutError, Check, Projector, is_unavailable
from projections.registry import all_projections
from projections.releases import ReleaseQueries, ReleasesProjection
from projections.runner_locks import active_runners
from projections.sqlite import SQLiteDatabase
from projections.timeline import ReleasesAt, TimelineProjection

# The read models each group of queries reads. With an instant, `releases`
# reads the timeline instead. New-issue counts come from the issues model.
QUERY_MODELS: dict[str, tuple[str, ...]] = {
    "directory": (DirectoryProjection.name,),
    "releases": (ReleasesProjection.name, IssuesProjection.name),
    "timeline": (TimelineProjection.name,),
    "audit": (AuditProjection.name,),
    "activity": (ActivityProjection.name,),
    "issues": (IssuesProjection.name,),
    "files": (FilesProjection.name,),
    "commits": (CommitsProjection.name,),
    "delivery": (DeliveryProjection.name,),
}
# The read models that requests reading or writing releases catch up
# themselves before they respond. Runners apply them in batches of their own.
RELEASE_MODELS: tuple[str, ...] = (*QUERY_MODELS["directory"], *QUERY_MODELS["releases"])
# Directory results kept per process for authentication, valid while the
# directory's version stays the same. The cache starts over when full.
DIRECTORY_CACHE_SIZE = 4096
# The advisory lock that processes creating or upgrading tables take in turn.
SCHEMA_LOCK_NAME = "schema-changes"


class UndeclaredQueriesError(RuntimeError):
    """Raised when code queries read models that its `Services.read` call did not name."""


class ReadModelFailedError(RuntimeError):
    """Raised when a read model that a read needs fails on an event while catching up.

    The failure is recorded against the read model, which stays behind
    until an operator fixes the cause. Reads of other read models go on.
    """


@dataclass
class Queries:
    """Read-model queries sharing one transaction, so they see one state.

    With `at` set, release queries return the state at that instant.
    `groups` names the groups of queries that were caught up with the
    ledger; None means all of them.
    """

    cursor: Cursor
    at: datetime | None = None
    groups: frozenset[str] | None = None
    # The directory's version in this transaction's state when it is known,
    # and the cache of results it validates.
    directory_version: object = None
    directory_cache: RecentCache[object] | None = None

    @property
    def directory(self) -> DirectoryQueries:
        self._check("directory")
        if self.directory_version is not None and self.directory_cache is not None:
            return CachedDirectory(self.cursor, self.directory_cache, self.directory_version)
        return DirectoryQueries(self.cursor)

    @property
    def releases(self) -> ReleaseQueries | ReleasesAt:
        if self.at is not None:
            self._check("timeline")
            return ReleasesAt(self.cursor, self.at)
        self._check("releases")
        return ReleaseQueries(self.cursor)

    @property
    def audit(self) -> AuditQueries:
        self._check("audit")
        return AuditQueries(self.cursor)

    @property
    def activity(self) -> ActivityQueries:
        self._check("activity")
        return ActivityQueries(self.cursor)

    @property
    def issues(self) -> IssueQueries:
        self._check("issues")
        return IssueQueries(self.cursor)

    @property
    def files(self) -> FileQueries:
        self._check("files")
        return FileQueries(self.cursor)

    @property
    def commits(self) -> CommitQueries:
        self._check("commits")
        return CommitQueries(self.cursor)

    @property
    def delivery(self) -> DeliveryQueries:
        self._check("delivery")
        return DeliveryQueries(self.cursor)

    def _check(self, group: str) -> None:
        if self.groups is not None and group not in self.groups:
            raise UndeclaredQueriesError(
                f"The {group} read models were not caught up for this read."
                f" Name {group!r} in Services.read()."
            )


class Services:
    """The ledger for commands, the read models for queries, the blob store for file contents.

    Without `create_tables` the ledger is opened on first use, and again on
    the next use if that failed. A process started while PostgreSQL is down
    therefore runs, responds with 503 meanwhile, and recovers when it returns.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        create_tables: bool = False,
        projections: Sequence[Projection] | None = None,
    ) -> None:
        """Connect to the ledger and the read models, by default every registered one."""
        self.settings = settings
        self._create_tables = create_tables
        self._ledger: ReleaseLedger | None = None
        self._projector: Projector | None = None
        self._opening = threading.Lock()
        self.blobs: BlobStore = LocalBlobStore(Path(settings.blob_dir))
        self._projections = projections
        self.directory_cache: RecentCache[object] = RecentCache(DIRECTORY_CACHE_SIZE)
        if not create_tables:
            self.database = _open_database(settings)
            return
        with _schema_lock(settings):
            if settings.backend == "postgresql":
                _create_schema(settings)
            self.database = _open_database(settings)
            try:
                self.projector.create_tables()
            except BaseException:
                self.close()
                raise

    @property
    def ledger(self) -> ReleaseLedger:
        if self._ledger is None:
            with self._opening:
                if self._ledger is None:
                    env = self.settings.eventsourcing_env(create_table=self._create_tables)
                    self._ledger = MeteredReleaseLedger(env=env)
        return self._ledger

    @property
    def projector(self) -> Projector:
        if self._projector is None:
            projections = self._projections
            if projections is None:
                projections = all_projections()
            self._projector = Projector(self.ledger, self.database, projections)
        return self._projector

    @property
    def ledger_is_open(self) -> bool:
        return self._ledger is not None

    @contextmanager
    def read(self, *groups: str) -> Iterator[Queries]:
        """Catch read models up with the ledger, then query them in one transaction.

        Every event recorded before the call is visible to the queries, so a
        client always reads its own acknowledged writes, whichever process
        served them. `groups` (keys of QUERY_MODELS) limits the catch-up to
        the read models those queries use, and other queries then raise
        UndeclaredQueriesError; without `groups` every read model is caught
        up. When the read models are current, which is the common case with
        a projector process running, the check and the queries share one
        transaction. Raises CatchUpTimeoutError when the read models cannot
        reach that point within `settings.read_timeout`, rather than query
        stale read models.
        """
        deadline = time.monotonic() + self.settings.read_timeout
        projector = self.projector
        models = self._models_of(groups)
        declared = frozenset(groups) if groups else None
        with self.database.transaction() as cursor:
            check = projector.check(cursor, models)
            if check.current:
                yield self._queries(cursor, declared, check)
                return
        # Read models behind by ignored events only are left to the runners.
        behind = set(check.behind)
        try:
            projector.catch_up(target=check.head, deadline=deadline,
                               projections=[model for model in models if model.name in behind],
                               positions=check.positions)
        except (CatchUpTimeoutError, psycopg.errors.UndefinedTable):
            raise
        except Exception as error:
            if is_unavailable(self.database, error):
                raise
            # The notes name the read model and the position. The error's
            # own text may quote another organization's data, so it goes
            # to the log only.
            notes = " ".join(getattr(error, "__notes__", ()))
            raise ReadModelFailedError(notes or "A read model failed.") from error
        with self.database.transaction() as cursor:
            # Checking again shows whether this state has the directory
            # version just read, which lets authentication use the cache.
            yield self._queries(cursor, declared, projector.check(cursor, models))

    def _queries(self, cursor: Cursor, groups: frozenset[str] | None, check: Check) -> Queries:
        """Return the queries of a transaction; the directory version counts only if current."""
        version = check.versions.get(DirectoryProjection.name) if check.current else None
        return Queries(cursor, groups=groups, directory_version=version,
                       directory_cache=self.directory_cache)

    def _models_of(self, groups: Sequence[str]) -> list[Projection]:
        """Return the registered read models that `groups` read; all of them without groups."""
        projections = self.projector.projections
        if not groups:
            return projections
        unknown = set(groups) - QUERY_MODELS.keys()
        if unknown:
            raise ValueError(f"Unknown query groups {sorted(unknown)}; see QUERY_MODELS.")
        names = {name for group in groups for name in QUERY_MODELS[group]}
        return [projection for projection in projections if projection.name in names]

    def active_runners(self) -> set[str] | None:
        """Return the read models that a projector process runs; None on SQLite."""
        if not isinstance(self.database, PostgresDatabase):
            return None
        names = [projection.name for projection in self.projector.projections]
        with self.database.transaction() as cursor:
            return active_runners(cursor, self.database.schema, names)

    def close(self) -> None:
        self.database.close()
        if self._ledger is not None:
            self._ledger.close()


def _open_database(settings: Settings) -> Database:
    if settings.backend == "sqlite":
        return SQLiteDatabase(settings.sqlite_path)
    postgres = settings.postgres
    return PostgresDatabase(
        postgres.conninfo,
        postgres.schema,
        min_size=settings.pool_size,
        max_size=settings.pool_max,
        timeout=settings.db_connect_timeout,
        statement_timeout=settings.db_statement_timeout,
    )


@contextmanager
def _schema_lock(settings: Settings) -> Iterator[None]:
    """Let one process at a time create or upgrade the tables of a PostgreSQL schema.

    Processes that start together, such as `release-ledger migrate` on
    every host of a deploy, would otherwise run CREATE ... IF NOT EXISTS
    at the same moment, and all but one can fail on the catalog's unique
    keys. The lock is a session advisory lock on a connection of its own,
    so the server releases it should the process die. SQLite serializes
    schema changes with its own file lock.
    """
    if settings.backend != "postgresql":
        yield
        return
    postgres = settings.postgres
    key = advisory_lock_key(postgres.schema, SCHEMA_LOCK_NAME)
    with psycopg.connect(postgres.conninfo, autocommit=True) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (key,))
        yield


def _create_schema(settings: Settings) -> None:
    postgres = settings.postgres
    with psycopg.connect(postgres.conninfo, autocommit=True) as connection:
        connection.execute(
            psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                psycopg.sql.Identifier(postgres.schema)
            )
        )
