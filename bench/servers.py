"""gunicorn and projector processes started by the suite, and the memory of workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
RELEASE_LEDGER = Path(sys.executable).parent / "release-ledger"
START_TIMEOUT_SECONDS = 60
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A gunicorn master on 127.0.0.1 and the file its output goes to."""

    port: int
    process: subprocess.Popen
    log_path: Path

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def reset_peaks(self) -> None:
        """Reset the peak resident memory of every worker to its current size."""
        for pid in self.worker_pids():
            reset_peak(pid)

    def peak_mib(self) -> float:
        """Return the largest peak resident memory of any worker, in MiB."""
        return max(memory_kib(pid, "VmHWM") for pid in self.worker_pids()) / 1024


def memory_kib(pid: int, field: str) -> int:
    """Return a memory field of /proc/PID/status (VmRSS, VmHWM) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(f"/proc/{pid}/status has no {field} line.")


def cpu_seconds(pids: Iterable[int]) -> float:
    """Sum the user and system CPU time that the processes have used, in seconds.

    A process that has exited counts as zero.
    """
    ticks = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue
        # The command name in brackets may contain spaces, so fields are
        # counted after it. utime and stime are fields 14 and 15 in proc(5).
        fields = stat.rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS_PER_SECOND


def cpu_growth(before: dict[int, float], pids: Iterable[int]) -> float:
    """Sum the CPU seconds that the live `pids` used since `before` was taken.

    `before` maps pids to their `cpu_seconds` then, and a pid missing from
    it counts from zero. A pid that exits meanwhile adds nothing.
    """
    return sum(max(cpu_seconds([pid]) - before.get(pid, 0.0), 0.0) for pid in pids)


def reset_peak(pid: int) -> None:
    """Set VmHWM back to VmRSS; Linux does this when 5 is written to clear_refs."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(app: str, env: dict[str, str], log_dir: Path, workers: int = 2) -> Iterator[Server]:
    """Serve `app` with the project's gunicorn.conf.py until the block ends."""
    port = free_port()
    log_path = log_dir / f"gunicorn-{port}.log"
    # As in the Procfile, the workers leave read models to projector processes.
    environment = {**os.environ, "LEDGER_WEB_PROJECTOR": "0", **env, "PORT": str(port),
                   "WEB_CONCURRENCY": str(workers)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(GUNICORN), "-c", str(ROOT / "gunicorn.conf.py"), app],
            cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
        )
    server = Server(port, process, log_path)
    try:
        _wait_until_up(server, workers)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(server: Server, workers: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"gunicorn exited with {server.process.returncode}; see {server.log_path}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=2):
                pass
        except urllib.error.HTTPError:
            pass  # The baseline app has no /healthz; any answer means it is up.
        except OSError:
            time.sleep(0.1)
            continue
        if len(server.worker_pids()) >= workers:
            return
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer within {START_TIMEOUT_SECONDS} s")


@contextmanager
def projector(env: dict[str, str], log_dir: Path) -> Iterator[subprocess.Popen]:
    """Run `release-ledger projections run` for every read model until the block ends."""
    log_path = log_dir / "projector.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(RELEASE_LEDGER), "projections", "run"],
            cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
