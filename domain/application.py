"""The ReleaseLedger application: commands that load, act on and save aggregates.

Every command returns an Outcome carrying the ledger position of the last
event it recorded, so a reader can wait until the read models reach it.
"""

from __future__ import annotations

import hashlib
import random
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    Recording,
)
from eventsourcing.domain import Aggregate, DomainEvent
from eventsourcing.persistence import IntegrityError, JSONTranscoder

from domain.cause import Cause, CauseAsDict
from domain.directory import (
    ROLES,
    SCOPES,
    ApiToken,
    Member,
    Organization,
    Project,
    Team,
    User,
)
from domain.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidFieldError,
    InvalidRequestError,
    LedgerError,
    NotFoundError,
)
from domain.file_commands import ReleaseFileCommands
from domain.issue_commands import IssueCommands
from domain.release import Release, check_version
from domain.repository import (
    Repository,
    check_provider,
    check_repository_name,
    check_repository_url,
)

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")
TOKEN_PREFIX = "sntryu_"
MAX_SAVE_ATTEMPTS = 5

T = TypeVar("T", bound=Aggregate)
# What a multi-aggregate action returns: the aggregate the caller asked
# about, whether it is new, and the other aggregates to save with it.
Acted = tuple[Aggregate, bool, list[Aggregate]]


@dataclass
class Outcome(Generic[T]):
    """What a command did: the aggregate, whether it is new, and the last position recorded."""

    aggregate: T
    position: int | None
    created: bool = False


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass
class ReleaseChanges:
    """Fields a create or update request sets; UNSET fields are left alone."""

    ref: Any = UNSET
    url: Any = UNSET
    owner_id: Any = UNSET
    date_started: Any = UNSET
    date_released: Any = UNSET
    status: Any = UNSET
    commits: Any = UNSET
    head_commits: Any = UNSET
    project_ids: list[UUID] = field(default_factory=list)


def hash_token(secret: str) -> str:
    """Return the SHA-256 hex digest under which a token's secret is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_slug(kind: str, slug: str) -> str:
    if not isinstance(slug, str) or not SLUG_PATTERN.match(slug):
        raise InvalidFieldError(
            "slug",
            f"Invalid {kind} slug {slug!r}: use 1 to 50 lower-case letters, digits, "
            "'-' or '_', starting with a letter or digit.",
        )
    return slug


def check_email(email: str) -> str:
    if not isinstance(email, str) or not EMAIL_PATTERN.match(email):
        raise InvalidFieldError("email", f"Invalid email address {email!r}.")
    return email


def _mutate(aggregate: Any, events: Iterable[DomainEvent]) -> Any:
    """Apply `events` to `aggregate` in order and return the result.

    The library's default projector checks each event against a runtime
    protocol, which on Python 3.11 lists the protocol's attributes again.
    """
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class ReleaseLedger(IssueCommands, ReleaseFileCommands, Application):
    """Records releases and the directory they belong to as events."""

    name = "ReleaseLedger"

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(CauseAsDict())

    # Directory commands.

    def create_user(self, email: str, is_superuser: bool, cause: Cause) -> Outcome[User]:
        user = User(email=check_email(email), is_superuser=is_superuser, cause=cause)
        return self._save_new(user, f"A user with email {email!r} already exists.")

    def create_organization(
        self, slug: str, name: str | None, open_membership: bool, cause: Cause
    ) -> Outcome[Organization]:
        check_slug("organization", slug)
        organization = Organization(
            slug=slug, name=name or slug, open_membership=open_membership, cause=cause
        )
        return self._save_new(organization, f"An organization with slug {slug!r} already exists.")

    def create_team(
        self, org_slug: str, slug: str, name: str | None, cause: Cause
    ) -> Outcome[Team]:
        organization = self.get_organization(org_slug)
        check_slug("team", slug)
        team = Team(org_id=organization.id, slug=slug, name=name or slug, cause=cause)
        return self._save_new(team, f"Team {slug!r} already exists in {org_slug!r}.")

    def create_project(
        self, org_slug: str, slug: str, name: str | None, team_slugs: Sequence[str], cause: Cause
    ) -> Outcome[Project]:
        organization = self.get_organization(org_slug)
        check_slug("project", slug)
        team_ids = [self.get_team(organization.id, team_slug).id for team_slug in team_slugs]
        project = Project(
            org_id=organization.id, slug=slug, name=name or slug, team_ids=team_ids, cause=cause
        )
        project.rotate_hook_token(secrets.token_hex(32), cause)
        return self._save_new(project, f"Project {slug!r} already exists in {org_slug!r}.")

    def rotate_hook_token(self, project_id: UUID, cause: Cause) -> Outcome[Project]:
        """Give a project a new release-hook secret, invalidating URLs signed with the old one."""
        project = self._get_or_none(project_id)
        if project is None:
            raise NotFoundError("Project not found.")
        project.rotate_hook_token(secrets.token_hex(32), cause)
        return Outcome(project, self._save(project))

    def hook_token(self, project_id: UUID, cause: Cause) -> str:
        """Return the project's release-hook secret, creating one for projects without."""
        project = self._get_or_none(project_id)
        if project is None:
            raise NotFoundError("Project not found.")
        if project.hook_token is None:
            project = self.rotate_hook_token(project_id, cause).aggregate
        return project.hook_token

    def add_member(
        self,
        org_slug: str,
        email: str,
        role: str | None,
        team_slugs: Sequence[str],
        cause: Cause,
    ) -> Outcome[Member]:
        """Make a user a member, or add teams and change the role of an existing member."""
        organization = self.get_organization(org_slug)
        user = self.get_user(email)
        if role is not None and role not in ROLES:
            raise InvalidFieldError(
                "role", f"Invalid role {role!r}: use one of {', '.join(ROLES)}."
            )
        team_ids = [self.get_team(organization.id, team_slug).id for team_slug in team_slugs]

        def act() -> tuple[Member, bool]:
            member, created = self._get_or_none(Member.create_id(organization.id, user.id)), False
            if member is None:
                member = Member(
                    org_id=organization.id, user_id=user.id, role=role or "member", cause=cause
                )
                created = True
            elif role is not None and role != member.role:
                member.change_role(role, cause)
            for team_id in team_ids:
                if team_id not in member.team_ids:
                    member.join_team(team_id, cause)
            return member, created

        return self._save_with_retries(act)

    def create_token(
        self,
        cause: Cause,
        *,
        user_email: str | None = None,
        org_slug: str | None = None,
        scopes: Sequence[str] = (),
        label: str = "",
    ) -> tuple[str, Outcome[ApiToken]]:
        """Create a token for a user or an organization; return its secret and the outcome.

        The secret is returned only here: the ledger stores its hash.
        """
        if (user_email is None) == (org_slug is None):
            raise InvalidRequestError("A token belongs to exactly one user or one organization.")
        for scope in scopes:
            if scope not in SCOPES:
                raise InvalidFieldError(
                    "scopes", f"Invalid scope {scope!r}; valid scopes: {', '.join(SCOPES)}."
                )
        user_id = self.get_user(user_email).id if user_email is not None else None
        org_id = self.get_organization(org_slug).id if org_slug is not None else None
        secret = TOKEN_PREFIX + secrets.token_hex(32)
        token = ApiToken(
            token_hash=hash_token(secret),
            user_id=user_id,
            org_id=org_id,
            scopes=sorted(set(scopes)),
            label=label,
            cause=cause,
        )
        return secret, self._save_new(token, "Token collision; try again.")

    def revoke_token(self, secret: str, cause: Cause) -> Outcome[ApiToken]:
        token = self._get_or_none(ApiToken.create_id(hash_token(secret)))
        if token is None:
            raise NotFoundError("Token not found.")
        if token.revoked:
            return Outcome(token, None)
        token.revoke(cause)
        return Outcome(token, self._save(token))

    # Directory lookups by natural key.

    def get_organization(self, slug: str) -> Organization:
        organization = self._get_or_none(Organization.create_id(slug))
        if organization is None:
            raise NotFoundError(f"Organization {slug!r} not found.")
        return organization

    def get_team(self, org_id: UUID, slug: str) -> Team:
        team = self._get_or_none(Team.create_id(org_id, slug))
        if team is None:
            raise NotFoundError(f"Team {slug!r} not found.")
        return team

    def get_user(self, email: str) -> User:
        user = self._get_or_none(User.create_id(email))
        if user is None:
            raise NotFoundError(f"User {email!r} not found.")
        return user

    def is_member(self, org_id: UUID, user_id: UUID) -> bool:
        return Member.create_id(org_id, user_id) in self.repository

    # Release commands.

    def create_release(
        self, org_id: UUID, version: str, changes: ReleaseChanges, cause: Cause
    ) -> Outcome[Release]:
        """Create a release, or add projects and a status to an existing one.

        Outcome.created is true when the release is new (or deleted before)
        or gains a project; ref, url, owner and dates of an existing release
        are left alone, as only an update changes them. Commits and head
        commits replace those of an existing release, as an update would.
        """
        check_version(version)
        release_id = Release.create_id(org_id, version)
        # Most creates are of new versions, so the first attempt saves without
        # loading. Should the version exist, the save fails on its first event
        # and the next attempt loads it. A request that a new release would
        # reject may suit an existing one, so it is checked after loading too.
        assume_new = True

        def act() -> tuple[Any, ...]:
            nonlocal assume_new
            named, repositories = self._name_repositories(org_id, changes, cause)
            if assume_new:
                assume_new = False
                try:
                    release = self._start_release(org_id, version, None, named, cause)
                except LedgerError:
                    pass
                else:
                    return release, True, *repositories
            release = self._get_or_none(release_id)
            if release is None or release.deleted:
                release = self._start_release(org_id, version, release, named, cause)
                return release, True, *repositories
            gained = self._add_projects(release, changes.project_ids, cause)
            self._apply_changes(release, ReleaseChanges(
                status=changes.status, commits=named.commits, head_commits=named.head_commits
            ), cause)
            return release, gained, *repositories

        return self._save_with_retries(act, optimistic=True)

    def update_release(
        self, org_id: UUID, version: str, changes: ReleaseChanges, cause: Cause
    ) -> Outcome[Release]:
        """Apply the set fields of `changes` to an existing release."""

        def act() -> tuple[Any, ...]:
            release = self.get_release(org_id, version)
            named, repositories = self._name_repositories(org_id, changes, cause)
            self._add_projects(release, changes.project_ids, cause)
            self._apply_changes(release, named, cause)
            return release, False, *repositories

        return self._save_with_retries(act)

    def delete_release(self, org_id: UUID, version: str, cause: Cause) -> Outcome[Release]:
        def act() -> tuple[Release, bool]:
            release = self.get_release(org_id, version)
            release.check_deletable()
            release.delete(cause)
            return release, False

        return self._save_with_retries(act)

    def record_deploy(
        self,
        org_id: UUID,
        version: str,
        deploy: dict[str, Any],
        project_ids: Sequence[UUID],
        cause: Cause,
    ) -> Outcome[Release]:
        """Record a deploy; without `project_ids` it applies to all the release's projects."""

        def act() -> tuple[Release, bool]:
            release = self.get_release(org_id, version)
            release.record_deploy(
                project_ids=list(dict.fromkeys(project_ids or release.project_ids)),
                cause=cause,
                **deploy,
            )
            return release, True

        return self._save_with_retries(act)

    def get_release(self, org_id: UUID, version: str) -> Release:
        release = self._get_or_none(Release.create_id(org_id, version))
        if release is None or release.deleted:
            raise NotFoundError(f"Release {version!r} not found.")
        return release

    def _start_release(
        self,
        org_id: UUID,
        version: str,
        deleted: Release | None,
        changes: ReleaseChanges,
        cause: Cause,
    ) -> Release:
        if not changes.project_ids:
            raise InvalidFieldError("projects", "This field is required.")
        fields = {
            "ref": _value_or(changes.ref, None),
            "url": _value_or(changes.url, None),
            "owner_id": _value_or(changes.owner_id, None),
            "date_started": _value_or(changes.date_started, None),
        }
        if deleted is None:
            release = Release(org_id=org_id, version_str=version, cause=cause, **fields)
        else:
            release = deleted
            release.recreate(cause=cause, **fields)
        self._add_projects(release, changes.project_ids, cause)
        self._apply_changes(release, ReleaseChanges(
            date_released=changes.date_released, status=changes.status, commits=changes.commits,
            head_commits=changes.head_commits,
        ), cause)
        return release

    @staticmethod
    def _add_projects(release: Release, project_ids: Sequence[UUID], cause: Cause) -> bool:
        new_ids = [project_id for project_id in dict.fromkeys(project_ids)
                   if project_id not in release.project_ids]
        if new_ids:
            release.add_projects(new_ids, release.date_released, cause)
        return bool(new_ids)

    @staticmethod
    def _apply_changes(release: Release, changes: ReleaseChanges, cause: Cause) -> None:
        described = {
            "ref": _value_or(changes.ref, release.ref),
            "url": _value_or(changes.url, release.url),
            "owner_id": _value_or(changes.owner_id, release.owner_id),
            "date_started": _value_or(changes.date_started, release.date_started),
        }
        current = {
            "ref": release.ref,
            "url": release.url,
            "owner_id": release.owner_id,
            "date_started": release.date_started,
        }
        if described != current:
            release.update(cause=cause, **described)
        if changes.date_released not in (UNSET, None):
            release.set_date_released(changes.date_released, cause)
        if changes.commits is not UNSET and changes.commits != release.commits:
            release.set_commits(changes.commits, cause)
        if changes.head_commits is not UNSET and changes.head_commits != release.head_commits:
            release.set_head_commits(changes.head_commits, cause)
        if changes.status is not UNSET:
            release.set_status(changes.status, cause)

    # Repository commands.

    def find_repository(self, org_id: UUID, name: str) -> Repository | None:
        """Return the organization's repository of this name, in any letter case."""
        return self._get_or_none(Repository.create_id(org_id, name))

    def register_repository(
        self, org_id: UUID, name: str, url: Any, provider: Any, cause: Cause
    ) -> Outcome[Repository]:
        """Create a repository, or replace the URL and provider of an existing one.

        Outcome.created is true only for a new repository; an existing one
        keeps the spelling of its name.
        """
        check_repository_name("name", name)
        url = check_repository_url(url)
        provider = check_provider(provider)

        def act() -> tuple[Repository, bool]:
            repository = self._get_or_none(Repository.create_id(org_id, name))
            if repository is None:
                return Repository(
                    org_id=org_id, name=name, url=url, provider=provider, cause=cause
                ), True
            if (repository.url, repository.provider) != (url, provider):
                repository.update(url, provider, cause)
            return repository, False

        return self._save_with_retries(act)

    def _name_repositories(
        self, org_id: UUID, changes: ReleaseChanges, cause: Cause
    ) -> tuple[ReleaseChanges, list[Repository]]:
        """Spell each commit's and head commit's repository as the repository is named.

        Returns the changes with those names and the repositories that
        commits name for the first time, to be saved with the release.
        Head commits may name only existing repositories.
        """
        repositories: dict[str, Repository] = {}
        created: list[Repository] = []

        def name_of(name: str, create: bool) -> str:
            key = name.lower()
            if key not in repositories:
                repository = self._get_or_none(Repository.create_id(org_id, name))
                if repository is None:
                    if not create:
                        raise InvalidFieldError("refs", f"Unknown repository {name!r}.")
                    repository = Repository(
                        org_id=org_id, name=name, url=None, provider=None, cause=cause
                    )
                    created.append(repository)
                repositories[key] = repository
            return repositories[key].name

        named = changes
        if changes.commits is not UNSET:
            named = replace(named, commits=[
                _with_repository(commit, name_of(commit["repository"], True))
                for commit in changes.commits
            ])
        if changes.head_commits is not UNSET:
            named = replace(named, head_commits=[
                _with_repository(head, name_of(head["repository"], False))
                for head in changes.head_commits
            ])
        return named, created

    # Saving.

    def _get_or_none(self, aggregate_id: UUID) -> Any:
        try:
            return self.repository.get(aggregate_id, projector_func=_mutate)
        except AggregateNotFoundError:
            return None

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """Record the pending events of aggregates in one transaction, as `Application.save` does.

        Aggregates alone skip the library's check of each argument against
        runtime protocols. On Python 3.11 each check lists the protocol's
        attributes again, about 8 % of a release command's CPU time.
        """
        if kwargs or not all(isinstance(obj, Aggregate) for obj in objs):
            return super().save(*objs, **kwargs)
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for aggregate in objs:
            processing_event.events.extend(aggregate.collect_events())
            processing_event.aggregates[aggregate.id] = aggregate
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        self.notify(processing_event.events)
        return recordings

    def _save(self, *aggregates: Aggregate) -> int | None:
        recordings = self.save(*aggregates)
        return recordings[-1].notification.id if recordings else None

    def _save_new(self, aggregate: T, message: str) -> Outcome[T]:
        try:
            return Outcome(aggregate, self._save(aggregate), created=True)
        except IntegrityError:
            raise AlreadyExistsError(message) from None

    def _save_with_retries(
        self, act: Callable[[], tuple[Any, ...]], *, optimistic: bool = False
    ) -> Outcome[Any]:
        """Run `act` on freshly loaded aggregates and save, retrying lost races.

        `act` returns the aggregate, whether it is new, and any further
        aggregates to save first in the same transaction. A concurrent
        writer that saved first makes the save raise IntegrityError; the
        command then runs again on the new state. Issues that newly set
        commits fix are saved in the same transaction. With `optimistic`,
        the first attempt did not load the aggregate, so its failure is
        retried at once.
        """
        for attempt in range(MAX_SAVE_ATTEMPTS):
            aggregate, created, *others = act()
            resolved = self._resolve_fixed_issues(aggregate)
            try:
                return Outcome(
                    aggregate, self._save(*others, aggregate, *resolved), created=created
                )
            except IntegrityError:
                if attempt > 0 or not optimistic:
                    time.sleep(random.uniform(0.005, 0.02) * (attempt + 1))
        raise ConflictError(
            "The record was changed by concurrent requests; retry the request."
        )

    def _save_together_with_retries(self, act: Callable[[], Acted]) -> Outcome[Any]:
        """Run `act` on freshly loaded aggregates and save all it returns in one transaction.

        A concurrent writer that saved any of them first makes the save
        raise IntegrityError; the action then runs again on the new state.
        """
        for attempt in range(MAX_SAVE_ATTEMPTS):
            aggregate, created, others = act()
            try:
                return Outcome(aggregate, self._save(aggregate, *others), created=created)
            except IntegrityError:
                time.sleep(random.uniform(0.005, 0.02) * (attempt + 1))
        raise ConflictError(
            "The record was changed by concurrent requests; retry the request."
        )


def _value_or(value: Any, default: Any) -> Any:
    return default if value is UNSET else value


def _with_repository(item: dict[str, Any], name: str) -> dict[str, Any]:
    return item if item["repository"] == name else {**item, "repository": name}
