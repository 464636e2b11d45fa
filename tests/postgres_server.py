"""A PostgreSQL server of a test's own, in a temporary folder, on a free port.

Stopping and starting it simulates a database restart without touching the
shared server. It runs as the `postgres` user, so it needs root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.servers import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


def can_run() -> str | None:
    """Return why a private server cannot run here, or None when it can."""
    if not (BIN / "initdb").exists():
        return f"{BIN / 'initdb'} is missing"
    if os.geteuid() != 0:
        return "starting a server as the postgres user needs root"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "there is no postgres user"
    return None


class OwnPostgres:
    """initdb, start and stop one private server; stop() touches only its own data folder."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="ledger-postgres-"))
        user = pwd.getpwnam("postgres")
        os.chown(self.folder, user.pw_uid, user.pw_gid)
        self.data = self.folder / "data"
        self.port = free_port()
        self._as_postgres(BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                          "-E", "UTF8", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
                   " -c fsync=off -c max_connections=40")
        self._as_postgres(BIN / "pg_ctl", "-D", self.data, "-l", self.folder / "server.log",
                          "-w", "-o", options, "start")

    def stop(self) -> None:
        self._as_postgres(BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _as_postgres(self, *command: object) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *map(str, command)],
                       check=True, capture_output=True, timeout=60, cwd=self.folder)
