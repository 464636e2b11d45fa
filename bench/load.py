"""The load generator: a separate process that sends HTTP requests to 127.0.0.1.

It reads a plan as JSON on stdin and prints the result as JSON on stdout:

    python -m bench.load < plan.json

A plan names the port, the scenario, the number of concurrent clients and
two bounds, `max_requests` and `max_seconds`; the run stops at whichever
comes first. Each client sends one request at a time and waits for the
answer (a closed loop). gunicorn's sync workers close the connection after
each response, so every request opens its own connection.

Scenarios:
- `get`: GET the plan's `paths` in turn.
- `pairs`: create a release with POST and finalize it with PUT, as a
  deploy pipeline does; one pair counts as one operation.
- `commits`: create a release with POST, then send `commit_count` commits
  in one PUT; only the PUT counts.

Operations that start during the first `warmup_seconds`, and the first
`warmup_requests` operations, are not counted.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

HOST = "127.0.0.1"


@dataclass
class Tally:
    """Completed operations in the measured window, and every failure."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def count(self, status: int) -> None:
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1


class Plan:
    """A load plan read from JSON; see the module docstring."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.port: int = raw["port"]
        self.scenario: str = raw["scenario"]
        self.concurrency: int = raw.get("concurrency", 1)
        self.max_requests: int = raw["max_requests"]
        self.max_seconds: float = raw["max_seconds"]
        self.warmup_seconds: float = raw.get("warmup_seconds", 0.0)
        self.warmup_requests: int = raw.get("warmup_requests", 0)
        self.token: str | None = raw.get("token")
        self.paths: list[str] = raw.get("paths", [])
        self.org: str = raw.get("org", "acme")
        self.projects: list[str] = raw.get("projects", [])
        self.version_prefix: str = raw.get("version_prefix", "load-")
        self.commit_count: int = raw.get("commit_count", 0)


def request_bytes(method: str, path: str, token: str | None, body: Any = None) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", "Connection: close"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def send(port: int, request: bytes) -> tuple[int, bytes]:
    """Send one request on a new connection; return the status and the body."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(request)
        response = await reader.read()
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), body


async def run(plan: Plan) -> dict[str, Any]:
    tally = Tally()
    started = time.perf_counter()
    measure_from = started + plan.warmup_seconds
    deadline = started + plan.max_seconds
    counter = itertools.count()
    operation = {"get": get_one, "pairs": pair_one, "commits": commits_one}[plan.scenario]

    async def client() -> None:
        while time.perf_counter() < deadline:
            number = next(counter)
            if number >= plan.max_requests:
                return
            begin = time.perf_counter()
            try:
                statuses, begin = await operation(plan, number, begin)
            except (OSError, ValueError, IndexError) as error:
                tally.errors.append(f"{type(error).__name__}: {error}")
                continue
            end = time.perf_counter()
            for status in statuses:
                tally.count(status)
            if any(status >= 300 for status in statuses):
                tally.errors.append(f"operation {number}: statuses {statuses}")
            elif begin >= measure_from and number >= plan.warmup_requests:
                tally.latencies.append(end - begin)

    await asyncio.gather(*(client() for _ in range(plan.concurrency)))
    elapsed = time.perf_counter() - max(measure_from, started)
    return {
        "operations": len(tally.latencies),
        "seconds": elapsed,
        "per_second": len(tally.latencies) / elapsed if elapsed > 0 else 0.0,
        "latencies_ms": sorted(round(latency * 1000, 3) for latency in tally.latencies),
        "statuses": tally.statuses,
        "errors": len(tally.errors),
        "first_errors": tally.errors[:5],
    }


async def get_one(plan: Plan, number: int, begin: float) -> tuple[list[int], float]:
    path = plan.paths[number % len(plan.paths)]
    status, _ = await send(plan.port, request_bytes("GET", path, plan.token))
    return [status], begin


async def pair_one(plan: Plan, number: int, begin: float) -> tuple[list[int], float]:
    version = f"{plan.version_prefix}{number}"
    created = await create(plan, version, plan.projects[number % len(plan.projects)])
    if created != 201:
        return [created], begin
    finalized, _ = await send(plan.port, request_bytes(
        "PUT", release_path(plan, version), plan.token,
        {"dateReleased": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    ))
    return [created, finalized], begin


async def commits_one(plan: Plan, number: int, begin: float) -> tuple[list[int], float]:
    """Create a release, then time only the PUT that sets its commits."""
    version = f"{plan.version_prefix}{number}"
    created = await create(plan, version, plan.projects[number % len(plan.projects)])
    if created != 201:
        return [created], begin
    request = request_bytes("PUT", release_path(plan, version), plan.token,
                            {"commits": list(commit_list(plan.commit_count))})
    begin = time.perf_counter()
    updated, _ = await send(plan.port, request)
    return [created, updated], begin


async def create(plan: Plan, version: str, project: str) -> int:
    status, _ = await send(plan.port, request_bytes(
        "POST", f"/api/0/organizations/{plan.org}/releases/", plan.token,
        {"version": version, "projects": [project]},
    ))
    return status


def release_path(plan: Plan, version: str) -> str:
    return f"/api/0/organizations/{plan.org}/releases/{quote(version, safe='')}/"


def commit_list(count: int) -> Iterator[dict[str, Any]]:
    """Yield commits as sentry-cli sends them, each with one changed file."""
    for number in range(count):
        author = number % 50
        yield {
            "id": f"{number:040x}",
            "repository": "acme/monorepo",
            "message": f"Change {number}: adjust the module and its tests",
            "author_name": f"Author {author}",
            "author_email": f"author{author}@example.com",
            "timestamp": "2024-01-01T12:00:00Z",
            "patch_set": [{"path": f"src/module_{number % 997}.py", "type": "M"}],
        }


def main() -> int:
    plan = Plan(json.load(sys.stdin))
    result = asyncio.run(run(plan))
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
