"""The Release aggregate: one per (organization, version), across all its lifetimes."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.cause import Cause
from domain.directory import ledger_uuid
from domain.errors import (
    AlreadyExistsError,
    InvalidRequestError,
    NotFoundError,
    ReferencedError,
)

MAX_VERSION_LENGTH = 200
RESERVED_VERSIONS = (".", "..", "latest")
STATUSES = ("open", "archived")


def check_version(version: Any) -> str:
    """Return `version` unchanged if it can name a release, else raise InvalidRequestError.

    A version must be addressable as one URL path segment and must print on
    one line, so slashes, backslashes and control characters are rejected.
    Surrounding whitespace is rejected rather than trimmed, because a
    trimmed version would silently name a different release.
    """
    if not isinstance(version, str):
        raise InvalidRequestError("Invalid version: a version must be a string.")
    if not version:
        raise InvalidRequestError("Invalid version '': a version cannot be empty.")
    if len(version) > MAX_VERSION_LENGTH:
        raise InvalidRequestError(
            f"Invalid version {version[:40]!r}...: a version has at most "
            f"{MAX_VERSION_LENGTH} characters, this one has {len(version)}."
        )
    if version.strip() != version:
        raise InvalidRequestError(
            f"Invalid version {version!r}: a version cannot start or end with whitespace."
        )
    if any(char in "/\\" or ord(char) < 32 or ord(char) == 127 for char in version):
        raise InvalidRequestError(
            f"Invalid version {version!r}: a version cannot contain '/', '\\' "
            "or control characters such as line feeds and tabs."
        )
    if version.lower() in RESERVED_VERSIONS:
        raise InvalidRequestError(f"Invalid version {version!r}: this name is reserved.")
    return version


class Release(Aggregate):
    """A release of an organization, linked to projects, with commits and deploys.

    Deleting a release records Deleted; creating the same version again
    records Recreated on the same aggregate, so its history keeps every
    lifetime in order.
    """

    @staticmethod
    def create_id(org_id: UUID, version_str: str) -> UUID:
        return ledger_uuid("release", str(org_id), version_str)

    @event("Created")
    def __init__(
        self,
        org_id: UUID,
        version_str: str,
        ref: str | None,
        url: str | None,
        owner_id: UUID | None,
        date_started: datetime | None,
        cause: Cause,
    ) -> None:
        self.org_id = org_id
        self.version_str = version_str
        self._start_lifetime(ref, url, owner_id, date_started)

    def _start_lifetime(
        self,
        ref: str | None,
        url: str | None,
        owner_id: UUID | None,
        date_started: datetime | None,
    ) -> None:
        self.ref = ref
        self.url = url
        self.owner_id = owner_id
        self.date_started = date_started
        self.date_released: datetime | None = None
        self.status = "open"
        self.project_ids: list[UUID] = []
        self.commits: list[dict[str, Any]] = []
        self.head_commits: list[dict[str, Any]] = []
        self.deleted = False
        self.new_issue_ids: list[UUID] = []
        self.files: dict[str, dict[str, Any]] = {}

    @event("Recreated")
    def recreate(
        self,
        ref: str | None,
        url: str | None,
        owner_id: UUID | None,
        date_started: datetime | None,
        cause: Cause,
    ) -> None:
        self._start_lifetime(ref, url, owner_id, date_started)

    class ProjectAdded(Aggregate.Event):
        """Projects linked to the release; `date_released` is the release's date at that moment.

        Version 1 linked one `project_id` per event. Version 2 links every
        project of one request in one event, as Released and DeployRecorded
        already name their projects.
        """

        class_version = 2
        project_ids: list[UUID]
        date_released: datetime | None
        cause: Cause

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["project_ids"] = [state.pop("project_id")]

    @event(ProjectAdded)
    def add_projects(
        self, project_ids: list[UUID], date_released: datetime | None, cause: Cause
    ) -> None:
        self.project_ids.extend(project_ids)

    @event("Released")
    def release(
        self,
        date_released: datetime,
        previous_date_released: datetime | None,
        project_ids: list[UUID],
        cause: Cause,
    ) -> None:
        """Set the release date; `project_ids` are the projects linked at that moment."""
        self.date_released = date_released

    @event("Updated")
    def update(
        self,
        ref: str | None,
        url: str | None,
        owner_id: UUID | None,
        date_started: datetime | None,
        cause: Cause,
    ) -> None:
        """Replace the descriptive fields; the event carries all four new values."""
        self.ref = ref
        self.url = url
        self.owner_id = owner_id
        self.date_started = date_started

    @event("CommitsSet")
    def set_commits(self, commits: list[dict[str, Any]], cause: Cause) -> None:
        """Replace the whole commit list."""
        self.commits = list(commits)

    @event("HeadCommitsSet")
    def set_head_commits(self, head_commits: list[dict[str, Any]], cause: Cause) -> None:
        """Replace the head commit per repository, each `{repository, commit, previous_commit}`."""
        self.head_commits = list(head_commits)

    @event("Archived")
    def archive(self, cause: Cause) -> None:
        self.status = "archived"

    @event("Restored")
    def restore(self, cause: Cause) -> None:
        self.status = "open"

    @event("DeployRecorded")
    def record_deploy(
        self,
        environment: str,
        name: str | None,
        url: str | None,
        date_started: datetime | None,
        date_finished: datetime,
        project_ids: list[UUID],
        cause: Cause,
    ) -> None:
        """Record a deploy of this release to an environment."""

    @event("Deleted")
    def delete(self, cause: Cause) -> None:
        self.deleted = True

    @event("NewIssueAdded")
    def add_new_issue(self, issue_id: UUID, project_id: UUID, cause: Cause) -> None:
        """Record that an issue of `project_id` was first seen in this release."""
        self.new_issue_ids.append(issue_id)

    @event("NewIssueRemoved")
    def remove_new_issue(self, issue_id: UUID, cause: Cause) -> None:
        """Record that an issue first seen in this release was removed."""
        self.new_issue_ids = [known for known in self.new_issue_ids if known != issue_id]

    def check_deletable(self) -> None:
        """Raise ReferencedError while issues name this release as their first release."""
        if self.new_issue_ids:
            count = len(self.new_issue_ids)
            raise ReferencedError(
                f"Release {self.version_str!r} is referenced by issues: {count} "
                f"{'issue has' if count == 1 else 'issues have'} it as first release."
                " Delete those issues first."
            )

    @event("FileAdded")
    def add_file(
        self,
        file_id: UUID,
        name: str,
        dist: str | None,
        headers: dict[str, str],
        size: int,
        sha1: str,
        cause: Cause,
    ) -> None:
        """Record a file uploaded with the release; its bytes are the blob `sha1`."""
        self.files[str(file_id)] = {"name": name, "dist": dist, "sha1": sha1}

    @event("FileUpdated")
    def update_file(self, file_id: UUID, name: str, dist: str | None, cause: Cause) -> None:
        if str(file_id) in self.files:
            self.files[str(file_id)].update(name=name, dist=dist)

    @event("FileRemoved")
    def remove_file(self, file_id: UUID, cause: Cause) -> None:
        self.files.pop(str(file_id), None)

    def check_file_name_free(
        self, name: str, dist: str | None, file_id: UUID | None = None
    ) -> None:
        """Raise AlreadyExistsError when another file has this name and dist."""
        for other_id, other in self.files.items():
            if (other["name"], other["dist"]) == (name, dist) and other_id != str(file_id):
                in_dist = f" in dist {dist!r}" if dist is not None else ""
                raise AlreadyExistsError(
                    f"A file named {name!r}{in_dist} already exists in release"
                    f" {self.version_str!r}."
                )

    def get_file(self, file_id: UUID) -> dict[str, Any]:
        try:
            return self.files[str(file_id)]
        except KeyError:
            raise NotFoundError("File not found.") from None

    def check_status(self, status: str) -> None:
        if status not in STATUSES:
            raise InvalidRequestError(f"Invalid status {status!r}: use 'open' or 'archived'.")

    def set_status(self, status: str, cause: Cause) -> None:
        """Archive or restore the release when `status` differs from the current one."""
        self.check_status(status)
        if status == self.status:
            return
        if status == "archived":
            self.archive(cause)
        else:
            self.restore(cause)

    def set_date_released(self, date_released: datetime, cause: Cause) -> None:
        """Record Released when the date changes.

        Only the first release date names the linked projects, so each gets
        one RELEASE activity however often the date changes afterwards.
        """
        if date_released == self.date_released:
            return
        first_time = self.date_released is None
        projects = list(self.project_ids) if first_time else []
        self.release(date_released, self.date_released, projects, cause)
