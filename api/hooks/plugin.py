"""The interface between a deploy platform's hook and the ledger's release commands."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

import falcon

from api.refs import apply_refs, plan_refs
from api.services import Services
from domain.application import UNSET, ReleaseChanges
from domain.cause import Cause
from domain.release import check_version


class ReleaseActions:
    """What a hook may do, for one project, as the REST commands would do it.

    Each action is idempotent, so a platform that sends the same call twice
    changes nothing the second time.
    """

    def __init__(self, services: Services, org_id: UUID, project_id: UUID, cause: Cause) -> None:
        self.services = services
        self.org_id = org_id
        self.project_id = project_id
        self.cause = cause
        self.position: int | None = None

    def start(
        self,
        version: str,
        *,
        ref: str | None = None,
        url: str | None = None,
        owner_email: str | None = None,
        date_started: datetime | None = None,
    ) -> None:
        """Create the release if needed and link the project, as POST does."""
        check_version(version)
        changes = ReleaseChanges(project_ids=[self.project_id])
        changes.ref, changes.url, changes.date_started = ref, url, date_started
        changes.owner_id = self._owner_id(owner_email)
        self._record(self.services.ledger.create_release(
            self.org_id, version, changes, self.cause
        ).position)

    def set_commits(self, version: str, commits: list[dict[str, Any]]) -> None:
        """Replace the release's commits, as PUT with `commits` does."""
        changes = ReleaseChanges(commits=commits)
        self._record(self.services.ledger.update_release(
            self.org_id, version, changes, self.cause
        ).position)

    def set_ref(
        self, version: str, repository: str, commit: str, previous_commit: str | None
    ) -> None:
        """Record a head commit and its range, as PUT with `refs` does.

        The repository is created on first use, since a platform's hook
        cannot register one beforehand.
        """
        ledger = self.services.ledger
        if ledger.find_repository(self.org_id, repository) is None:
            ledger.register_repository(self.org_id, repository, None, None, self.cause)
        body = {"refs": [{"repository": repository, "commit": commit,
                          "previousCommit": previous_commit}]}
        with self.services.read("directory", "releases", "commits") as queries:
            planned = plan_refs(body, queries, str(self.org_id), version, [self.project_id])
        changes = ReleaseChanges()
        apply_refs(changes, planned)
        self._record(ledger.update_release(self.org_id, version, changes, self.cause).position)

    def finish(self, version: str, date_released: datetime | None = None) -> None:
        """Set the release date; without one, a release not yet released is released now."""
        release = self.services.ledger.get_release(self.org_id, version)
        if date_released is None:
            date_released = datetime.now(UTC) if release.date_released is None else UNSET
        changes = ReleaseChanges(date_released=date_released)
        self._record(self.services.ledger.update_release(
            self.org_id, version, changes, self.cause
        ).position)

    def _owner_id(self, email: str | None) -> UUID | None:
        if email is None:
            return None
        with self.services.read("directory") as queries:
            user = queries.directory.user_by_email(email)
            if user is None:
                return None
            org_id = str(self.org_id)
            if user["is_superuser"] or queries.directory.member(org_id, user["id"]):
                return UUID(user["id"])
        return None

    def _record(self, position: int | None) -> None:
        if position is not None:
            self.position = position


class HookPlugin(ABC):
    """A deploy platform's hook: reads its request and drives ReleaseActions."""

    name: ClassVar[str]

    @abstractmethod
    def handle(self, req: falcon.Request, actions: ReleaseActions) -> str:
        """Apply the platform's call and return the version of the release it named."""
