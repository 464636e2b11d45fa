"""Every figure of the suite, registered in one table, FIGURES, in the order they run.

A figure is a small function that measures one run and returns a Sample:
its value and, where a target compares with one, the baseline measured
back to back with it. The runner calls it once per run and reports the
median with the minimum and maximum. Figures that share a load (p50 and
p99 of one endpoint, say) read it from `Bench.memo`, so it runs once.

A figure that needs code the service does not have yet may be registered
with `placeholder` and is then reported as not measured.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from psycopg.conninfo import make_conninfo

from bench import appends, baseline, datasets
from bench.servers import cpu_growth, cpu_seconds, memory_kib, projector, reset_peak
from bench.suite import MODELS, Bench, Dataset, collect, run_module, started_modules

BACKENDS = ("postgresql", "sqlite")
TIERS = ("small", "medium", "large")
# The largest ledger is replayed once per read model and backend: three
# runs of every replay at 1,000,000 events take longer than the whole
# suite may on a 2-core machine. Rates with three runs use the medium ledger.
LARGE_REPLAY_RUNS = 1
# Peak memory that "does not grow" may still differ by allocator noise.
NO_GROWTH = 1.25
# Each commit count of a scale is ten times the one below, so a PUT whose
# cost grows at most linearly costs at most ten times the one below.
COMMIT_STEP = 10.0
ORG_RELEASES = "/api/0/organizations/acme/releases/"
PER_PAGE = 25
WARMUP_REQUESTS = 50
AUDIT_FILTER = "event=release.created"
# Writes a second while the projection lag is measured; each is one append.
LAG_WRITES_PER_SECOND = 50


@dataclass(frozen=True)
class Sample:
    value: float
    baseline: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline


@dataclass(frozen=True)
class Target:
    """A limit on the ratio (value / baseline) or on the value itself."""

    compare: str
    limit: float
    of: str = "ratio"

    def met(self, sample: Sample) -> bool | None:
        measured = sample.ratio if self.of == "ratio" else sample.value
        if measured is None:
            return None
        return measured >= self.limit if self.compare == ">=" else measured <= self.limit

    def __str__(self) -> str:
        return f"{self.of} {self.compare} {self.limit:g}"


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    description: str
    measure: Callable[[Bench, int], Sample] | None
    target: Target | None = None
    baseline: str = ""
    runs: int | None = None
    needs: str | None = None


FIGURES: list[Figure] = []


def figure(name: str, unit: str, description: str, *, target: Target | None = None,
           baseline: str = "", runs: int | None = None
           ) -> Callable[[Callable[[Bench, int], Sample]], Callable[[Bench, int], Sample]]:
    """Register the decorated function as the measurement of one figure."""

    def register(measure: Callable[[Bench, int], Sample]) -> Callable[[Bench, int], Sample]:
        FIGURES.append(Figure(name, unit, description, measure, target, baseline, runs))
        return measure

    return register


def placeholder(name: str, unit: str, description: str, target: Target, needs: str) -> None:
    FIGURES.append(Figure(name, unit, description, None, target, needs=needs))


def at_least(limit: float) -> Target:
    return Target(">=", limit)


def at_most(limit: float, of: str = "ratio") -> Target:
    return Target("<=", limit, of)


# Writes.


@figure("release_creates_http", "pairs/s",
        "POST create + PUT finalize pairs per second from concurrent pipelines, gunicorn on"
        " PostgreSQL, on a ledger holding only the directory, with a projector process running",
        target=at_least(0.5),
        baseline="minimal Falcon app, one single-row INSERT transaction per request,"
                 " same gunicorn settings and load")
def release_creates_http(bench: Bench, run: int) -> Sample:
    service = bench.memo(("creates", "service", run), lambda: creates(bench, run, "service"))
    base = bench.memo(("creates", "baseline", run), lambda: creates(bench, run, "baseline"))
    return Sample(service["per_second"], base["per_second"])


@figure("ledger_appends", "appends/s",
        "ReleaseLedger commands per second without HTTP (create, then finalize), each one"
        " append, from concurrent processes",
        target=at_least(0.7),
        baseline="transactions of LOCK TABLE IN EXCLUSIVE MODE + NOTIFY + one-row INSERT,"
                 " pipelined as the event store sends them, from as many processes")
def ledger_appends(bench: Bench, run: int) -> Sample:
    return Sample(append_rate(bench, run, "ledger"), append_rate(bench, run, "insert"))


# Replay of each read model from position zero.


def replay_figure(model: str, backend: str, tier: str) -> None:
    runs = LARGE_REPLAY_RUNS if tier == "large" else None

    @figure(f"replay_{model}_{backend}_{tier}", "events/s",
            f"replay of {model} from position zero into fresh tables, {tier} ledger, {backend}",
            target=at_least(0.25), runs=runs,
            baseline="reading and decoding the same notifications without applying them")
    def measure(bench: Bench, run: int) -> Sample:
        result = replay(bench, backend, tier, model, run)
        return Sample(result["per_second"], decode(bench, backend, tier, run)["per_second"])


def replay_time_figure(backend: str, tier: str) -> None:
    runs = LARGE_REPLAY_RUNS if tier == "large" else None

    @figure(f"replay_seconds_{backend}_{tier}", "s",
            f"replay of all read models, one after the other, {tier} ledger, {backend}",
            runs=runs)
    def measure(bench: Bench, run: int) -> Sample:
        return Sample(sum(replay(bench, backend, tier, model, run)["seconds"]
                          for model in MODELS))


def replay_memory_figure(backend: str) -> None:
    @figure(f"replay_peak_memory_{backend}", "MiB",
            f"peak resident memory of a replay process, largest over the read models, large"
            f" ledger, {backend}",
            target=at_most(NO_GROWTH), runs=LARGE_REPLAY_RUNS,
            baseline="the same on the medium ledger (ten times fewer events)")
    def measure(bench: Bench, run: int) -> Sample:
        large = max(replay(bench, backend, "large", model, run)["peak_mib"] for model in MODELS)
        medium = max(replay(bench, backend, "medium", model, run)["peak_mib"] for model in MODELS)
        return Sample(large, medium)


for _backend in BACKENDS:
    for _tier in ("medium", "large"):
        for _model in MODELS:
            replay_figure(_model, _backend, _tier)
    for _tier in TIERS:
        replay_time_figure(_backend, _tier)
    replay_memory_figure(_backend)


# Reads over HTTP.


def latency_figure(name: str, endpoint: str, tier: str, percentile: float,
                   target: Target | None, description: str) -> None:
    @figure(name, "ms", description, target=target,
            baseline=f"p{percentile:g} of GET /healthz of the same server and load")
    def measure(bench: Bench, run: int) -> Sample:
        result = read_latency(bench, tier, run)
        return Sample(quantile(result[endpoint], percentile),
                      quantile(result["healthz"], percentile))


for _percentile, _target in ((50, None), (99, at_most(2.0))):
    latency_figure(f"release_list_first_page_p{_percentile}", "list_first", "large", _percentile,
                   _target, f"GET the first page of releases, per_page={PER_PAGE}, caller in"
                   " 10 of 50 teams, large ledger (100,000 releases in 500 projects)")
    latency_figure(f"release_list_deep_cursor_p{_percentile}", "list_deep", "large", _percentile,
                   _target, "the same list from a cursor deep in the caller's releases")
for _percentile, _target in ((50, None), (99, at_most(3.0))):
    latency_figure(f"release_details_p{_percentile}", "details", "large", _percentile, _target,
                   "GET one release the caller may see, large ledger")
for _tier in ("small", "medium"):
    latency_figure(f"release_list_first_page_p99_{_tier}", "list_first", _tier, 99, None,
                   f"the first page of releases on the {_tier} ledger, to show how it grows")


@figure("web_worker_peak_memory", "MiB",
        "peak resident memory of a gunicorn worker during the read loads, large ledger",
        target=at_most(NO_GROWTH), baseline="the same on the medium ledger")
def web_worker_peak_memory(bench: Bench, run: int) -> Sample:
    return Sample(read_latency(bench, "large", run)["peak_mib"],
                  read_latency(bench, "medium", run)["peak_mib"])


for _percentile, _target in ((50, None), (99, at_most(3.0))):
    latency_figure(f"release_history_p{_percentile}", "history", "large", _percentile, _target,
                   f"GET the history of a release with {datasets.HISTORY_EVENTS:,} events"
                   " (first page), large ledger")
    latency_figure(f"audit_log_filtered_page_p{_percentile}", "audit_filtered", "large",
                   _percentile, _target,
                   f"GET one page of the audit log filtered by {AUDIT_FILTER} and one"
                   " project's id, organization token with org:read, large ledger")


def cpu_figure(name: str, endpoint: str, part: str, processes: str) -> None:
    @figure(f"{name}_cpu_{part}", "ms",
            f"CPU time {processes} used per request during the {name} loads, large ledger",
            baseline="the same during the GET /healthz load")
    def measure(bench: Bench, run: int) -> Sample:
        cpu = read_latency(bench, "large", run)["cpu_ms"]
        if cpu[endpoint][part] is None:
            raise RuntimeError("BENCH_DATABASE_URL names no local host (127.0.0.1, localhost or a"
                               " Unix socket), so PostgreSQL's CPU time is not read.")
        return Sample(cpu[endpoint][part], cpu["healthz"][part])


# Where the time of a request goes. Client and server share the cores, so
# under load a request's latency follows the CPU time it costs.
for _name, _endpoint in (("release_list_first_page", "list_first"), ("release_details", "details"),
                         ("release_history", "history"),
                         ("audit_log_filtered_page", "audit_filtered")):
    for _part, _processes in (("web", "the gunicorn workers"),
                              ("database", "PostgreSQL's processes of the bench database"),
                              ("load", "the load generator")):
        cpu_figure(_name, _endpoint, _part, _processes)


def lag_figure(percentile: float, target: Target | None) -> None:
    @figure(f"projection_lag_p{percentile:g}", "ms",
            "time from a write's commit until every read model shows it, one projector process"
            f" on PostgreSQL, {LAG_WRITES_PER_SECOND} ReleaseLedger writes per second",
            target=target)
    def measure(bench: Bench, run: int) -> Sample:
        return Sample(quantile(projection_lag(bench, run)["latencies_ms"], percentile))


for _percentile, _target in ((50, None), (99, at_most(100.0, of="value"))):
    lag_figure(_percentile, _target)


# One PUT with many commits.


def put_commits_figures(tier: str, smaller: str | None) -> None:
    target = at_most(COMMIT_STEP) if smaller else None
    growth = f"the same with the {smaller} count, {COMMIT_STEP:g} times fewer" if smaller else ""

    @figure(f"put_commits_seconds_{tier}", "s",
            f"one PUT setting a release's commits ({tier} count), until the response",
            target=target, baseline=growth)
    def seconds(bench: Bench, run: int) -> Sample:
        result = put_commits(bench, tier, run)
        base = put_commits(bench, smaller, run)["seconds"] if smaller else None
        return Sample(result["seconds"], base)

    @figure(f"put_commits_memory_{tier}", "MiB",
            f"growth of the worker's peak resident memory during that PUT ({tier} count)",
            target=target, baseline=growth)
    def memory(bench: Bench, run: int) -> Sample:
        result = put_commits(bench, tier, run)
        base = put_commits(bench, smaller, run)["memory_mib"] if smaller else None
        return Sample(result["memory_mib"], base)


for _tier, _smaller in (("small", None), ("medium", "small"), ("large", "medium")):
    put_commits_figures(_tier, _smaller)


# Measurements that figures share.


def creates(bench: Bench, run: int, app: str) -> dict[str, Any]:
    dataset = bench.write_dataset()
    server = bench.service(dataset) if app == "service" else baseline_server(bench)
    plan = {
        "port": server.port,
        "scenario": "pairs",
        "concurrency": bench.scale.pipelines,
        "max_requests": 1_000_000,
        "max_seconds": bench.scale.http_seconds,
        "warmup_seconds": 1.0,
        "token": dataset.loaded.directory.pipeline_token,
        "projects": list(dataset.loaded.directory.project_slugs),
        "version_prefix": f"creates-{run}-",
    }
    if app == "baseline":
        return checked(bench.load(plan), "release creates")
    # Production runs a projector process beside the web workers, and it
    # does its share of the work on the same cores while the load runs.
    env = {"LEDGER_DATABASE_URL": dataset.settings.database_url}
    with projector(env, bench.workdir):
        return checked(bench.load(plan), "release creates")


def baseline_server(bench: Bench) -> Any:
    settings = bench.memo(("baseline", "schema"), lambda: baseline_schema(bench))
    conninfo = make_conninfo(settings.postgres.conninfo,
                             options=f"-c search_path={settings.postgres.schema}")
    return bench.server(("baseline",), "bench.baseline:create_app()",
                        {"BENCH_BASELINE_CONNINFO": conninfo})


def baseline_schema(bench: Bench) -> Any:
    settings = bench.postgres("baseline_app")
    bench.execute(settings, f"SET search_path = baseline_app; {baseline.CREATE_TABLE}")
    return settings


def append_rate(bench: Bench, run: int, mode: str) -> float:
    def measure() -> float:
        if mode == "ledger":
            settings = bench.write_dataset().settings
        else:
            settings = bench.memo(("appends", "schema"), lambda: appends_schema(bench))
        directory = bench.write_dataset().loaded.directory
        start_at = time.time() + 3.0
        job = {
            "mode": mode,
            "url": settings.database_url,
            "org_id": str(directory.org_id),
            "project_ids": [str(project_id) for project_id in directory.project_ids],
            "version_prefix": f"appends-{run}-",
            "seconds": bench.scale.http_seconds,
            "max_appends": 1_000_000,
            "start_at": start_at,
        }
        with started_modules("bench.appends", [job] * bench.scale.appenders) as processes:
            results = collect(processes, timeout=bench.scale.http_seconds + 120)
        seconds = sum(result["seconds"] for result in results) / len(results)
        return sum(result["appends"] for result in results) / seconds

    return bench.memo(("appends", mode, run), measure)


def appends_schema(bench: Bench) -> Any:
    settings = bench.postgres("baseline_appends")
    bench.execute(settings, f"SET search_path = baseline_appends; {appends.CREATE_TABLE}")
    return settings


def replay(bench: Bench, backend: str, tier: str, model: str, run: int) -> dict[str, Any]:
    def measure() -> dict[str, Any]:
        dataset = bench.dataset(tier, backend)
        # A data set's own read-model tables are fresh until their first
        # replay, so that replay also makes the data set ready to serve.
        own = model in dataset.unprojected
        target = dataset.settings if own else bench.scratch(backend, "replay_scratch")
        job = {"ledger_url": dataset.settings.database_url,
               "target_url": target.database_url, "model": model}
        result = run_module("bench.replay", job, timeout=3600)
        if own:
            dataset.unprojected.discard(model)
        else:
            bench.drop(target)
        return result

    return bench.memo(("replay", backend, tier, model, run), measure)


def decode(bench: Bench, backend: str, tier: str, run: int) -> dict[str, Any]:
    def measure() -> dict[str, Any]:
        dataset = bench.dataset(tier, backend)
        return run_module("bench.replay", {"ledger_url": dataset.settings.database_url},
                          timeout=3600)

    return bench.memo(("decode", backend, tier, run), measure)


def read_latency(bench: Bench, tier: str, run: int) -> dict[str, Any]:
    def measure() -> dict[str, Any]:
        dataset = bench.dataset(tier)
        server = bench.service(dataset)
        directory = dataset.loaded.directory
        token = directory.reader_token
        endpoints = {
            "healthz": ["/healthz"],
            "list_first": [f"{ORG_RELEASES}?per_page={PER_PAGE}"],
        }
        tokens = {}
        if tier == "large":
            cursor = deep_cursor(bench, dataset)
            endpoints["list_deep"] = [f"{ORG_RELEASES}?per_page={PER_PAGE}&cursor={cursor}"]
            endpoints["details"] = [f"{ORG_RELEASES}{quote(version, safe='')}/"
                                    for version in visible_versions(dataset, 300)]
            history = dataset.loaded.history_version
            assert history is not None
            endpoints["history"] = [f"{ORG_RELEASES}{quote(history, safe='')}/history/"]

            project = project_public_id(bench, dataset, 0)
            endpoints["audit_filtered"] = [
                f"/api/0/organizations/{datasets.ORG}/audit-logs/?{AUDIT_FILTER}"
                f"&project={project}"
            ]
            tokens["audit_filtered"] = directory.auditor_token

        server.reset_peaks()
        result: dict[str, Any] = {"cpu_ms": {}}
        for endpoint, paths in endpoints.items():
            plan = {
                "port": server.port,
                "scenario": "get",
                "concurrency": 2,
                "max_requests": bench.scale.latency_requests + WARMUP_REQUESTS,
                "max_seconds": 120.0,
                "warmup_requests": WARMUP_REQUESTS,
                "token": tokens.get(endpoint, token),
                "paths": paths,
            }
            web_before = cpu_by_pid(server.worker_pids())
            database_before = cpu_by_pid(bench.backend_pids())
            load = checked(bench.load(plan), endpoint)
            result[endpoint] = load["latencies_ms"]
            ms_per_request = 1000 / sum(load["statuses"].values())
            database_pids = bench.backend_pids()
            result["cpu_ms"][endpoint] = {
                "web": cpu_growth(web_before, server.worker_pids()) * ms_per_request,
                "database": None if database_pids is None
                else cpu_growth(database_before, database_pids) * ms_per_request,
                "load": load["load_cpu_seconds"] * ms_per_request,
            }
        result["peak_mib"] = server.peak_mib()
        return result

    return bench.memo(("read_latency", tier, run), measure)


def put_commits(bench: Bench, tier: str, run: int) -> dict[str, Any]:
    def measure() -> dict[str, Any]:
        dataset = bench.write_dataset()
        # A fresh worker for each PUT, so that memory freed by an earlier,
        # larger PUT does not hide this one's growth.
        limit = str(256 * 1024 * 1024)
        server = bench.service(dataset, workers=1, LEDGER_MAX_BODY_BYTES=limit,
                               LEDGER_MAX_RELEASE_BODY_BYTES=limit, WEB_TIMEOUT="600",
                               BENCH_MEASUREMENT=f"commits-{tier}-{run}")
        plan = {
            "port": server.port,
            "scenario": "commits",
            "max_requests": 1,
            "max_seconds": 600.0,
            "token": dataset.loaded.directory.pipeline_token,
            "projects": [dataset.loaded.directory.project_slugs[0]],
            "version_prefix": f"warmup-{tier}-{run}-",
            "commit_count": 10,
        }
        checked(bench.load(plan), "PUT with 10 commits")
        worker = server.worker_pids()[0]
        reset_peak(worker)
        before = memory_kib(worker, "VmRSS")
        plan.update(version_prefix=f"commits-{tier}-{run}-",
                    commit_count=bench.scale.commit_counts[tier])
        result = checked(bench.load(plan), f"PUT with {plan['commit_count']} commits")
        return {"seconds": result["latencies_ms"][0] / 1000,
                "memory_mib": (memory_kib(worker, "VmHWM") - before) / 1024}

    return bench.memo(("put_commits", tier, run), measure)


def projection_lag(bench: Bench, run: int) -> dict[str, Any]:
    def measure() -> dict[str, Any]:
        dataset = bench.write_dataset()
        directory = dataset.loaded.directory
        env = {"LEDGER_DATABASE_URL": dataset.settings.database_url}
        job = {
            "url": dataset.settings.database_url,
            "models": list(MODELS),
            "org_id": str(directory.org_id),
            "project_ids": [str(project_id) for project_id in directory.project_ids],
            "version_prefix": f"lag-{run}-",
            "rate": LAG_WRITES_PER_SECOND,
            "seconds": bench.scale.http_seconds * 2,
            "warmup_seconds": 1.0,
        }
        with projector(env, bench.workdir):
            result = run_module("bench.lag", job, timeout=job["seconds"] + 300)
        if result["unseen"] or not result["writes"]:
            raise RuntimeError(f"Projection lag failed: {result['writes']} writes measured,"
                               f" {result['unseen']} never reached by the read models.")
        return result

    return bench.memo(("projection_lag", run), measure)


def project_public_id(bench: Bench, dataset: Dataset, index: int) -> str:
    """Return the public id of a project: the position of the event that created it."""
    project_id = dataset.loaded.directory.project_ids[index]
    rows = bench.execute(dataset.settings,
                         "SELECT public_id FROM audit_v2_subjects WHERE id = %s",
                         (str(project_id),))
    return str(rows[0][0])


def cpu_by_pid(pids: list[int] | None) -> dict[int, float]:
    """Return the CPU seconds each process has used so far, by pid."""
    return {pid: cpu_seconds([pid]) for pid in pids or []}


def deep_cursor(bench: Bench, dataset: Dataset) -> str:
    """Return the cursor after the scale's deep offset into the reader's releases."""
    directory = dataset.loaded.directory
    visible = [str(directory.project_ids[index]) for index in directory.visible_project_indexes]
    visible_releases = dataset.loaded.releases * len(visible) // datasets.PROJECTS
    offset = min(bench.scale.deep_offset, visible_releases // 2)
    rows = bench.execute(
        dataset.settings,
        "SELECT r.sort_key, r.public_id FROM releases_v1_releases r"
        " WHERE r.org_id = %s AND r.status = 'open' AND EXISTS (SELECT 1"
        " FROM releases_v1_projects p WHERE p.release_id = r.id AND p.project_id = ANY(%s))"
        " ORDER BY r.sort_key DESC, r.public_id DESC OFFSET %s LIMIT 1",
        (str(directory.org_id), visible, offset),
    )
    sort_key, public_id = rows[0]
    return f"{sort_key}:{public_id}:0"


def visible_versions(dataset: Dataset, count: int) -> list[str]:
    """Return versions of releases the reader may see, spread over the whole ledger."""
    visible = dataset.loaded.directory.visible_project_indexes
    candidates = [index for index in range(dataset.loaded.releases)
                  if index % datasets.PROJECTS in visible]
    step = max(len(candidates) // count, 1)
    return [datasets.release_version(index) for index in candidates[::step][:count]]


def quantile(values: list[float], percentile: float) -> float:
    """Return the nearest-rank percentile of sorted values."""
    if not values:
        raise ValueError("No latencies were recorded.")
    rank = max(math.ceil(percentile / 100 * len(values)) - 1, 0)
    return values[min(rank, len(values) - 1)]


def checked(result: dict[str, Any], what: str) -> dict[str, Any]:
    """Return a load result, raising if any request failed or none was measured."""
    if result["errors"] or not result["operations"]:
        raise RuntimeError(
            f"{what}: {result['errors']} failed operations, {result['operations']} measured;"
            f" statuses {result['statuses']}; first errors {result['first_errors']}"
        )
    return result
