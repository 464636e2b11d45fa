"""Reading commits from a git repository on this machine with the git command.

Only local repositories are read, named by an absolute path or a file://
URL. git runs without system or global configuration, without a terminal
prompt and under a time and output limit. Revisions are checked against
a strict pattern and passed after `--end-of-options`, so no value sent by
a client can act as a git option. Registering a repository is left to
organization admins and operators, because a local URL lets the server
read any repository that its user can read.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from typing import IO, Any, cast
from urllib.parse import unquote, urlsplit

DEFAULT_TIME_LIMIT_SECONDS = 10
MAX_OUTPUT_BYTES = 64 * 1024 * 1024
MAX_ERROR_BYTES = 4096
READ_CHUNK_BYTES = 64 * 1024
# Branch and tag names and hex ids, without a leading '-' and without '..', '@{', '^' or '~'.
REVISION_PATTERN = re.compile(r"^[0-9A-Za-z_][0-9A-Za-z_./-]{0,63}$")
OBJECT_ID_PATTERN = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
# git's name-status letters. A type change keeps the path, so it counts as modified.
CHANGE_TYPES = {"A": "A", "M": "M", "D": "D", "T": "M"}
LOG_FIELDS = 5


class GitError(Exception):
    """Raised when git cannot read the repository or a revision, or runs too long."""


def local_path(url: str | None) -> str | None:
    """Return the absolute path that a repository URL names on this machine, or None."""
    if not url:
        return None
    if url.startswith("file://"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            return None
        path = unquote(parts.path)
    else:
        path = url
    return path if os.path.isabs(path) else None


def check_revision(revision: str) -> str:
    if ".." in revision or not REVISION_PATTERN.match(revision) or revision.endswith(".lock"):
        raise GitError(
            f"{revision[:80]!r} is not a revision git may resolve here: use a commit id,"
            " a branch or a tag name."
        )
    return revision


class GitRepository:
    """A local git repository, read through the git command.

    Every git call made through one instance must end by `deadline`, a
    `time.monotonic()` value, so callers can share one time budget.
    """

    def __init__(self, path: str, deadline: float | None = None) -> None:
        self.path = os.path.normpath(path)
        self.deadline = (
            time.monotonic() + DEFAULT_TIME_LIMIT_SECONDS if deadline is None else deadline
        )

    def resolve(self, revision: str) -> str:
        """Return the full id of the commit that `revision` names."""
        check_revision(revision)
        output = self._run(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}"
        )
        object_id = output.decode("ascii", "replace").strip()
        if not OBJECT_ID_PATTERN.match(object_id):
            raise GitError(f"Commit {revision!r} not found in {self.path}.")
        return object_id

    def commits(self, end: str, start: str | None, max_count: int) -> list[dict[str, Any]]:
        """Return up to `max_count` commits reachable from `end` but not from `start`.

        Both are full commit ids from `resolve`. Commits come newest first,
        as deploy tools send them, in the commit-list form that
        `check_commits` validates, with the files each changed.
        """
        for object_id in (end, start):
            if object_id is not None and not OBJECT_ID_PATTERN.match(object_id):
                raise GitError(f"{object_id!r} is not a full commit id.")
        revisions = f"{start}..{end}" if start else end
        output = self._run(
            "log", "-z", "--no-color", f"--max-count={max_count}",
            "--format=%H%x00%an%x00%ae%x00%aI%x00%B", "--end-of-options", revisions, "--",
        )
        commits = _parse_log(output)
        files = self._changed_files([commit["id"] for commit in commits])
        for commit in commits:
            commit["patch_set"] = files.get(commit["id"], [])
        return commits

    def _changed_files(self, object_ids: list[str]) -> dict[str, list[dict[str, str]]]:
        """Return the files each commit changed against its parent. Merge commits list none."""
        if not object_ids:
            return {}
        output = self._run(
            "diff-tree", "-z", "-r", "--root", "--no-renames", "--no-ext-diff", "--name-status",
            "--stdin", stdin="\n".join(object_ids).encode() + b"\n",
        )
        return _parse_name_status(output)

    def _run(self, *args: str, stdin: bytes = b"") -> bytes:
        git = shutil.which("git")
        if git is None:
            raise GitError("The git command is not installed on the server.")
        if not os.path.isdir(self.path):
            raise GitError(f"{self.path} is not a directory the server can read.")
        command = [
            git, "--no-pager", "--no-optional-locks", "-C", self.path,
            "-c", "core.fsmonitor=false", "-c", "log.showSignature=false", *args,
        ]
        with tempfile.TemporaryFile() as errors, tempfile.TemporaryFile() as given:
            given.write(stdin)
            given.seek(0)
            process = subprocess.Popen(
                command, stdin=given, stdout=subprocess.PIPE, stderr=errors, env=self._env()
            )
            output = self._read_bounded(process)
            errors.seek(0)
            message = errors.read(MAX_ERROR_BYTES).decode("utf-8", "replace").strip()
        if process.returncode != 0:
            raise GitError(f"git {args[0]} failed in {self.path}: {message or 'no message'}")
        return output

    def _read_bounded(self, process: subprocess.Popen) -> bytes:
        """Read git's output, killing git when it passes the time or size limit."""
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            process.kill()

        timer = threading.Timer(max(self.deadline - time.monotonic(), 0), kill)
        timer.start()
        chunks: list[bytes] = []
        size = 0
        stdout = cast(IO[bytes], process.stdout)
        try:
            while chunk := stdout.read(READ_CHUNK_BYTES):
                size += len(chunk)
                if size > MAX_OUTPUT_BYTES:
                    process.kill()
                    raise GitError(f"git output from {self.path} exceeds {MAX_OUTPUT_BYTES} bytes.")
                chunks.append(chunk)
            process.wait()
        finally:
            timer.cancel()
            stdout.close()
            process.wait()
        if timed_out.is_set():
            raise GitError(f"git timed out in {self.path}.")
        return b"".join(chunks)

    def _env(self) -> dict[str, str]:
        return {
            "PATH": os.defpath,
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            # Stop repository discovery at the given directory's parent.
            "GIT_CEILING_DIRECTORIES": os.path.dirname(self.path),
            # Never fetch missing objects of a partial clone from its remote.
            "GIT_NO_LAZY_FETCH": "1",
        }


def _parse_log(output: bytes) -> list[dict[str, Any]]:
    fields = output.decode("utf-8", "replace").split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    if len(fields) % LOG_FIELDS:
        raise GitError("git log returned an unexpected format: a commit message may contain NUL.")
    commits = []
    for start in range(0, len(fields) - LOG_FIELDS + 1, LOG_FIELDS):
        object_id, name, email, timestamp, message = fields[start:start + LOG_FIELDS]
        commits.append({
            "id": object_id.strip(),
            "author_name": name or None,
            "author_email": email or None,
            "timestamp": timestamp or None,
            "message": message,
        })
    return commits


def _parse_name_status(output: bytes) -> dict[str, list[dict[str, str]]]:
    """Read `diff-tree --stdin -z --name-status`: an id, then pairs of status and path."""
    tokens = output.decode("utf-8", "replace").split("\0")
    files: dict[str, list[dict[str, str]]] = {}
    current: list[dict[str, str]] | None = None
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if OBJECT_ID_PATTERN.match(token):
            current = files.setdefault(token, [])
            index += 1
        elif token in CHANGE_TYPES and current is not None and index + 1 < len(tokens):
            current.append({"path": tokens[index + 1], "type": CHANGE_TYPES[token]})
            index += 2
        else:
            index += 1
    return files
