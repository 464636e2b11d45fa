"""Commands on the files uploaded with a release.

ReleaseFileCommands is mixed into ReleaseLedger and uses its `get_release`
and `_save_with_retries`. The files' bytes are not the ledger's concern:
each event names the SHA-1 digest of a blob that the caller stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from domain.cause import Cause
from domain.release import Release

if TYPE_CHECKING:
    from domain.application import Outcome


class ReleaseFileCommands:
    """Add, rename and remove the files of a release."""

    get_release: Callable[[UUID, str], Release]
    _save_with_retries: Callable[[Callable[[], tuple[Release, bool]]], Outcome[Any]]

    def add_release_file(
        self,
        org_id: UUID,
        version: str,
        name: str,
        dist: str | None,
        headers: dict[str, str],
        size: int,
        sha1: str,
        cause: Cause,
    ) -> Outcome[Release]:
        """Record a new file; the outcome's position is the file's public id."""
        file_id = uuid4()

        def act() -> tuple[Release, bool]:
            release = self.get_release(org_id, version)
            release.check_file_name_free(name, dist)
            release.add_file(file_id, name, dist, dict(headers), size, sha1, cause)
            return release, True

        return self._save_with_retries(act)

    def update_release_file(
        self,
        org_id: UUID,
        version: str,
        file_id: UUID,
        name: str,
        dist: str | None,
        cause: Cause,
    ) -> Outcome[Release]:
        """Rename a file or change its dist; the same values record nothing."""

        def act() -> tuple[Release, bool]:
            release = self.get_release(org_id, version)
            current = release.get_file(file_id)
            if (current["name"], current["dist"]) != (name, dist):
                release.check_file_name_free(name, dist, file_id)
                release.update_file(file_id, name, dist, cause)
            return release, False

        return self._save_with_retries(act)

    def remove_release_file(
        self, org_id: UUID, version: str, file_id: UUID, cause: Cause
    ) -> Outcome[Release]:
        def act() -> tuple[Release, bool]:
            release = self.get_release(org_id, version)
            release.get_file(file_id)
            release.remove_file(file_id, cause)
            return release, False

        return self._save_with_retries(act)
