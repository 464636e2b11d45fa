"""Real processes for acceptance tests: gunicorn serving the app, and sentry-cli.

sentry-cli runs with its URL, token and organization all in its
environment, HOME set to an empty folder and .env loading off, because
3.8 falls back to sentry.io when the URL and the token come from
different places.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from api.config import Settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SENTRY_CLI = BIN / "sentry-cli"
START_TIMEOUT_SECONDS = 30


@dataclass
class Server:
    """A gunicorn server on 127.0.0.1 and the file its logs go to."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(settings: Settings, workers: int = 2, env: dict[str, str] | None = None
             ) -> Iterator[Server]:
    """Serve the app with gunicorn on a free port until the block ends.

    The workers run no read-model runner unless `env` sets
    LEDGER_WEB_PROJECTOR=1, so tests control what applies events.
    """
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="gunicorn-", suffix=".log")[1])
    environment = {
        **os.environ,
        "LEDGER_DATABASE_URL": settings.database_url,
        "LEDGER_BLOB_DIR": settings.blob_dir,
        "LEDGER_MAX_FILE_BYTES": str(settings.max_file_bytes),
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "LEDGER_WEB_PROJECTOR": "0",
        **(env or {}),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "api.app:create_app()"],
            cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_until_up(server)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_path.unlink(missing_ok=True)


def _wait_until_up(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.process.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer within {START_TIMEOUT_SECONDS} s:\n{server.log()}")


@dataclass
class SentryCli:
    """Runs the real sentry-cli binary against one server, organization and token."""

    url: str
    token: str
    org: str
    project: str | None = None

    def __call__(self, *args: str, cwd: str | Path | None = None,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as workdir:
            environment = {
                "PATH": "/usr/bin:/bin",
                "HOME": home,
                "SENTRY_URL": self.url + "/",
                "SENTRY_AUTH_TOKEN": self.token,
                "SENTRY_ORG": self.org,
                "SENTRY_LOAD_DOTENV": "0",
                "SENTRY_DISABLE_UPDATE_CHECK": "1",
                "SENTRY_HTTP_MAX_RETRIES": "0",
                **({"SENTRY_PROJECT": self.project} if self.project else {}),
                **(env or {}),
            }
            return subprocess.run(
                [str(SENTRY_CLI), *args], cwd=cwd or workdir, env=environment,
                capture_output=True, text=True, timeout=60,
            )


def requested_paths(server: Server) -> Sequence[str]:
    """Return "METHOD path" of every request the server logged."""
    import json

    paths = []
    for line in server.log().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "api.access":
                paths.append(f"{entry['method']} {entry['path']}")
    return paths


@dataclass
class ProjectorProcess:
    """A `release-ledger projections run` process and the file its logs go to."""

    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def entries(self, message: str | None = None) -> list[dict]:
        """Return its JSON log lines, only those with `message` if given."""
        import json

        lines = [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]
        return [entry for entry in lines if message is None or entry["message"] == message]

    def wait_for(self, message: str, count: int = 1, timeout: float = 15.0) -> list[dict]:
        """Wait until the process has logged `message` at least `count` times."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.entries(message)
            if len(found) >= count:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"No {count} x {message!r} within {timeout} s:\n{self.log()}")


@contextmanager
def projector(settings: Settings, *names: str, env: dict[str, str] | None = None
              ) -> Iterator[ProjectorProcess]:
    """Run a projector process until the block ends, then stop it with SIGTERM."""
    log_path = Path(tempfile.mkstemp(prefix="projector-", suffix=".log")[1])
    environment = {
        **os.environ,
        "LEDGER_DATABASE_URL": settings.database_url,
        "CREATE_TABLE": "n",
        **(env or {}),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BIN / "release-ledger"), "projections", "run", *names],
            cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        yield ProjectorProcess(process, log_path)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log_path.unlink(missing_ok=True)


def worker_pids(server: Server) -> list[int]:
    """Return the process ids of the server's gunicorn workers."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]
