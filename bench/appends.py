"""Appends to the ledger without HTTP, from one of several concurrent processes.

It reads a job as JSON on stdin and prints the result as JSON on stdout:

    python -m bench.appends < job.json

In `ledger` mode the process runs ReleaseLedger commands as a pipeline
does: create a release, then finalize it, each command one append. In
`insert` mode, the baseline, each append is the event store's transaction
without the application: lock the table in EXCLUSIVE mode, NOTIFY and
insert one event-sized row, sent in one pipeline as the event store sends
it. The processes of one run start together at `start_at` (a Unix time).
Both stop after `max_appends` or `seconds`, whichever comes first.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg

from api.config import Settings
from domain.application import ReleaseChanges, ReleaseLedger
from domain.cause import Cause

TABLE = "baseline_events"
CREATE_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (originator_id UUID NOT NULL,"
    " originator_version BIGINT NOT NULL, topic TEXT, state BYTEA,"
    " notification_id BIGSERIAL, PRIMARY KEY (originator_id, originator_version))"
)
STATE = json.dumps({"payload": "x" * 560}).encode()
CAUSE = Cause("system", "bench", None, "bench-appends")


def ledger_appender(job: dict[str, Any]) -> tuple[Callable[[int], None], Callable[[], None]]:
    settings = Settings(database_url=job["url"])
    ledger = ReleaseLedger(env=settings.eventsourcing_env(create_table=False))
    org_id = UUID(job["org_id"])
    project_ids = [UUID(project_id) for project_id in job["project_ids"]]
    prefix = f"{job['version_prefix']}{os.getpid()}-"

    def append(number: int) -> None:
        version = f"{prefix}{number // 2}"
        if number % 2 == 0:
            changes = ReleaseChanges(project_ids=[project_ids[number % len(project_ids)]])
            ledger.create_release(org_id, version, changes, CAUSE)
        else:
            changes = ReleaseChanges(date_released=datetime.now(UTC))
            ledger.update_release(org_id, version, changes, CAUSE)

    return append, ledger.close


def insert_appender(job: dict[str, Any]) -> tuple[Callable[[int], None], Callable[[], None]]:
    postgres = Settings(database_url=job["url"]).postgres
    connection = psycopg.connect(
        postgres.conninfo, options=f"-c search_path={postgres.schema}"
    )
    statements = (
        "SET LOCAL lock_timeout = '10s'",
        f"LOCK TABLE {TABLE} IN EXCLUSIVE MODE",
        f"NOTIFY {TABLE}",
    )
    insert = (
        f"INSERT INTO {TABLE} (originator_id, originator_version, topic, state)"
        " VALUES (%s, 1, 'bench:Appended', %s) RETURNING notification_id"
    )

    def append(number: int) -> None:
        with (
            connection.pipeline() as pipeline,
            connection.transaction(),
            connection.cursor() as cursor,
        ):
            for statement in statements:
                cursor.execute(statement, prepare=True)
            cursor.execute(insert, (uuid.uuid4(), STATE), prepare=True)
            pipeline.sync()
            cursor.fetchone()

    return append, connection.close


def run(job: dict[str, Any]) -> dict[str, Any]:
    appender = ledger_appender if job["mode"] == "ledger" else insert_appender
    append, close = appender(job)
    # Every process starts at the same moment, after all have connected.
    time.sleep(max(job.get("start_at", 0.0) - time.time(), 0.0))
    try:
        started = time.perf_counter()
        deadline = started + job["seconds"]
        count = 0
        while count < job["max_appends"] and time.perf_counter() < deadline:
            append(count)
            count += 1
        seconds = time.perf_counter() - started
    finally:
        close()
    return {"appends": count, "seconds": seconds}


def main() -> int:
    json.dump(run(json.load(sys.stdin)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
