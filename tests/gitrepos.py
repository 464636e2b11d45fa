"""Throwaway git repositories that tests build commit by commit."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT_SECONDS = 30


@dataclass
class GitRepo:
    """A git working tree in a temporary folder, with a fixed commit clock."""

    path: Path
    clock: int = 1_700_000_000

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def git(self, *args: str, env: dict[str, str] | None = None) -> str:
        env = {
            "PATH": os.defpath,
            "HOME": str(self.path),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            **(env or {}),
        }
        result = subprocess.run(
            ["git", *args], cwd=self.path, env=env, capture_output=True, text=True,
            timeout=GIT_TIMEOUT_SECONDS, check=True,
        )
        return result.stdout.strip()

    def commit(
        self,
        message: str,
        files: dict[str, str | None],
        author: tuple[str, str] = ("Dev One", "dev@example.com"),
    ) -> str:
        """Write (or, for None, delete) `files`, commit them, and return the commit id."""
        for name, content in files.items():
            target = self.path / name
            if content is None:
                self.git("rm", "-q", "--", name)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
                self.git("add", "--", name)
        self.clock += 60
        date = f"@{self.clock} +0200"
        self.git(
            "-c", f"user.name={author[0]}", "-c", f"user.email={author[1]}",
            "commit", "-q", "-m", message,
            env={"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date},
        )
        return self.git("rev-parse", "HEAD")


def make_repo(root: Path, name: str = "app") -> GitRepo:
    path = root / name
    path.mkdir(parents=True)
    repo = GitRepo(path)
    repo.git("init", "-q", "-b", "main")
    return repo
