"""Commands on issues, and the resolution of issues by the commits of a release.

IssueCommands is mixed into ReleaseLedger and uses its `_get_or_none`,
`get_release` and `_save_together_with_retries`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.cause import Cause
from domain.errors import AlreadyExistsError, InvalidFieldError, NotFoundError
from domain.issue import (
    Issue,
    check_short_id,
    check_status,
    check_title,
    find_fixing_commits,
)
from domain.release import Release

if TYPE_CHECKING:
    from domain.application import Acted, Outcome


class IssueCommands:
    """Create, change and delete issues; resolve the issues that commits fix."""

    _get_or_none: Callable[[UUID], Any]
    get_release: Callable[[UUID, str], Release]
    _save_together_with_retries: Callable[[Callable[[], Acted]], Outcome[Any]]

    def create_issue(
        self,
        org_id: UUID,
        project_id: UUID,
        short_id: str,
        title: str,
        first_release: str | None,
        cause: Cause,
    ) -> Outcome[Issue]:
        """Create an issue, or recreate a deleted one with the same short id.

        The first release must be a release of the organization linked to
        the issue's project. It records NewIssueAdded in the same
        transaction, so it knows which issues refer to it.
        """
        short_id = check_short_id(short_id)
        check_title(title)

        def act() -> Acted:
            issue = self._get_or_none(Issue.create_id(org_id, short_id))
            if issue is not None and not issue.deleted:
                raise AlreadyExistsError(
                    f"Issue {short_id!r} already exists in this organization."
                )
            release = self._first_release(org_id, project_id, first_release)
            if issue is None:
                issue = Issue(
                    org_id=org_id,
                    short_id=short_id,
                    project_id=project_id,
                    title=title,
                    first_release=first_release,
                    cause=cause,
                )
            else:
                issue.recreate(project_id, title, first_release, cause)
            if release is None:
                return issue, True, []
            release.add_new_issue(issue.id, project_id, cause)
            return issue, True, [release]

        return self._save_together_with_retries(act)

    def change_issue_status(
        self, org_id: UUID, project_id: UUID, short_id: str, status: str, cause: Cause
    ) -> Outcome[Issue]:
        check_status(status)

        def act() -> Acted:
            issue = self.get_issue(org_id, project_id, short_id)
            issue.set_status(status, cause)
            return issue, False, []

        return self._save_together_with_retries(act)

    def delete_issue(
        self, org_id: UUID, project_id: UUID, short_id: str, cause: Cause
    ) -> Outcome[Issue]:
        """Delete an issue; its first release records NewIssueRemoved in the same transaction."""

        def act() -> Acted:
            issue = self.get_issue(org_id, project_id, short_id)
            issue.delete(cause)
            release = self._get_or_none(issue.first_release_id) if issue.first_release else None
            if release is None or issue.id not in release.new_issue_ids:
                return issue, False, []
            release.remove_new_issue(issue.id, cause)
            return issue, False, [release]

        return self._save_together_with_retries(act)

    def get_issue(self, org_id: UUID, project_id: UUID, short_id: str) -> Issue:
        """Return a live issue of the project; NotFoundError for any other short id."""
        issue = self._get_or_none(Issue.create_id(org_id, short_id.upper()))
        if issue is None or issue.deleted or issue.project_id != project_id:
            raise NotFoundError(f"Issue {short_id!r} not found.")
        return issue

    def _resolve_fixed_issues(self, aggregate: Aggregate) -> list[Aggregate]:
        """Resolve the issues that a release's new commits fix, and return them unsaved.

        Called on every save of a release command: when the release has a
        pending CommitsSet event, each live issue of its organization that a
        commit message fixes (`Fixes WEB-12`) records ResolvedInRelease, so
        both are saved in one transaction. Unknown short ids are skipped.
        """
        if not isinstance(aggregate, Release):
            return []
        commits_set = [e for e in aggregate.pending_events if isinstance(e, Release.CommitsSet)]
        if not commits_set:
            return []
        cause = commits_set[-1].cause
        resolved: list[Aggregate] = []
        for short_id, commit_id in find_fixing_commits(commits_set[-1].commits).items():
            issue = self._get_or_none(Issue.create_id(aggregate.org_id, short_id))
            if issue is None or issue.deleted:
                continue
            if issue.resolve_by_commit(aggregate, commit_id, cause):
                resolved.append(issue)
        return resolved

    def _first_release(
        self, org_id: UUID, project_id: UUID, version: str | None
    ) -> Release | None:
        if version is None:
            return None
        try:
            release = self.get_release(org_id, version)
        except NotFoundError:
            raise InvalidFieldError(
                "firstRelease", f"Release {version!r} not found in this organization."
            ) from None
        # Release commands receive project ids as strings from the API, so
        # compare the text forms.
        if str(project_id) not in {str(linked) for linked in release.project_ids}:
            raise InvalidFieldError(
                "firstRelease", f"Release {version!r} is not linked to the issue's project."
            )
        return release
