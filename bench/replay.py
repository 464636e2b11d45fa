"""Replay of one read model from position zero, in a process of its own.

It reads a job as JSON on stdin and prints the result as JSON on stdout:

    python -m bench.replay < job.json

A job names the ledger's database URL, where the read model's tables go
(`target_url`, a PostgreSQL schema or a SQLite file, whose tables are
created if missing and must be empty), and the read model. Without a read
model the process only reads and decodes every notification, which is the
baseline of a replay. The result carries the events read, the seconds the
replay took and the peak resident memory of the process.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from api.config import Settings
from domain.application import ReleaseLedger
from projections.database import Database
from projections.postgres import PostgresDatabase
from projections.projector import DEFAULT_BATCH_SIZE, Projector
from projections.registry import all_projections
from projections.sqlite import SQLiteDatabase


def replay(ledger: ReleaseLedger, target: Settings, model: str) -> int:
    database = open_database(target)
    try:
        projections = [p for p in all_projections() if p.name == model]
        if not projections:
            raise LookupError(f"No read model is named {model!r}.")
        projector = Projector(ledger, database, projections)
        projector.create_tables()
        if projector.positions()[model] != 0:
            raise ValueError(f"Read model {model!r} in {target.database_url} is not empty.")
        return projector.catch_up()
    finally:
        database.close()


def open_database(settings: Settings) -> Database:
    if settings.backend == "sqlite":
        return SQLiteDatabase(settings.sqlite_path)
    return PostgresDatabase(settings.postgres.conninfo, settings.postgres.schema)


def decode(ledger: ReleaseLedger) -> int:
    """Read and decode every notification as the projector does, applying nothing."""
    position, count = 0, 0
    head = ledger.recorder.max_notification_id() or 0
    while position < head:
        notifications = ledger.recorder.select_notifications(
            start=position, limit=DEFAULT_BATCH_SIZE, stop=head, inclusive_of_start=False
        )
        for notification in notifications:
            ledger.mapper.to_domain_event(notification)
        count += len(notifications)
        position = notifications[-1].id if notifications else head
    return count


def peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise LookupError("/proc/self/status has no VmHWM line.")


def run(job: dict[str, Any]) -> dict[str, Any]:
    ledger_settings = Settings(database_url=job["ledger_url"])
    ledger = ReleaseLedger(env=ledger_settings.eventsourcing_env(create_table=False))
    try:
        started = time.perf_counter()
        if job.get("model"):
            events = replay(ledger, Settings(database_url=job["target_url"]), job["model"])
        else:
            events = decode(ledger)
        seconds = time.perf_counter() - started
    finally:
        ledger.close()
    return {
        "events": events,
        "seconds": seconds,
        "per_second": events / seconds if seconds > 0 else 0.0,
        "peak_mib": peak_mib(),
    }


def main() -> int:
    json.dump(run(json.load(sys.stdin)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
