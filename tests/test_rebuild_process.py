"""`release-ledger projections rebuild` as a process: killed with SIGKILL, then resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from tests.read_models import (
    all_contents,
    count_events_after,
    head,
    position,
    rebuild,
    record_history,
    statuses,
)
from tests.servers import BIN, ROOT

TIMEOUT_SECONDS = 60


def start_rebuild(settings, *options: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "release-ledger"), "projections", "rebuild", "releases_v1", *options],
        cwd=ROOT,
        env={**os.environ, "LEDGER_DATABASE_URL": settings.database_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_copy_position(services, process: subprocess.Popen, minimum: int) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        reached = position(services, "releases_v1:rebuild")
        if reached is not None and reached >= minimum:
            return
        time.sleep(0.01)
    raise TimeoutError(f"The rebuild copy did not reach position {minimum}.")


def wait_until_unlocked(services, name: str) -> None:
    """Wait for the server or kernel to drop the lock of a killed process."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while services.database.is_locked(name):
        assert time.monotonic() < deadline, f"{name} stayed locked"
        time.sleep(0.05)


def test_sigkilled_rebuild_resumes_exactly(services, world, settings):
    record_history(services, releases=30)
    services.projector.catch_up()
    rebuild(services, "releases_v1")
    clean = all_contents(services)
    process = start_rebuild(settings, "--batch-size", "5", "--pause", "0.05")

    wait_for_copy_position(services, process, 40)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=TIMEOUT_SECONDS)
    wait_until_unlocked(services, "rebuild:releases_v1")
    killed_at = position(services, "releases_v1:rebuild")
    stopped = statuses(services)["releases_v1:rebuild"]
    served_while_stopped = all_contents(services)
    resumed = start_rebuild(settings, "--batch-size", "50")
    output, errors = resumed.communicate(timeout=TIMEOUT_SECONDS)

    assert process.returncode == -signal.SIGKILL
    assert 40 <= killed_at < head(services) - 5
    assert killed_at % 5 == 0
    assert stopped.state == "stopped"
    assert served_while_stopped == clean
    assert resumed.returncode == 0, errors
    assert f"it is live at position {head(services)}" in output
    remaining = count_events_after(services, killed_at)
    assert f"live at position {head(services):,}; {remaining:,} events in" in errors
    assert all_contents(services) == clean
    assert "releases_v1:rebuild" not in statuses(services)
