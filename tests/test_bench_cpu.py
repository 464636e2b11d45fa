"""The benchmark suite's accounting of CPU time per process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from bench.servers import cpu_growth, cpu_seconds
from bench.suite import FULL, Bench


def spin(seconds: float) -> None:
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        pass


def test_cpu_seconds_grows_with_work():
    before = cpu_seconds([os.getpid()])

    spin(0.3)

    assert cpu_seconds([os.getpid()]) - before >= 0.2


def test_cpu_seconds_reads_names_with_spaces(tmp_path):
    program = tmp_path / "a b) c"
    program.symlink_to(sys.executable)
    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    process = subprocess.Popen([str(program), "-c", busy + "\nimport sys; sys.stdin.read()"],
                               stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while cpu_seconds([process.pid]) < 0.2 and time.monotonic() < deadline:
            time.sleep(0.05)

        assert cpu_seconds([process.pid]) >= 0.2
    finally:
        process.communicate(b"")


def test_exited_process_counts_zero():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()

    assert cpu_seconds([process.pid]) == 0


def test_cpu_growth_ignores_exited_process():
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    before = {os.getpid(): cpu_seconds([os.getpid()]), exited.pid: 5.0}

    spin(0.3)

    assert cpu_growth(before, [os.getpid(), exited.pid]) >= 0.2
    assert cpu_growth({}, [exited.pid]) == 0


def test_remote_database_has_no_pids():
    bench = Bench(FULL, admin_url="postgresql://postgres@db.example.com:5432/postgres")
    try:
        assert bench.backend_pids() is None
    finally:
        shutil.rmtree(bench.workdir)
