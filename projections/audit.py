"""The audit read model: every event of each organization's releases and directory.

One row per event with its type, actor, request id and data, indexed for
the audit log's filters and for a release's history across lifetimes.
Events outside any organization (users, and tokens of users) are not in
it. Every aggregate seen is kept as a subject, so later events can name
their organization and render ids as public ids.

A release event concerns the projects linked to the release during its
lifetime, including projects linked after the event, so the project
filter finds a release's creation even though the creation precedes the
link.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEvent

from chain.links import CHAIN_TABLE
from domain.cause import Cause
from domain.directory import ApiToken, Member, Organization, Project, Team, User
from domain.release import Release
from projections.database import LARGE_RESULT_BYTES, Cursor, Row
from projections.event_data import (
    aggregate_kind,
    event_fields,
    event_shape,
    event_type,
    id_text,
    referenced_ids,
)
from projections.projection import (
    PendingRows,
    Projection,
    RecentCache,
    to_json,
    to_micros,
    to_text,
)

EVENTS = "audit_v2_events"
EVENT_PROJECTS = "audit_v2_event_projects"
SUBJECTS = "audit_v2_subjects"
RELEASE_PROJECTS = "audit_v2_release_projects"
# Subjects other than releases kept across batches. The cache starts over when full.
MAX_STORED_SUBJECTS = 10_000
EVENT_COLUMNS = (
    "position", "org_id", "subject_id", "subject_kind", "subject_public_id", "subject_name",
    "sequence", "type", "lifetime", "version", "actor_type", "actor_id", "actor_email",
    "actor_email_lower", "request_id", "date_created", "date_micros", "data",
)
# The columns a history or audit-log item shows, read without the others.
SERVED_COLUMNS = ", ".join(f"e.{column}" for column in (
    "position", "type", "sequence", "date_created", "actor_type", "actor_id", "actor_email",
    "request_id", "data", "subject_kind", "subject_public_id", "subject_name",
))
# Fields that name a new aggregate of a kind without its own handler, in order of preference.
NAME_FIELDS = ("slug", "version_str", "name", "email", "label", "environment")


@dataclass(frozen=True)
class Subject:
    """An aggregate as the audit log names it."""

    id: str
    kind: str
    org_id: str | None
    public_id: int
    name: str


class AuditProjection(Projection):
    name = "audit_v2"
    create_statements = (
        f"CREATE TABLE IF NOT EXISTS {EVENTS} (position BIGINT PRIMARY KEY,"
        " org_id TEXT NOT NULL, subject_id TEXT NOT NULL, subject_kind TEXT NOT NULL,"
        " subject_public_id BIGINT NOT NULL, subject_name TEXT NOT NULL,"
        " sequence BIGINT NOT NULL, type TEXT NOT NULL, lifetime BIGINT, version TEXT,"
        " actor_type TEXT NOT NULL, actor_id TEXT, actor_email TEXT, actor_email_lower TEXT,"
        " request_id TEXT, date_created TEXT NOT NULL, date_micros BIGINT NOT NULL,"
        " data TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {EVENTS}_org ON {EVENTS} (org_id, position)",
        f"CREATE INDEX IF NOT EXISTS {EVENTS}_subject ON {EVENTS} (subject_id, position)",
        # The ProjectAdded handler reads through the lifetime index, whose
        # keys, mostly recent positions, a replay appends near its end.
        f"CREATE INDEX IF NOT EXISTS {EVENTS}_lifetime ON {EVENTS} (lifetime, position)"
        " WHERE lifetime IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS {EVENTS}_type ON {EVENTS} (org_id, type, position)",
        f"CREATE INDEX IF NOT EXISTS {EVENTS}_actor ON {EVENTS} (org_id, actor_id, position)",
        f"CREATE INDEX IF NOT EXISTS {EVENTS}_email"
        f" ON {EVENTS} (org_id, actor_email_lower, position)",
        f"CREATE INDEX IF NOT EXISTS {EVENTS}_version ON {EVENTS} (org_id, version, position)",
        f"CREATE INDEX IF NOT EXISTS {EVENTS}_date ON {EVENTS} (org_id, date_micros)",
        f"CREATE TABLE IF NOT EXISTS {EVENT_PROJECTS} (project_id TEXT NOT NULL,"
        " position BIGINT NOT NULL, type TEXT NOT NULL, PRIMARY KEY (project_id, position))",
        f"CREATE INDEX IF NOT EXISTS {EVENT_PROJECTS}_type"
        f" ON {EVENT_PROJECTS} (project_id, type, position)",
        f"CREATE TABLE IF NOT EXISTS {SUBJECTS} (id TEXT PRIMARY KEY, kind TEXT NOT NULL,"
        " org_id TEXT, public_id BIGINT NOT NULL, name TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {RELEASE_PROJECTS} (release_id TEXT NOT NULL,"
        " project_id TEXT NOT NULL, PRIMARY KEY (release_id, project_id))",
    )

    unanalyzed_columns = {
        EVENTS: frozenset(("subject_name", "actor_email", "request_id", "date_created", "data")),
    }

    query_indexes = frozenset((
        f"{EVENTS}_org",
        f"{EVENTS}_subject",
        f"{EVENTS}_type",
        f"{EVENTS}_actor",
        f"{EVENTS}_email",
        f"{EVENTS}_version",
        f"{EVENTS}_date",
        f"{EVENT_PROJECTS}_type",
    ))

    def __init__(self) -> None:
        # The subjects this batch has read or written, so that most events
        # of a batch name their aggregate without a query.
        self._subjects: dict[str, Subject] = {}
        # The projects of each release whose lifetime began in this batch. The
        # statements that need other releases' projects read them from the table.
        self._linked: dict[str, list[str]] = {}
        # This batch's events of each release lifetime, as (position, type),
        # keyed by (release id, lifetime).
        self._lifetimes: dict[tuple[str, int], list[tuple[int, str]]] = {}
        # Subjects other than releases read from the database. They never
        # change once committed, so they are kept across batches, up to a bound.
        self._stored: RecentCache[Subject] = RecentCache(MAX_STORED_SUBJECTS)
        self._new_subjects = PendingRows(SUBJECTS, ("id", "kind", "org_id", "public_id", "name"))
        self._new_events = PendingRows(EVENTS, EVENT_COLUMNS)
        self._new_event_projects = PendingRows(EVENT_PROJECTS,
                                               ("project_id", "position", "type"))
        self._new_links = PendingRows(RELEASE_PROJECTS, ("release_id", "project_id"))

    def begin_batch(self) -> None:
        self._subjects.clear()
        self._linked.clear()
        self._lifetimes.clear()
        for pending in (self._new_subjects, self._new_events, self._new_event_projects,
                        self._new_links):
            pending.clear()

    def end_batch(self, cursor: Cursor) -> None:
        for pending in (self._new_subjects, self._new_events, self._new_event_projects,
                        self._new_links):
            pending.flush(cursor)

    @singledispatchmethod
    def apply(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        known = self._subject(cursor, id_text(event.originator_id))
        if event.originator_version == 1 and known is None:
            self._create_other(event, cursor, position)
        else:
            self._record_known(event, cursor, position)

    @apply.register
    def _(self, event: Organization.Created, cursor: Cursor, position: int) -> None:
        self._create(event, cursor, position, id_text(event.originator_id), event.slug)

    @apply.register
    def _(self, event: Team.Created, cursor: Cursor, position: int) -> None:
        self._create(event, cursor, position, str(event.org_id), event.slug)

    @apply.register
    def _(self, event: Project.Created, cursor: Cursor, position: int) -> None:
        self._create(event, cursor, position, str(event.org_id), event.slug)

    @apply.register
    def _(self, event: User.Created, cursor: Cursor, position: int) -> None:
        self._create(event, cursor, position, None, event.email)

    @apply.register
    def _(self, event: Member.Created, cursor: Cursor, position: int) -> None:
        user = self._subject(cursor, str(event.user_id))
        name = user.name if user else str(event.user_id)
        self._create(event, cursor, position, str(event.org_id), name)

    @apply.register
    def _(self, event: ApiToken.Created, cursor: Cursor, position: int) -> None:
        org_id = None if event.org_id is None else str(event.org_id)
        self._create(event, cursor, position, org_id, event.label)

    @apply.register
    def _(self, event: Release.Created, cursor: Cursor, position: int) -> None:
        self._linked[id_text(event.originator_id)] = []
        self._create(event, cursor, position, str(event.org_id), event.version_str)

    @apply.register
    def _(self, event: Release.Recreated, cursor: Cursor, position: int) -> None:
        release_id = id_text(event.originator_id)
        # A new lifetime gets a new public id, as the release list shows it.
        # The subject's row may still be held back, so it is written first.
        self._new_subjects.flush(cursor)
        cursor.execute(f"UPDATE {SUBJECTS} SET public_id = %s WHERE id = %s",
                       (position, release_id))
        self._subjects.pop(release_id, None)
        self._new_links.flush(cursor)
        cursor.execute(f"DELETE FROM {RELEASE_PROJECTS} WHERE release_id = %s", (release_id,))
        self._linked[release_id] = []
        self._record_known(event, cursor, position)

    @apply.register
    def _(self, event: Release.ProjectAdded, cursor: Cursor, position: int) -> None:
        release_id = id_text(event.originator_id)
        subject = self._record_known(event, cursor, position)
        # The release's earlier events of this lifetime concern the project
        # too: those of this batch are held back, earlier ones are stored.
        held_back = self._lifetimes.get((release_id, subject.public_id), [])
        stored_before = held_back[0][0] if held_back else position
        linked = self._linked.get(release_id)
        for project_id in map(id_text, event.project_ids):
            # The links of a release whose lifetime began in this batch are
            # held back, because its later events read them from `_linked`.
            if linked is None:
                cursor.execute(
                    f"INSERT INTO {RELEASE_PROJECTS} (release_id, project_id) VALUES (%s, %s)",
                    (release_id, project_id),
                )
            else:
                self._new_links.add(release_id, project_id)
                linked.append(project_id)
            for event_position, type_name in held_back:
                self._new_event_projects.add(project_id, event_position, type_name)
            if not held_back or stored_before > subject.public_id:
                # No other lifetime of any release has the same number.
                cursor.execute(
                    f"INSERT INTO {EVENT_PROJECTS} (project_id, position, type)"
                    f" SELECT %s, position, type FROM {EVENTS}"
                    " WHERE lifetime = %s AND position < %s"
                    " ON CONFLICT (project_id, position) DO NOTHING",
                    (project_id, subject.public_id, stored_before),
                )

    @apply.register
    def _(self, event: Release.Deleted, cursor: Cursor, position: int) -> None:
        release_id = id_text(event.originator_id)
        self._record_known(event, cursor, position)
        self._new_links.flush(cursor)
        cursor.execute(f"DELETE FROM {RELEASE_PROJECTS} WHERE release_id = %s", (release_id,))
        self._linked[release_id] = []

    def _record_known(self, event: DomainEvent, cursor: Cursor, position: int) -> Subject:
        """Record an event of an aggregate created earlier and return its subject."""
        subject = self._subject(cursor, id_text(event.originator_id))
        if subject is None:
            raise LookupError(f"Event {event_type(event)} at position {position} is of"
                              f" aggregate {event.originator_id}, which was never created.")
        self._record(event, cursor, position, subject)
        return subject

    def _create_other(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        """Record the creation of an aggregate that has no handler of its own.

        Its organization is its `org_id`, else the organization of an
        aggregate it refers to. Its name is the first of NAME_FIELDS it has.
        """
        fields = event_fields(event)
        org_id = fields.get("org_id")
        if org_id is None:
            referenced = [self._subject(cursor, subject_id)
                          for subject_id in referenced_ids(fields)]
            org_ids = sorted(s.org_id for s in referenced if s is not None and s.org_id)
            org_id = org_ids[0] if org_ids else None
        name = next((str(fields[f]) for f in NAME_FIELDS if fields.get(f) is not None), "")
        self._create(event, cursor, position, None if org_id is None else str(org_id), name)

    def _create(
        self, event: DomainEvent, cursor: Cursor, position: int, org_id: str | None, name: str
    ) -> None:
        subject = Subject(id_text(event.originator_id), aggregate_kind(event), org_id, position,
                          name)
        self._new_subjects.add(subject.id, subject.kind, subject.org_id, subject.public_id,
                               subject.name)
        self._subjects[subject.id] = subject
        self._record(event, cursor, position, subject)

    def _record(self, event: DomainEvent, cursor: Cursor, position: int, subject: Subject) -> None:
        if subject.org_id is None:
            return
        values = vars(event)
        shape = event_shape(event)
        public_ids = self._public_ids(cursor, shape.referenced_ids(values))
        cause = getattr(event, "cause", None) or Cause("system")
        is_release = subject.kind == "release"
        type_name = event_type(event)
        self._new_events.add(
            position, subject.org_id, subject.id, subject.kind, subject.public_id, subject.name,
            event.originator_version, type_name,
            subject.public_id if is_release else None, subject.name if is_release else None,
            cause.actor_type, cause.actor_id, cause.actor_email,
            cause.actor_email.lower() if cause.actor_email else None, cause.request_id,
            to_text(event.timestamp), to_micros(event.timestamp),
            to_json(shape.render(values, public_ids)),
        )
        if is_release:
            self._lifetimes.setdefault((subject.id, subject.public_id), []).append(
                (position, type_name)
            )
            linked = self._linked.get(subject.id)
            if linked is None:
                cursor.execute(
                    f"INSERT INTO {EVENT_PROJECTS} (project_id, position, type)"
                    f" SELECT project_id, %s, %s FROM {RELEASE_PROJECTS} WHERE release_id = %s",
                    (position, type_name, subject.id),
                )
            for project_id in linked or ():
                self._new_event_projects.add(project_id, position, type_name)
        elif subject.kind == "project":
            self._new_event_projects.add(subject.id, position, type_name)

    def _subject(self, cursor: Cursor, subject_id: str) -> Subject | None:
        subject = self._subjects.get(subject_id) or self._stored.get(subject_id)
        if subject is not None:
            return subject
        row = cursor.execute(f"SELECT * FROM {SUBJECTS} WHERE id = %s", (subject_id,)).fetchone()
        return None if row is None else self._remember(row)

    def _public_ids(self, cursor: Cursor, subject_ids: set[str]) -> dict[str, str]:
        if not subject_ids:
            return {}
        known: dict[str, Subject] = {}
        for subject_id in subject_ids:
            subject = self._subjects.get(subject_id) or self._stored.get(subject_id)
            if subject is not None:
                known[subject_id] = subject
        missing = sorted(subject_ids - known.keys())
        if missing:
            marks = ", ".join(["%s"] * len(missing))
            rows = cursor.execute(f"SELECT * FROM {SUBJECTS} WHERE id IN ({marks})",
                                  tuple(missing)).fetchall()
            for row in rows:
                known[row["id"]] = self._remember(row)
        return {subject_id: str(subject.public_id) for subject_id, subject in known.items()}

    def _remember(self, row: Row) -> Subject:
        """Cache a subject read from the database: for this batch, or longer unless a release.

        A release's public id changes when it is recreated. Other subjects
        never change, and a row that was read had been committed, so it stays true.
        """
        subject = Subject(**row)
        if subject.kind == "release":
            self._subjects[subject.id] = subject
        else:
            self._stored.remember(subject.id, subject)
        return subject


@dataclass(frozen=True)
class AuditFilter:
    """Conditions on the audit log; None or empty means no condition."""

    event_types: Sequence[str] = ()
    actor: str | None = None
    project_id: str | None = None
    version: str | None = None
    start: int | None = None
    end: int | None = None


class AuditQueries:
    """Reads from the audit read model, with each event's chain hash."""

    def __init__(self, cursor: Cursor) -> None:
        self.cursor = cursor

    def history(
        self, release_id: UUID, after: int | None, before: int | None, limit: int
    ) -> list[Row]:
        """Return a release's events oldest first, after or before a position."""
        conditions, params = ["e.subject_id = %s"], [str(release_id)]
        return self._page(conditions, params, after, before, limit, newest_first=False)

    def has_history(self, release_id: UUID) -> bool:
        row = self.cursor.execute(
            f"SELECT 1 AS found FROM {EVENTS} WHERE subject_id = %s LIMIT 1", (str(release_id),)
        ).fetchone()
        return row is not None

    def page(
        self,
        org_id: str,
        where: AuditFilter,
        after: int | None,
        before: int | None,
        limit: int,
    ) -> list[Row]:
        """Return an organization's events newest first, after or before a position.

        `after` continues to older events and `before` goes back to newer
        ones; rows come newest first either way.
        """
        conditions, params = ["e.org_id = %s"], [org_id]
        source, key = f"{EVENTS} e", "e.position"
        if where.project_id is not None:
            # Reading the project's positions newest first and joining each
            # event stays fast when the project has few of the events.
            source = f"{EVENT_PROJECTS} p JOIN {EVENTS} e ON e.position = p.position"
            key = "p.position"
            conditions.append("p.project_id = %s")
            params.append(where.project_id)
        if where.event_types:
            # The project's rows carry the type, so the index on (project,
            # type, position) reads only the matching events.
            table = "e" if where.project_id is None else "p"
            marks = ", ".join(["%s"] * len(where.event_types))
            conditions.append(f"{table}.type IN ({marks})")
            params.extend(where.event_types)
        if where.actor is not None:
            if "@" in where.actor:
                conditions.append("e.actor_email_lower = %s")
                params.append(where.actor.lower())
            else:
                conditions.append("e.actor_id = %s")
                params.append(where.actor)
        if where.version is not None:
            conditions.append("e.version = %s")
            params.append(where.version)
        if where.start is not None:
            conditions.append("e.date_micros >= %s")
            params.append(where.start)
        if where.end is not None:
            conditions.append("e.date_micros < %s")
            params.append(where.end)
        return self._page(conditions, params, after, before, limit, newest_first=True,
                          source=source, key=key)

    def _page(
        self,
        conditions: list[str],
        params: list[Any],
        after: int | None,
        before: int | None,
        limit: int,
        *,
        newest_first: bool,
        source: str = f"{EVENTS} e",
        key: str = "e.position",
    ) -> list[Row]:
        """Return one page in list order; `after` follows the list, `before` goes back.

        `source` joins the events as `e`, and `key` is the position column
        to order and compare by.
        """
        forward = ("<", "DESC") if newest_first else (">", "ASC")
        backward = (">", "ASC") if newest_first else ("<", "DESC")
        comparison, order = backward if before is not None else forward
        if after is not None or before is not None:
            conditions.append(f"{key} {comparison} %s")
            params.append(after if before is None else before)
        rows = self.cursor.execute(
            f"SELECT {SERVED_COLUMNS}, c.hash FROM {source} LEFT JOIN {CHAIN_TABLE} c"
            f" ON c.position = e.position WHERE {' AND '.join(conditions)}"
            f" ORDER BY {key} {order} LIMIT %s",
            (*params, limit),
        ).fetchall()
        if sum(len(row["data"]) for row in rows) >= LARGE_RESULT_BYTES:
            self.cursor.renew_connection()
        return rows if before is None else rows[::-1]
