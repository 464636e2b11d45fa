"""The Release aggregate: one per (organization, version), across all its lifetimes."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.cause import Cause
from domain.directory import ledger_uuid
from domain.errors import InvalidRequestError

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
        self.deleted = False

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
