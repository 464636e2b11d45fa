"""The Issue aggregate: an error tracker's issue, as far as releases need it.

An issue is named by its short id (`WEB-12`), unique in its organization.
Short ids are case-insensitive and stored in upper case, so `web-12` in a
commit message names the same issue.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.cause import Cause
from domain.directory import ledger_uuid
from domain.errors import InvalidFieldError
from domain.release import Release

ISSUE_STATUSES = ("unresolved", "resolved", "ignored")
MAX_SHORT_ID_LENGTH = 64
MAX_TITLE_LENGTH = 1024

_SHORT_ID = r"[A-Z0-9][A-Z0-9_-]*-[A-Z0-9]+"
SHORT_ID_PATTERN = re.compile(rf"^{_SHORT_ID}$", re.IGNORECASE)
# A keyword, then one or more short ids separated by commas, "and", "&" or
# spaces. The look-behind keeps words such as "prefixes" or "unresolved" out.
FIXES_PATTERN = re.compile(
    rf"(?<![\w-])(?:fix(?:e[sd])?|resolve[sd]?)\b:?\s+"
    rf"({_SHORT_ID}(?:(?:\s*,\s*|\s*&\s*|\s+and\s+|\s+){_SHORT_ID})*)",
    re.IGNORECASE,
)


def check_short_id(short_id: Any) -> str:
    """Return `short_id` in upper case, or raise InvalidFieldError."""
    if not isinstance(short_id, str) or not SHORT_ID_PATTERN.match(short_id):
        raise InvalidFieldError(
            "shortId",
            f"Invalid short id {str(short_id)[:80]!r}: use a project prefix, '-' and a"
            " number or code, for example WEB-12.",
        )
    if len(short_id) > MAX_SHORT_ID_LENGTH:
        raise InvalidFieldError(
            "shortId", f"Ensure this field has no more than {MAX_SHORT_ID_LENGTH} characters."
        )
    return short_id.upper()


def check_title(title: Any) -> str:
    if not isinstance(title, str) or not title.strip():
        raise InvalidFieldError("title", "This field is required.")
    if len(title) > MAX_TITLE_LENGTH:
        raise InvalidFieldError(
            "title", f"Ensure this field has no more than {MAX_TITLE_LENGTH} characters."
        )
    return title


def check_status(status: Any) -> str:
    if status not in ISSUE_STATUSES:
        raise InvalidFieldError(
            "status", f"Invalid status {status!r}: use one of {', '.join(ISSUE_STATUSES)}."
        )
    return status


def find_fixed_short_ids(message: str | None) -> list[str]:
    """Return the short ids that a commit message names as fixed, upper-cased, each once.

    The keywords are fix, fixes, fixed, resolve, resolves and resolved, in
    any letter case, for example "Fixes WEB-12, WEB-14 and API-3".
    """
    if not message:
        return []
    found: dict[str, None] = {}
    for match in FIXES_PATTERN.finditer(message):
        for short_id in re.findall(_SHORT_ID, match.group(1), re.IGNORECASE):
            found[short_id.upper()] = None
    return list(found)


def find_fixing_commits(commits: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Map each short id that the commits fix to the id of the first commit naming it.

    Deploy tools send the newest commit first, so that commit wins.
    """
    fixing: dict[str, str] = {}
    for commit in commits:
        for short_id in find_fixed_short_ids(commit.get("message")):
            fixing.setdefault(short_id, commit["id"])
    return fixing


class Issue(Aggregate):
    """An issue of a project, optionally first seen in a release of that project.

    Deleting an issue records Deleted; creating the same short id again
    records Recreated on the same aggregate.
    """

    @staticmethod
    def create_id(org_id: UUID, short_id: str) -> UUID:
        return ledger_uuid("issue", str(org_id), short_id)

    @event("Created")
    def __init__(
        self,
        org_id: UUID,
        short_id: str,
        project_id: UUID,
        title: str,
        first_release: str | None,
        cause: Cause,
    ) -> None:
        self.org_id = org_id
        self.short_id = short_id
        self._start_lifetime(project_id, title, first_release)

    def _start_lifetime(self, project_id: UUID, title: str, first_release: str | None) -> None:
        self.project_id = project_id
        self.title = title
        self.first_release = first_release
        self.status = "unresolved"
        self.resolved_in_release_id: UUID | None = None
        self.deleted = False

    @property
    def first_release_id(self) -> UUID | None:
        if self.first_release is None:
            return None
        return Release.create_id(self.org_id, self.first_release)

    @event("Recreated")
    def recreate(
        self, project_id: UUID, title: str, first_release: str | None, cause: Cause
    ) -> None:
        self._start_lifetime(project_id, title, first_release)

    @event("StatusChanged")
    def change_status(self, status: str, cause: Cause) -> None:
        self.status = status

    @event("ResolvedInRelease")
    def resolve_in_release(
        self, release_id: UUID, commit_id: str, project_id: UUID, short_id: str, cause: Cause
    ) -> None:
        """Mark the issue resolved by a commit of a release.

        The event repeats the issue's project and short id, so the activity
        read model can describe it without tracking issues.
        """
        self.status = "resolved"
        self.resolved_in_release_id = release_id

    @event("Deleted")
    def delete(self, cause: Cause) -> None:
        self.deleted = True

    def set_status(self, status: str, cause: Cause) -> None:
        """Record StatusChanged when `status` differs from the current one."""
        check_status(status)
        if status != self.status:
            self.change_status(status, cause)

    def resolve_by_commit(self, release: Release, commit_id: str, cause: Cause) -> bool:
        """Resolve the issue in `release`, unless it is already resolved in that release.

        Returns whether an event was recorded.
        """
        if self.status == "resolved" and self.resolved_in_release_id == release.id:
            return False
        self.resolve_in_release(release.id, commit_id, self.project_id, self.short_id, cause)
        return True
