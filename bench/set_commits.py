"""Measure one PUT of a large commit list: time and peak memory against list size.

Each size runs on a fresh ledger: a new SQLite file, or with --database-url
postgresql://... a new schema that is dropped afterwards. The PUT is timed
through the WSGI app, including the catch-up of every read model. Then the
commits and their changed files are paged through, 100 a page. Peak memory
is the peak of Python allocations that tracemalloc reports during the PUT,
measured in a second run because tracing slows the code down. Allocations
made by C libraries are not counted.

    .venv/bin/python -m bench.set_commits [--sizes 1250,2500,5000,10000] [--database-url URL]

The last two columns divide each size's cost per commit by the smallest
size's; values near 1 mean linear growth.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import falcon.testing

from api.app import create_app
from api.config import Settings
from api.services import Services
from tests.builders import build_world
from tests.conftest import drop_schema
from tests.pages import all_pages

RELEASES = "/api/0/organizations/acme/releases/"


@dataclass
class Measurement:
    size: int
    put_seconds: float
    paging_seconds: float
    files_paging_seconds: float
    peak_bytes: int


@contextmanager
def fresh_settings(database_url: str | None) -> Iterator[Settings]:
    if database_url is None:
        with tempfile.TemporaryDirectory() as folder:
            yield Settings(database_url=f"sqlite:///{folder}/bench.sqlite3")
        return
    separator = "&" if "?" in database_url else "?"
    settings = Settings(
        database_url=f"{database_url}{separator}schema=bench_{uuid.uuid4().hex[:12]}"
    )
    try:
        yield settings
    finally:
        drop_schema(settings)


def make_commits(size: int) -> list[dict]:
    return [
        {
            "id": f"{index:040x}",
            "repository": "acme/app",
            "message": f"Change number {index}\n\nWith a body line.\n",
            "author_name": f"Developer {index % 50}",
            "author_email": f"dev{index % 50}@example.com",
            "timestamp": "2024-01-01T00:00:00Z",
            "patch_set": [{"path": f"src/module_{index % 200}.py", "type": "M"}],
        }
        for index in range(size)
    ]


def put_commits(database_url: str | None, size: int, trace: bool) -> Measurement:
    with fresh_settings(database_url) as settings:
        services = Services(settings, create_tables=True)
        try:
            world = build_world(services)
            client = falcon.testing.TestClient(create_app(settings, services))
            client.simulate_post(RELEASES, json={"version": "bench", "projects": ["web"]},
                                 headers=world.headers())
            commits = make_commits(size)
            if trace:
                tracemalloc.start()
            started = time.perf_counter()
            response = client.simulate_put(f"{RELEASES}bench/", json={"commits": commits},
                                           headers=world.headers())
            put_seconds = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1] if trace else 0
            tracemalloc.stop()
            if response.status_code != 200 or response.json["commitCount"] != size:
                raise RuntimeError(f"PUT of {size} commits failed: {response.status_code}")
            started = time.perf_counter()
            items, _ = all_pages(client, f"{RELEASES}bench/commits/", world.headers())
            paging_seconds = time.perf_counter() - started
            if len(items) != size:
                raise RuntimeError(f"Paged {len(items)} of {size} commits.")
            started = time.perf_counter()
            files, _ = all_pages(client, f"{RELEASES}bench/commitfiles/", world.headers())
            files_paging_seconds = time.perf_counter() - started
            if len(files) != size:
                raise RuntimeError(f"Paged {len(files)} of {size} changed files.")
            return Measurement(size, put_seconds, paging_seconds, files_paging_seconds, peak)
        finally:
            services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1250,2500,5000,10000",
                        help="comma-separated commit list sizes")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL URL to measure on; without it, a temporary SQLite file",
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    rows = []
    for size in sizes:
        timed = put_commits(args.database_url, size, trace=False)
        traced = put_commits(args.database_url, size, trace=True)
        rows.append(Measurement(size, timed.put_seconds, timed.paging_seconds,
                                timed.files_paging_seconds, traced.peak_bytes))

    base = rows[0]
    print(f"{'commits':>8} {'PUT s':>8} {'commits s':>10} {'files s':>8} {'peak MiB':>9} "
          f"{'time/commit':>12} {'memory/commit':>14}")
    for row in rows:
        time_ratio = (row.put_seconds / row.size) / (base.put_seconds / base.size)
        memory_ratio = (row.peak_bytes / row.size) / (base.peak_bytes / base.size)
        print(f"{row.size:>8} {row.put_seconds:>8.2f} {row.paging_seconds:>10.2f} "
              f"{row.files_paging_seconds:>8.2f} {row.peak_bytes / 2**20:>9.1f} "
              f"{time_ratio:>12.2f} {memory_ratio:>14.2f}")


if __name__ == "__main__":
    main()
