"""The timeline read model: every state each release has been in, with its validity interval.

Each row is one state of a release, valid from `valid_from` (inclusive)
to `valid_to` (exclusive), both in microseconds since the epoch. The
current state's `valid_to` is OPEN. A release's project links and the
issues first seen in it are kept the same way. "The release list at
instant T" is then a plain indexed query, the same as the live list plus
`valid_from <= T < valid_to`.

Instants are the events' timestamps, with two adjustments:

- All events that one command records take effect at the instant of its
  first event, so no instant shows a half-made state, such as a release not
  yet linked to its projects. Events are taken to be from one command when
  they have consecutive positions, the same release and request id, and
  timestamps less than SAME_COMMAND_MICROS apart. A client that reuses a
  request id for two quick writes to one release sees them merged.
- A release's instants never go backwards: an event stamped before the
  release's previous change, which clocks of different hosts can cause,
  takes effect at that change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import singledispatchmethod
from typing import Any

from eventsourcing.domain import DomainEvent

from domain.release import Release
from projections.database import Cursor, Row
from projections.projection import Projection, to_json, to_micros, to_text
from projections.releases import (
    LINKED_COLUMN,
    _authors,
    _last_commit,
    deploy_summary,
    page_in_list_order,
    split_links,
    split_links_and_counts,
)

RELEASES = "timeline_v2_releases"
RELEASE_PROJECTS = "timeline_v2_projects"
NEW_ISSUES = "timeline_v2_new_issues"
CLOCKS = "timeline_v2_clocks"
OPEN = 9_223_372_036_854_775_807
SAME_COMMAND_MICROS = 1_000_000
STATE_COLUMNS = (
    "id", "public_id", "org_id", "version", "version_lower", "ref", "url", "owner_id",
    "status", "date_created", "date_started", "date_released", "sort_key", "commit_count",
    "last_commit", "authors", "deploy_count", "last_deploy",
)
COLUMNS = (*STATE_COLUMNS, "revision", "valid_from", "valid_to")
LINK_COLUMNS = ("release_id", "project_id", "revision", "valid_from", "valid_to")
CLOCK_COLUMNS = ("release_id", "position", "request_id", "instant")


class TimelineProjection(Projection):
    name = "timeline_v2"
    create_statements = (
        f"CREATE TABLE IF NOT EXISTS {RELEASES} (id TEXT NOT NULL, public_id BIGINT NOT NULL,"
        " org_id TEXT NOT NULL, version TEXT NOT NULL, version_lower TEXT NOT NULL, ref TEXT,"
        " url TEXT, owner_id TEXT, status TEXT NOT NULL, date_created TEXT NOT NULL,"
        " date_started TEXT, date_released TEXT, sort_key BIGINT NOT NULL,"
        " commit_count INTEGER NOT NULL, last_commit TEXT, authors TEXT NOT NULL,"
        " deploy_count INTEGER NOT NULL, last_deploy TEXT, revision BIGINT NOT NULL,"
        " valid_from BIGINT NOT NULL, valid_to BIGINT NOT NULL, PRIMARY KEY (id, revision))",
        f"CREATE INDEX IF NOT EXISTS {RELEASES}_version"
        f" ON {RELEASES} (org_id, version, valid_from)",
        f"CREATE INDEX IF NOT EXISTS {RELEASES}_order"
        f" ON {RELEASES} (org_id, status, sort_key, public_id)",
        f"CREATE INDEX IF NOT EXISTS {RELEASES}_prefix ON {RELEASES} (org_id, version_lower)",
        f"CREATE TABLE IF NOT EXISTS {RELEASE_PROJECTS} (release_id TEXT NOT NULL,"
        " project_id TEXT NOT NULL, revision BIGINT NOT NULL, valid_from BIGINT NOT NULL,"
        " valid_to BIGINT NOT NULL, PRIMARY KEY (release_id, project_id, revision))",
        f"CREATE INDEX IF NOT EXISTS {RELEASE_PROJECTS}_project"
        f" ON {RELEASE_PROJECTS} (project_id, release_id)",
        f"CREATE TABLE IF NOT EXISTS {NEW_ISSUES} (release_id TEXT NOT NULL,"
        " issue_id TEXT NOT NULL, project_id TEXT NOT NULL, revision BIGINT NOT NULL,"
        " valid_from BIGINT NOT NULL, valid_to BIGINT NOT NULL,"
        " PRIMARY KEY (release_id, issue_id, revision))",
        f"CREATE TABLE IF NOT EXISTS {CLOCKS} (release_id TEXT PRIMARY KEY,"
        " position BIGINT NOT NULL, request_id TEXT, instant BIGINT NOT NULL)",
    )

    query_indexes = frozenset((
        f"{RELEASES}_version",
        f"{RELEASES}_order",
        f"{RELEASES}_prefix",
        f"{RELEASE_PROJECTS}_project",
    ))

    def __init__(self) -> None:
        # Each release's current state and clock as this batch last read or
        # wrote them, so a release's later events in a batch skip the reads.
        self._states: dict[str, Row] = {}
        self._clocks: dict[str, Row] = {}
        # What this batch wrote, held back until its end: state rows by
        # (release id, revision), project links by release, and the clocks
        # first seen or changed in the batch.
        self._new_states: dict[tuple[str, int], list[Any]] = {}
        self._new_links: dict[str, list[list[Any]]] = {}
        self._new_clocks: set[str] = set()
        self._changed_clocks: set[str] = set()

    def begin_batch(self) -> None:
        for batch_state in (self._states, self._clocks, self._new_states, self._new_links,
                            self._new_clocks, self._changed_clocks):
            batch_state.clear()

    def end_batch(self, cursor: Cursor) -> None:
        if self._new_states:
            cursor.copy_rows(RELEASES, COLUMNS, list(self._new_states.values()))
        links = [link for links in self._new_links.values() for link in links]
        if links:
            cursor.copy_rows(RELEASE_PROJECTS, LINK_COLUMNS, links)
        if self._new_clocks:
            cursor.copy_rows(CLOCKS, CLOCK_COLUMNS, [
                (release_id, *self._clock_values(release_id))
                for release_id in self._new_clocks
            ])
        if self._changed_clocks:
            cursor.executemany(
                f"UPDATE {CLOCKS} SET position = %s, request_id = %s, instant = %s"
                " WHERE release_id = %s",
                [(*self._clock_values(release_id), release_id)
                 for release_id in self._changed_clocks],
            )
        self.begin_batch()

    def _clock_values(self, release_id: str) -> tuple[Any, ...]:
        clock = self._clocks[release_id]
        return clock["position"], clock["request_id"], clock["instant"]

    @singledispatchmethod
    def apply(self, event: DomainEvent, cursor: Cursor, position: int) -> None:
        """Leave the states unchanged, but let release events tell which command is running."""
        if isinstance(event, Release.Event):
            self._instant(cursor, event, position)

    @apply.register
    def _(self, event: Release.Created, cursor: Cursor, position: int) -> None:
        # A release's clock is written by its own events only, so a new
        # release has none and the clock is not looked up.
        instant = self._instant(cursor, event, position, new=True)
        self._start(cursor, event, position, instant, str(event.org_id), event.version_str)

    @apply.register
    def _(self, event: Release.Recreated, cursor: Cursor, position: int) -> None:
        identity = next(
            (dict(zip(COLUMNS, values, strict=True)) for (release_id, _), values
             in self._new_states.items() if release_id == str(event.originator_id)),
            None,
        ) or cursor.execute(
            f"SELECT org_id, version FROM {RELEASES} WHERE id = %s LIMIT 1",
            (str(event.originator_id),),
        ).fetchone()
        if identity is None:
            raise LookupError(f"Release {event.originator_id} was recreated but never created.")
        instant = self._instant(cursor, event, position)
        self._end(cursor, event, instant)
        self._start(cursor, event, position, instant, identity["org_id"], identity["version"])

    @apply.register
    def _(self, event: Release.ProjectAdded, cursor: Cursor, position: int) -> None:
        instant = self._instant(cursor, event, position)
        release_id = str(event.originator_id)
        self._new_links.setdefault(release_id, []).extend(
            [release_id, str(project_id), position, instant, OPEN]
            for project_id in event.project_ids
        )

    @apply.register
    def _(self, event: Release.Released, cursor: Cursor, position: int) -> None:
        self._revise(cursor, event, position, date_released=to_text(event.date_released),
                     sort_key=to_micros(event.date_released))

    @apply.register
    def _(self, event: Release.Updated, cursor: Cursor, position: int) -> None:
        self._revise(cursor, event, position, ref=event.ref, url=event.url,
                     owner_id=None if event.owner_id is None else str(event.owner_id),
                     date_started=to_text(event.date_started))

    @apply.register
    def _(self, event: Release.CommitsSet, cursor: Cursor, position: int) -> None:
        self._revise(cursor, event, position, commit_count=len(event.commits),
                     last_commit=_last_commit(event.commits),
                     authors=to_json(_authors(event.commits)))

    @apply.register
    def _(self, event: Release.Archived, cursor: Cursor, position: int) -> None:
        self._revise(cursor, event, position, status="archived")

    @apply.register
    def _(self, event: Release.Restored, cursor: Cursor, position: int) -> None:
        self._revise(cursor, event, position, status="open")

    @apply.register
    def _(self, event: Release.DeployRecorded, cursor: Cursor, position: int) -> None:
        deploy = deploy_summary(position, event.environment, event.name, event.url,
                                event.date_started, event.date_finished)
        current = self._current(cursor, str(event.originator_id))
        self._revise(cursor, event, position, deploy_count=current["deploy_count"] + 1,
                     last_deploy=to_json(deploy))

    @apply.register
    def _(self, event: Release.NewIssueAdded, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"INSERT INTO {NEW_ISSUES} (release_id, issue_id, project_id, revision, valid_from,"
            " valid_to) VALUES (%s, %s, %s, %s, %s, %s)",
            (str(event.originator_id), str(event.issue_id), str(event.project_id), position,
             self._instant(cursor, event, position), OPEN),
        )

    @apply.register
    def _(self, event: Release.NewIssueRemoved, cursor: Cursor, position: int) -> None:
        cursor.execute(
            f"UPDATE {NEW_ISSUES} SET valid_to = %s"
            " WHERE release_id = %s AND issue_id = %s AND valid_to = %s",
            (self._instant(cursor, event, position), str(event.originator_id), str(event.issue_id),
             OPEN),
        )

    @apply.register
    def _(self, event: Release.Deleted, cursor: Cursor, position: int) -> None:
        self._end(cursor, event, self._instant(cursor, event, position))

    def _start(
        self, cursor: Cursor, event: Any, position: int, instant: int, org_id: str, version: str
    ) -> None:
        state = {
            "id": str(event.originator_id), "public_id": position, "org_id": org_id,
            "version": version, "version_lower": version.lower(), "ref": event.ref,
            "url": event.url,
            "owner_id": None if event.owner_id is None else str(event.owner_id),
            "status": "open", "date_created": to_text(event.timestamp),
            "date_started": to_text(event.date_started), "date_released": None,
            "sort_key": to_micros(event.timestamp), "commit_count": 0, "last_commit": None,
            "authors": "[]", "deploy_count": 0, "last_deploy": None,
        }
        self._insert(cursor, state, position, instant)

    def _revise(self, cursor: Cursor, event: Any, position: int, **changes: Any) -> None:
        """End the current state at the event's instant and start the changed one there."""
        release_id = str(event.originator_id)
        current = self._current(cursor, release_id)
        instant = self._instant(cursor, event, position)
        held_back = self._new_states.get((release_id, current["revision"]))
        if instant == current["valid_from"]:
            # The replaced state was never visible, so it is not kept.
            if held_back is not None:
                del self._new_states[release_id, current["revision"]]
            else:
                cursor.execute(f"DELETE FROM {RELEASES} WHERE id = %s AND revision = %s",
                               (release_id, current["revision"]))
        elif held_back is not None:
            held_back[-1] = instant
        else:
            cursor.execute(f"UPDATE {RELEASES} SET valid_to = %s WHERE id = %s AND revision = %s",
                           (instant, release_id, current["revision"]))
        self._insert(cursor, {**current, **changes}, position, instant)

    def _end(self, cursor: Cursor, event: Any, instant: int) -> None:
        """End the current state and project links of a release at `instant`.

        Issues first seen in the release stay linked. The ledger deletes a
        release only once no issue names it as first release, and the live
        count, which follows the issues, would go on counting any such issue
        after the release is created again.
        """
        release_id = str(event.originator_id)
        for table, key in ((RELEASES, "id"), (RELEASE_PROJECTS, "release_id")):
            cursor.execute(
                f"UPDATE {table} SET valid_to = %s WHERE {key} = %s AND valid_to = %s",
                (instant, release_id, OPEN),
            )
        held_back = [values for (held_id, _), values in self._new_states.items()
                     if held_id == release_id]
        for values in held_back + self._new_links.get(release_id, []):
            if values[-1] == OPEN:
                values[-1] = instant
        self._states.pop(release_id, None)

    def _current(self, cursor: Cursor, release_id: str) -> Row:
        row = self._states.get(release_id)
        if row is None:
            row = cursor.execute(
                f"SELECT * FROM {RELEASES} WHERE id = %s AND valid_to = %s", (release_id, OPEN)
            ).fetchone()
        if row is None:
            raise LookupError(f"Release {release_id} changed while it did not exist.")
        self._states[release_id] = row
        return row

    def _instant(self, cursor: Cursor, event: Any, position: int, new: bool = False) -> int:
        """Return the instant at which an event of a release takes effect, and remember it.

        `new` is true when the event creates the release, which then has no clock yet.
        """
        release_id = str(event.originator_id)
        timestamp = to_micros(event.timestamp)
        request_id = event.cause.request_id
        clock = self._clocks.get(release_id)
        if clock is None and not new:
            clock = cursor.execute(
                f"SELECT position, request_id, instant FROM {CLOCKS} WHERE release_id = %s",
                (release_id,),
            ).fetchone()
        if clock is None:
            instant = timestamp
            self._new_clocks.add(release_id)
        else:
            same_command = (
                request_id is not None
                and clock["request_id"] == request_id
                and clock["position"] == position - 1
                and timestamp - clock["instant"] < SAME_COMMAND_MICROS
            )
            instant = clock["instant"] if same_command else max(timestamp, clock["instant"])
            if release_id not in self._new_clocks:
                self._changed_clocks.add(release_id)
        self._clocks[release_id] = {
            "position": position, "request_id": request_id, "instant": instant,
        }
        return instant

    def _insert(self, cursor: Cursor, state: Row, revision: int, instant: int) -> None:
        values = [state[column] for column in STATE_COLUMNS] + [revision, instant, OPEN]
        self._new_states[state["id"], revision] = values
        self._states[state["id"]] = dict(zip(COLUMNS, values, strict=True))


class ReleasesAt:
    """Release queries that return the state at one instant, in the live queries' terms.

    `get`, `project_ids`, `links_and_new_issues` and `page` take and return what
    the live release queries do, so the same code renders and pages both.
    """

    def __init__(self, cursor: Cursor, at: datetime) -> None:
        self.cursor = cursor
        self.instant = to_micros(at)

    def get(self, org_id: str, version: str) -> Row | None:
        return self.cursor.execute(
            f"SELECT * FROM {RELEASES} WHERE org_id = %s AND version = %s"
            " AND valid_from <= %s AND valid_to > %s",
            (org_id, version, self.instant, self.instant),
        ).fetchone()

    def get_linked(self, org_id: str, version: str) -> tuple[Row | None, list[str]]:
        """Return the release as it stood and the ids of its projects then, in one round trip."""
        return split_links(self.cursor.execute(
            f"SELECT r.*, p.project_id AS {LINKED_COLUMN} FROM {RELEASES} r"
            f" LEFT JOIN {RELEASE_PROJECTS} p ON p.release_id = r.id"
            " AND p.valid_from <= %s AND p.valid_to > %s"
            " WHERE r.org_id = %s AND r.version = %s AND r.valid_from <= %s AND r.valid_to > %s",
            (self.instant, self.instant, org_id, version, self.instant, self.instant),
        ).fetchall())

    def links_and_new_issues(
        self, release_ids: Sequence[str]
    ) -> tuple[dict[str, list[str]], dict[str, dict[str, int]]]:
        """Return each release's project ids and new issue counts at the instant.

        One round trip reads both.
        """
        if not release_ids:
            return {}, {}
        test, values = self.cursor.any_of(release_ids)
        at = (self.instant, self.instant)
        rows = self.cursor.execute(
            f"SELECT 0 AS counted, release_id, project_id, 0 AS issues FROM {RELEASE_PROJECTS}"
            f" WHERE release_id {test} AND valid_from <= %s AND valid_to > %s"
            " UNION ALL"
            f" SELECT 1, release_id, project_id, COUNT(*) FROM {NEW_ISSUES}"
            f" WHERE release_id {test} AND valid_from <= %s AND valid_to > %s"
            " GROUP BY release_id, project_id",
            (*values, *at, *values, *at),
        ).fetchall()
        return split_links_and_counts(release_ids, rows)

    def project_ids(self, release_ids: Sequence[str]) -> dict[str, list[str]]:
        linked: dict[str, list[str]] = {release_id: [] for release_id in release_ids}
        if not release_ids:
            return linked
        test, values = self.cursor.any_of(release_ids)
        rows = self.cursor.execute(
            f"SELECT release_id, project_id FROM {RELEASE_PROJECTS}"
            f" WHERE release_id {test} AND valid_from <= %s AND valid_to > %s",
            (*values, self.instant, self.instant),
        ).fetchall()
        for row in rows:
            linked[row["release_id"]].append(row["project_id"])
        return linked

    def page(
        self,
        org_id: str,
        project_ids: Sequence[str] | None,
        status: str,
        prefix: str | None,
        after: tuple[int, int] | None,
        before: tuple[int, int] | None,
        limit: int,
    ) -> list[Row]:
        """Return releases as the live list did at the instant, in the same order."""
        conditions = ["r.org_id = %s", "r.status = %s", "r.valid_from <= %s", "r.valid_to > %s"]
        params: list[Any] = [org_id, status, self.instant, self.instant]
        if project_ids is not None:
            if not project_ids:
                return []
            test, values = self.cursor.any_of(project_ids)
            conditions.append(
                f"EXISTS (SELECT 1 FROM {RELEASE_PROJECTS} p WHERE p.release_id = r.id"
                f" AND p.project_id {test} AND p.valid_from <= %s AND p.valid_to > %s)"
            )
            params.extend([*values, self.instant, self.instant])
        return page_in_list_order(self.cursor, RELEASES, conditions, params, prefix,
                                  after, before, limit)
