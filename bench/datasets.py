"""Ledgers of a given size, bulk-loaded through the event store.

A data set is one organization, `acme`, without open membership: 50 teams
own 500 projects, ten projects each. The caller's user is a member of ten
teams, so it sees 100 of the 500 projects. Every release belongs to one
project and records ten events, the life of a release as deploy tooling
reports it: Created, ProjectAdded, CommitsSet (three commits), Released
and six DeployRecorded. A ledger of 1,000,000 events therefore holds
100,000 releases.

The aggregates are built in memory and saved a thousand at a time, so each
`ReleaseLedger.save` call appends 10,000 events in one transaction.

The large ledger also holds one release with a long history, HISTORY_EVENTS
events: its creation, its project and Updated events, saved
HISTORY_EVENTS_PER_SAVE at a time.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from domain.application import ReleaseLedger, hash_token
from domain.cause import Cause
from domain.directory import ApiToken, Member, Organization, Project, Team, User
from domain.release import Release

ORG = "acme"
TEAMS = 50
PROJECTS = 500
CALLER_TEAMS = 10
EVENTS_PER_RELEASE = 10
DEPLOYS_PER_RELEASE = 6
RELEASES_PER_SAVE = 1000
ENVIRONMENTS = ("staging", "production", "canary")
CAUSE = Cause("system", "bench", None, "bench")
START = datetime(2020, 1, 1, tzinfo=UTC)
READ_SCOPES = ("org:read", "project:read", "project:releases")
HISTORY_EVENTS = 1000
HISTORY_EVENTS_PER_SAVE = 500
HISTORY_VERSION = "project-000@long-history"


@dataclass(frozen=True)
class Directory:
    """The organization's ids and the secrets of the tokens a load uses."""

    org_id: UUID
    project_ids: tuple[UUID, ...]
    project_slugs: tuple[str, ...]
    visible_project_indexes: frozenset[int]
    reader_token: str
    pipeline_token: str
    auditor_token: str


@dataclass(frozen=True)
class Loaded:
    """What a bulk load wrote, and how long it took."""

    directory: Directory
    releases: int
    events: int
    seconds: float
    history_version: str | None = None


def project_slug(index: int) -> str:
    return f"project-{index:03d}"


def release_version(index: int) -> str:
    return f"{project_slug(index % PROJECTS)}@{index // PROJECTS}.{index % 7}.{index:07d}"


def releases_for(events: int) -> int:
    """Return how many releases make a ledger of about `events` events."""
    return max(events // EVENTS_PER_RELEASE, 1)


def load_directory(ledger: ReleaseLedger) -> Directory:
    """Save the organization, its teams and projects, the caller's user and two tokens."""
    organization = Organization(slug=ORG, name="Acme", open_membership=False, cause=CAUSE)
    teams = [
        Team(org_id=organization.id, slug=f"team-{index:02d}", name=f"Team {index}", cause=CAUSE)
        for index in range(TEAMS)
    ]
    projects = [
        Project(
            org_id=organization.id,
            slug=project_slug(index),
            name=f"Project {index}",
            team_ids=[teams[index % TEAMS].id],
            cause=CAUSE,
        )
        for index in range(PROJECTS)
    ]
    user = User(email="reader@example.com", is_superuser=False, cause=CAUSE)
    member = Member(org_id=organization.id, user_id=user.id, role="member", cause=CAUSE)
    for team in teams[:CALLER_TEAMS]:
        member.join_team(team.id, CAUSE)
    reader_token, reader = _token(user_id=user.id, org_id=None, scopes=READ_SCOPES)
    pipeline_token, pipeline = _token(user_id=None, org_id=organization.id, scopes=("org:ci",))
    # An organization's own token with org:read may read its audit log.
    auditor_token, auditor = _token(user_id=None, org_id=organization.id, scopes=("org:read",))
    ledger.save(organization, *teams, *projects, user, member, reader, pipeline, auditor)
    return Directory(
        org_id=organization.id,
        project_ids=tuple(project.id for project in projects),
        project_slugs=tuple(project.slug for project in projects),
        visible_project_indexes=frozenset(
            index for index in range(PROJECTS) if index % TEAMS < CALLER_TEAMS
        ),
        reader_token=reader_token,
        pipeline_token=pipeline_token,
        auditor_token=auditor_token,
    )


def load_releases(ledger: ReleaseLedger, directory: Directory, start: int, stop: int) -> None:
    """Save releases `start` to `stop` - 1, RELEASES_PER_SAVE per transaction."""
    for first in range(start, stop, RELEASES_PER_SAVE):
        batch = range(first, min(first + RELEASES_PER_SAVE, stop))
        ledger.save(*(build_release(directory, index) for index in batch))


def load_long_history(ledger: ReleaseLedger, directory: Directory) -> str:
    """Save HISTORY_VERSION with HISTORY_EVENTS events in all; return its version.

    Its project, project-000, is visible to the reader.
    """
    release = Release(
        org_id=directory.org_id,
        version_str=HISTORY_VERSION,
        ref=None,
        url=None,
        owner_id=None,
        date_started=START,
        cause=CAUSE,
    )
    release.add_projects([directory.project_ids[0]], None, CAUSE)
    updates = HISTORY_EVENTS - 2
    for number in range(updates):
        release.update(f"refs/heads/update-{number}", None, None, START, CAUSE)
        if (number + 3) % HISTORY_EVENTS_PER_SAVE == 0 or number == updates - 1:
            ledger.save(release)
    return HISTORY_VERSION


def build_release(directory: Directory, index: int) -> Release:
    """Return a new release aggregate with its ten pending events."""
    project_id = directory.project_ids[index % PROJECTS]
    released = START + timedelta(seconds=index * 60)
    release = Release(
        org_id=directory.org_id,
        version_str=release_version(index),
        ref=f"refs/tags/v{index}",
        url=None,
        owner_id=None,
        date_started=released - timedelta(minutes=5),
        cause=CAUSE,
    )
    release.add_projects([project_id], None, CAUSE)
    release.set_commits(list(commits(index, 3)), CAUSE)
    release.release(released, None, [project_id], CAUSE)
    for deploy in range(DEPLOYS_PER_RELEASE):
        finished = released + timedelta(minutes=deploy + 1)
        release.record_deploy(
            environment=ENVIRONMENTS[deploy % len(ENVIRONMENTS)],
            name=f"deploy-{deploy}",
            url=None,
            date_started=finished - timedelta(seconds=30),
            date_finished=finished,
            project_ids=[project_id],
            cause=CAUSE,
        )
    return release


def commits(seed: int, count: int) -> Iterator[dict[str, object]]:
    """Yield commits in the normalized form the ledger stores (see domain.commits)."""
    for number in range(count):
        author = (seed + number) % 40
        yield {
            "id": f"{seed:016x}{number:024x}",
            "repository": "acme/monorepo",
            "message": f"Change {number} of release {seed}",
            "author_name": f"Author {author}",
            "author_email": f"author{author}@example.com",
            "timestamp": "2024-01-01T00:00:00.000000Z",
            "patch_set": [{"path": f"src/module_{number}.py", "type": "M"}],
        }


def _token(user_id: UUID | None, org_id: UUID | None, scopes: tuple[str, ...]
           ) -> tuple[str, ApiToken]:
    secret = "sntryu_" + secrets.token_hex(32)
    token = ApiToken(
        token_hash=hash_token(secret),
        user_id=user_id,
        org_id=org_id,
        scopes=sorted(scopes),
        label="bench",
        cause=CAUSE,
    )
    return secret, token
