"""Reading local git history: URL handling, revision checks and the limits on git."""

from __future__ import annotations

import time

import pytest

from api import git
from api.git import GitError, GitRepository, check_revision, local_path
from tests.gitrepos import make_repo


def test_local_path_accepts_only_local_urls(tmp_path):
    cases = {
        f"file://{tmp_path}": str(tmp_path),
        f"file://localhost{tmp_path}": str(tmp_path),
        "file:///srv/git/a%20b": "/srv/git/a b",
        "/srv/git/app": "/srv/git/app",
        "relative/path": None,
        "file://example.com/srv/git/app": None,
        "https://github.com/acme/app": None,
        "ssh://git@example.com/acme/app": None,
        None: None,
    }

    for url, expected in cases.items():
        assert local_path(url) == expected, url


def test_revision_check_rejects_option_and_syntax():
    for revision in ("-n1", "--output=/tmp/x", "a..b", "HEAD@{1}", "main^", "main~2",
                     "with space", "refs/heads/x.lock", ""):
        with pytest.raises(GitError):
            check_revision(revision)

    assert check_revision("release/1.2") == "release/1.2"
    assert check_revision("a" * 40) == "a" * 40


def test_commits_lists_range_newest_first(tmp_path):
    repo = make_repo(tmp_path)
    first = repo.commit("one", {"a.txt": "1"})
    second = repo.commit("two", {"M": "a path named like a status", "b.txt": "2"})
    third = repo.commit("three", {"a.txt": None})
    reader = GitRepository(str(repo.path))

    commits = reader.commits(reader.resolve(third), reader.resolve(first), 10)

    assert [c["id"] for c in commits] == [third, second]
    assert commits[0]["patch_set"] == [{"path": "a.txt", "type": "D"}]
    assert commits[1]["patch_set"] == [{"path": "M", "type": "A"}, {"path": "b.txt", "type": "A"}]
    assert commits[1]["author_email"] == "dev@example.com"
    assert commits[1]["timestamp"] == "2023-11-15T00:15:20+02:00"


def test_merge_commit_lists_no_files(tmp_path):
    repo = make_repo(tmp_path)
    repo.commit("base", {"a.txt": "1"})
    repo.git("checkout", "-q", "-b", "side")
    side = repo.commit("side", {"b.txt": "2"})
    repo.git("checkout", "-q", "main")
    repo.commit("main", {"c.txt": "3"})
    repo.git("-c", "user.name=x", "-c", "user.email=x@example.com", "merge", "-q",
             "--no-edit", "side")
    reader = GitRepository(str(repo.path))

    commits = reader.commits(reader.resolve("main"), None, 20)

    assert len(commits) == 4
    assert commits[0]["patch_set"] == []
    assert side in [c["id"] for c in commits]


def test_subdirectory_of_repository_is_not_read(tmp_path):
    repo = make_repo(tmp_path)
    repo.commit("one", {"sub/a.txt": "1"})

    with pytest.raises(GitError):
        GitRepository(str(repo.path / "sub")).resolve("main")


def test_git_that_runs_too_long_is_stopped(tmp_path, monkeypatch):
    slow_git = tmp_path / "git"
    slow_git.write_text("#!/bin/sh\nexec sleep 30\n")
    slow_git.chmod(0o755)
    monkeypatch.setattr(git.shutil, "which", lambda name: str(slow_git))

    with pytest.raises(GitError, match="timed out"):
        GitRepository(str(tmp_path), deadline=time.monotonic() + 0.2).resolve("main")


def test_git_output_over_limit_is_rejected(tmp_path, monkeypatch):
    repo = make_repo(tmp_path)
    head = repo.commit("one", {"a.txt": "1"})
    monkeypatch.setattr(git, "MAX_OUTPUT_BYTES", 16)

    with pytest.raises(GitError, match="exceeds"):
        GitRepository(str(repo.path)).commits(head, None, 10)
