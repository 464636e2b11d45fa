"""Turning the `refs` of a request into the commits and head commits a release records.

Repositories and previous head commits are looked up in the read models
first. git runs afterwards, outside the read transaction, because it may
take seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from api.git import GitError, GitRepository, local_path
from api.services import Queries
from domain.application import UNSET, ReleaseChanges
from domain.commits import check_commits
from domain.errors import InvalidFieldError
from domain.refs import check_refs
from domain.repository import Repository
from projections.database import Row

logger = logging.getLogger(__name__)

# Commits read from git when no previous commit is known: sentry-cli's
# default --initial-depth for local history.
INITIAL_DEPTH = 20
MAX_RANGE_COMMITS = 10_000
# Time all git calls of one request may take together, below gunicorn's
# default worker timeout of 30 s.
GIT_TIME_LIMIT_SECONDS = 20


@dataclass(frozen=True)
class PlannedRef:
    """A ref whose repository exists, with what git needs to resolve it."""

    index: int
    repository: str
    commit: str
    previous_commit: str | None
    git_path: str | None
    previous_head_commit: str | None


def plan_refs(
    body: dict[str, Any],
    queries: Queries,
    org_id: str,
    version: str,
    project_ids: Sequence[UUID | str],
) -> list[PlannedRef] | None:
    """Match the body's `refs` with repositories, or return None when the body has none.

    `project_ids` are the projects the request links. The release's
    linked projects count too when finding a previous release.
    """
    project_ids = [str(project_id) for project_id in project_ids]
    if body.get("refs") is None:
        return None
    refs = check_refs(body["refs"])
    release, linked = queries.releases.get_linked(org_id, version)
    if release is not None:
        project_ids = sorted({*project_ids, *linked})
    return [_plan(queries, org_id, index, ref, release, project_ids)
            for index, ref in enumerate(refs)]


def _plan(
    queries: Queries,
    org_id: str,
    index: int,
    ref: dict[str, Any],
    release: Row | None,
    project_ids: Sequence[str],
) -> PlannedRef:
    repository = queries.commits.repository(org_id, ref["repository"])
    if repository is None:
        raise InvalidFieldError(
            "refs",
            f"refs[{index}].repository: unknown repository {ref['repository']!r}. Register it"
            " with POST /api/0/organizations/{org}/repos/ first.",
        )
    git_path = local_path(repository["url"]) if repository["provider"] == "git" else None
    previous_head = None
    if git_path is not None and ref["previous_commit"] is None:
        repository_id = str(Repository.create_id(UUID(org_id), repository["name"]))
        previous_head = queries.commits.previous_head_commit(
            org_id, repository_id, project_ids, release
        )
    return PlannedRef(
        index, repository["name"], ref["commit"], ref["previous_commit"], git_path,
        previous_head,
    )


def apply_refs(changes: ReleaseChanges, planned: list[PlannedRef] | None) -> None:
    """Set the head commits, and the commits unless the request lists them itself."""
    if planned is None:
        return
    resolve = changes.commits is UNSET
    deadline = time.monotonic() + GIT_TIME_LIMIT_SECONDS
    commits: list[dict[str, Any]] = []
    head_commits = []
    for ref in planned:
        if ref.git_path is not None and resolve:
            head, found = _read_git(ref, GitRepository(ref.git_path, deadline))
        else:
            head = {"repository": ref.repository, "commit": ref.commit,
                    "previous_commit": ref.previous_commit}
            found = [{"id": ref.commit, "repository": ref.repository}]
        head_commits.append(head)
        commits.extend(found)
    changes.head_commits = head_commits
    if resolve:
        changes.commits = _checked(commits)


def _read_git(
    ref: PlannedRef, repository: GitRepository
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return the head commit and the commits after the previous one, read with git."""
    try:
        end = repository.resolve(ref.commit)
        start = repository.resolve(ref.previous_commit) if ref.previous_commit else None
    except GitError as error:
        raise InvalidFieldError("refs", f"refs[{ref.index}]: {error}") from None
    if start is None and ref.previous_head_commit is not None:
        # A head commit of an earlier release that this repository lacks
        # leaves only the initial depth to go by.
        try:
            start = repository.resolve(ref.previous_head_commit)
        except GitError as error:
            logger.warning(
                "previous head commit not found in git repository",
                extra={"repository": ref.repository, "commit": ref.previous_head_commit,
                       "error": str(error)},
            )
    limit = MAX_RANGE_COMMITS + 1 if start else INITIAL_DEPTH
    try:
        found = repository.commits(end, start, limit)
    except GitError as error:
        raise InvalidFieldError("refs", f"refs[{ref.index}]: {error}") from None
    if len(found) > MAX_RANGE_COMMITS:
        raise InvalidFieldError(
            "refs",
            f"refs[{ref.index}]: {start}..{end} contains more than {MAX_RANGE_COMMITS} commits."
            " Send a narrower range.",
        )
    for commit in found:
        commit["repository"] = ref.repository
    head = {"repository": ref.repository, "commit": end, "previous_commit": start}
    return head, found


def _checked(commits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    try:
        return check_commits(commits)
    except InvalidFieldError as error:
        raise InvalidFieldError(
            "refs", f"The commits the refs name are invalid: {error.message}"
        ) from None
