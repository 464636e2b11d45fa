"""What the figures share: the scale, the database, the data sets, servers and loads.

A `Bench` owns a PostgreSQL database of its own, `ledger_bench_<random>`,
and a temporary folder for SQLite files and server logs; it drops and
removes both when it closes. Data sets, servers and measurements are made
on first use and kept, so figures measured by one load share it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from api.config import Settings
from api.services import Services
from bench import datasets
from bench.servers import Server, gunicorn
from domain.application import ReleaseLedger
from projections.registry import all_projections

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MODELS = tuple(projection.name for projection in all_projections())
LOADERS = 2
LOAD_TIMEOUT_SECONDS = 600
# Hosts that name a PostgreSQL server on this machine. None means a Unix socket.
LOCAL_HOSTS = frozenset({None, "", "127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class Scale:
    """Sizes and bounds of one run of the suite.

    `tiers` maps the small, medium and large ledgers to their events;
    `commit_counts` maps the same names to the commits of one PUT, each
    ten times the one below.
    """

    name: str
    tiers: dict[str, int]
    runs: int
    http_seconds: float
    latency_requests: int
    commit_counts: dict[str, int]
    deep_offset: int
    appenders: int = 4
    pipelines: int = 16


FULL = Scale(
    name="full",
    tiers={"small": 10_000, "medium": 100_000, "large": 1_000_000},
    runs=3,
    http_seconds=8.0,
    latency_requests=1000,
    commit_counts={"small": 1_000, "medium": 10_000, "large": 100_000},
    deep_offset=10_000,
)
QUICK = Scale(
    name="quick",
    tiers={"small": 1_000, "medium": 5_000, "large": 20_000},
    runs=3,
    http_seconds=2.0,
    latency_requests=200,
    commit_counts={"small": 100, "medium": 1_000, "large": 10_000},
    deep_offset=500,
)


@dataclass
class Dataset:
    """A bulk-loaded ledger and the read models still waiting for their first replay."""

    name: str
    settings: Settings
    loaded: datasets.Loaded
    unprojected: set[str] = field(default_factory=lambda: set(MODELS))

    @property
    def backend(self) -> str:
        return self.settings.backend


class Bench:
    """The resources of one run of the suite; use it as a context manager."""

    def __init__(self, scale: Scale, admin_url: str = DEFAULT_ADMIN_URL) -> None:
        self.scale = scale
        self.admin_url = admin_url
        self.database = f"ledger_bench_{uuid.uuid4().hex[:8]}"
        self.workdir = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
        self.datasets: dict[tuple[str, str], Dataset] = {}
        self.measured: dict[tuple[Any, ...], Any] = {}
        self.notes: list[str] = []
        self._server_key: tuple[Any, ...] | None = None
        self._server: Server | None = None
        self._server_stack = ExitStack()

    def __enter__(self) -> Bench:
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server_stack.close()
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self.database)
                )
            )
        shutil.rmtree(self.workdir, ignore_errors=True)

    # Databases.

    def postgres(self, schema: str) -> Settings:
        """Return settings for a fresh schema of the bench database."""
        parts = urlsplit(self.admin_url)
        url = urlunsplit((parts.scheme, parts.netloc, "/" + self.database, f"schema={schema}", ""))
        settings = Settings(database_url=url)
        self.execute(settings, sql.SQL("DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}")
                     .format(sql.Identifier(schema)))
        return settings

    def sqlite(self, name: str) -> Settings:
        path = self.workdir / f"{name}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return Settings(database_url=f"sqlite:///{path}")

    def scratch(self, backend: str, name: str) -> Settings:
        return self.postgres(name) if backend == "postgresql" else self.sqlite(name)

    def drop(self, settings: Settings) -> None:
        if settings.backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{settings.sqlite_path}{suffix}").unlink(missing_ok=True)
            return
        self.execute(settings, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
                     .format(sql.Identifier(settings.postgres.schema)))

    @staticmethod
    def execute(settings: Settings, statement: sql.Composable | str, params: tuple = ()) -> list:
        postgres = settings.postgres
        with psycopg.connect(postgres.conninfo, autocommit=True,
                             options=f"-c search_path={postgres.schema}") as connection:
            cursor = connection.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    # Data sets.

    def dataset(self, tier: str, backend: str = "postgresql") -> Dataset:
        """Return the ledger of the tier's size on `backend`, loading it on first use."""
        key = (tier, backend)
        if key not in self.datasets:
            self.datasets[key] = self._load(f"ledger_{tier}", self.scale.tiers[tier], backend,
                                            long_history=tier == "large")
        return self.datasets[key]

    def write_dataset(self) -> Dataset:
        """Return a PostgreSQL ledger holding only the directory, for write loads."""
        key = ("writes", "postgresql")
        if key not in self.datasets:
            self.datasets[key] = self._load("ledger_writes", 0, "postgresql")
            self.datasets[key].unprojected.clear()
        return self.datasets[key]

    def _load(self, name: str, events: int, backend: str, long_history: bool = False
              ) -> Dataset:
        settings = self.scratch(backend, name)
        services = Services(settings, create_tables=True)
        try:
            started = time.perf_counter()
            directory = datasets.load_directory(services.ledger)
            releases = datasets.releases_for(events) if events else 0
            load_in_parallel(settings, directory, releases)
            history = None
            if long_history:
                history = datasets.load_long_history(services.ledger, directory)
            total = services.ledger.recorder.max_notification_id() or 0
            if not events:
                services.projector.catch_up()
        finally:
            services.close()
        loaded = datasets.Loaded(directory, releases, total, time.perf_counter() - started,
                                 history)
        self.notes.append(
            f"{name} on {backend}: {total:,} events, {releases:,} releases,"
            f" loaded in {loaded.seconds:.1f} s ({total / loaded.seconds:,.0f} events/s)"
        )
        return Dataset(name, settings, loaded)

    def project(self, dataset: Dataset) -> None:
        """Bring every read model of the data set up to date."""
        if not dataset.unprojected:
            return
        services = Services(dataset.settings)
        try:
            services.projector.catch_up()
        finally:
            services.close()
        dataset.unprojected.clear()

    # Servers and loads.

    def server(self, key: tuple[Any, ...], app: str, env: dict[str, str], workers: int = 2
               ) -> Server:
        """Return the running server for `key`, stopping any other one first."""
        if self._server_key != key:
            self._server_stack.close()
            self._server = self._server_stack.enter_context(
                gunicorn(app, env, self.workdir, workers)
            )
            self._server_key = key
        assert self._server is not None
        return self._server

    def service(self, dataset: Dataset, workers: int = 2, **env: str) -> Server:
        self.project(dataset)
        environment = {"LEDGER_DATABASE_URL": dataset.settings.database_url, **env}
        key = ("service", dataset.name, workers, tuple(sorted(env.items())))
        return self.server(key, "api.app:create_app()", environment, workers)

    def load(self, plan: dict[str, Any]) -> dict[str, Any]:
        """Run the load generator in its own process and return its result.

        The result also carries `load_cpu_seconds`, the CPU time the load
        generator used.
        """
        before = os.times()
        result = run_module("bench.load", plan, timeout=plan["max_seconds"] + 120)
        after = os.times()
        result["load_cpu_seconds"] = (after.children_user + after.children_system
                                      - before.children_user - before.children_system)
        return result

    def backend_pids(self) -> list[int] | None:
        """Return the pids of PostgreSQL's processes connected to the bench database.

        None unless the admin URL names this machine (127.0.0.1, localhost
        or a Unix socket), because another server's pids name processes
        this machine cannot see.
        """
        if urlsplit(self.admin_url).hostname not in LOCAL_HOSTS:
            return None
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database,)
            ).fetchall()
        return [pid for (pid,) in rows]

    def memo(self, key: tuple[Any, ...], measure: Callable[[], Any]) -> Any:
        """Return the measurement stored under `key`, measuring it on first use."""
        if key not in self.measured:
            self.measured[key] = measure()
        return self.measured[key]


def run_module(module: str, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run `python -m module` with `job` as JSON on stdin; return its JSON output."""
    completed = subprocess.run(
        [sys.executable, "-m", module], input=json.dumps(job), capture_output=True, text=True,
        timeout=timeout, cwd=Path(__file__).resolve().parent.parent, check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{module} failed with {completed.returncode}:\n{completed.stderr}")
    return json.loads(completed.stdout)


@contextmanager
def started_modules(module: str, jobs: list[dict[str, Any]]) -> Iterator[list[subprocess.Popen]]:
    """Start one `python -m module` process per job, each reading its job on stdin."""
    processes = []
    try:
        for job in jobs:
            with tempfile.TemporaryFile("w+") as job_file:
                json.dump(job, job_file)
                job_file.seek(0)
                process = subprocess.Popen(
                    [sys.executable, "-m", module], stdin=job_file, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent,
                )
            processes.append(process)
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def collect(processes: list[subprocess.Popen], timeout: float) -> list[dict[str, Any]]:
    results = []
    for process in processes:
        output, errors = process.communicate(timeout=timeout)
        if process.returncode != 0:
            raise RuntimeError(f"A worker failed with {process.returncode}:\n{errors}")
        results.append(json.loads(output))
    return results


def load_in_parallel(settings: Settings, directory: datasets.Directory, releases: int) -> None:
    """Save the releases from LOADERS processes, each a contiguous range of indexes."""
    if not releases:
        return
    step = -(-releases // LOADERS)
    ranges = [(start, min(start + step, releases)) for start in range(0, releases, step)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(len(ranges)) as pool:
        results = [
            pool.apply_async(_load_range, (settings.database_url, directory, start, stop))
            for start, stop in ranges
        ]
        for result in results:
            result.get(timeout=LOAD_TIMEOUT_SECONDS)


def _load_range(database_url: str, directory: datasets.Directory, start: int, stop: int) -> None:
    settings = Settings(database_url=database_url)
    ledger = ReleaseLedger(env=settings.eventsourcing_env(create_table=False))
    try:
        datasets.load_releases(ledger, directory, start, stop)
    finally:
        ledger.close()


def environment_summary() -> dict[str, str]:
    """Describe the machine: cores, memory, CPU model and load."""
    memory = ""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "nproc": str(os.cpu_count()),
        "memory": memory,
        "cpu_model": model,
        "load_average": " ".join(f"{value:.2f}" for value in os.getloadavg()),
        "python": sys.version.split()[0],
    }
