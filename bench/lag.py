"""Projection lag: how long after a write's commit its read models show it.

It reads a job as JSON on stdin and prints the result as JSON on stdout:

    python -m bench.lag < job.json

A projector process (`release-ledger projections run`) must be running
against the job's PostgreSQL ledger. This process first waits until every
read model has reached the ledger's head. Then one thread creates releases
through ReleaseLedger at `rate` per second for `seconds`. It notes each
write's ledger position and the moment its transaction returned. Another
thread polls `projection_positions` every POLL_SECONDS. Once the lowest
position of the job's read models reaches a write's position, it records
the time since that write. The writes bypass HTTP on purpose, because the
web service catches read models up itself before it responds, which would
hide the projector's lag. Writes in the first `warmup_seconds` are not
counted.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from typing import Any
from uuid import UUID

import psycopg

from api.config import Settings
from domain.application import ReleaseChanges, ReleaseLedger
from domain.cause import Cause
from projections.projector import POSITIONS_TABLE

POLL_SECONDS = 0.001
READY_TIMEOUT_SECONDS = 120.0
CAUSE = Cause("system", "bench", None, "bench-lag")


class Positions:
    """The lowest position of the job's read models, read on a connection of its own."""

    def __init__(self, url: str, models: list[str]) -> None:
        postgres = Settings(database_url=url).postgres
        self.connection = psycopg.connect(postgres.conninfo, autocommit=True,
                                          options=f"-c search_path={postgres.schema}")
        self.models = models

    def lowest(self) -> int:
        row = self.connection.execute(
            f"SELECT min(position), count(*) FROM {POSITIONS_TABLE} WHERE name = ANY(%s)",
            (self.models,), prepare=True,
        ).fetchone()
        lowest, count = row
        return lowest if count == len(self.models) else -1

    def close(self) -> None:
        self.connection.close()


def wait_until_caught_up(positions: Positions, head: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while positions.lowest() < head:
        if time.monotonic() > deadline:
            raise TimeoutError(f"Timed out after {READY_TIMEOUT_SECONDS:g} s waiting for the"
                               f" read models to reach position {head}. Check that the"
                               " projector process is running.")
        time.sleep(0.05)


def run(job: dict[str, Any]) -> dict[str, Any]:
    settings = Settings(database_url=job["url"])
    ledger = ReleaseLedger(env=settings.eventsourcing_env(create_table=False))
    positions = Positions(job["url"], job["models"])
    org_id = UUID(job["org_id"])
    project_ids = [UUID(project_id) for project_id in job["project_ids"]]
    pending: deque[tuple[int, float, bool]] = deque()
    writing = threading.Event()
    writing.set()
    lags: list[float] = []
    try:
        wait_until_caught_up(positions, ledger.recorder.max_notification_id() or 0)

        def write() -> None:
            try:
                started = time.perf_counter()
                measure_from = started + job["warmup_seconds"]
                interval = 1.0 / job["rate"]
                number = 0
                while time.perf_counter() < started + job["seconds"]:
                    changes = ReleaseChanges(project_ids=[project_ids[number % len(project_ids)]])
                    outcome = ledger.create_release(
                        org_id, f"{job['version_prefix']}{number}", changes, CAUSE
                    )
                    committed = time.perf_counter()
                    pending.append((outcome.position, committed, committed >= measure_from))
                    number += 1
                    time.sleep(max(started + number * interval - time.perf_counter(), 0.0))
            finally:
                writing.clear()

        writer = threading.Thread(target=write)
        writer.start()
        deadline = time.perf_counter() + job["seconds"] + READY_TIMEOUT_SECONDS
        while (writing.is_set() or pending) and time.perf_counter() < deadline:
            lowest = positions.lowest()
            seen = time.perf_counter()
            while pending and pending[0][0] <= lowest:
                _, committed, counted = pending.popleft()
                if counted:
                    lags.append(seen - committed)
            time.sleep(POLL_SECONDS)
        writer.join()
    finally:
        positions.close()
        ledger.close()
    return {
        "writes": len(lags),
        "unseen": len(pending),
        "latencies_ms": sorted(round(lag * 1000, 3) for lag in lags),
    }


def main() -> int:
    json.dump(run(json.load(sys.stdin)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
