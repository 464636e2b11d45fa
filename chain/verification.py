"""Walking the whole ledger against its hash chain to find the first break.

A break is reported at the lowest position where the stored events and
the chain disagree, with one of these kinds:

- changed: the event stored at the position, or its link, is not the one
  that was chained there;
- removed: an event that was chained is gone (with or without its link);
- inserted: an event is stored where the chain has no link for it;
- reordered: an event that was chained at one position is stored at another;
- rewritten: the chain is consistent but does not contain a published
  anchor, so the events and the chain were both replaced;
- truncated: the chain ends before a published anchor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from eventsourcing.persistence import ApplicationRecorder

from chain.links import GENESIS_HASH, Link, RecordedEvent, link_hash
from chain.persistence import ChainRecorder

BATCH_SIZE = 1000

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Anchor:
    """A head published elsewhere earlier: the chain must still contain it."""

    position: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """Parse `POSITION:HASH`, the form `release-ledger verify` prints."""
        position, sep, digest = text.partition(":")
        digest = digest.strip().lower()
        if not sep or not position.isdigit() or len(digest) != 64 or not _is_hex(digest):
            raise ValueError(
                f"Invalid anchor {text[:80]!r}: expected POSITION:HASH with a 64-digit hex hash."
            )
        return cls(int(position), digest)


@dataclass(frozen=True)
class Break:
    position: int
    kind: str
    reason: str


@dataclass(frozen=True)
class Verification:
    """The outcome of a walk: events verified, the last good link, and the first break."""

    events: int
    head_position: int
    head_hash: str
    first_break: Break | None

    @property
    def intact(self) -> bool:
        return self.first_break is None


@dataclass(frozen=True)
class _Step:
    position: int
    event: RecordedEvent | None
    link: Link | None
    next_link: Link | None


class Verifier:
    """Recomputes the chain from the stored events and compares it with the stored links."""

    def __init__(
        self,
        recorder: ApplicationRecorder,
        *,
        batch_size: int = BATCH_SIZE,
        progress: Progress | None = None,
    ) -> None:
        if not isinstance(recorder, ChainRecorder):
            raise TypeError(f"{type(recorder).__name__} keeps no hash chain.")
        self.recorder = recorder
        self.chain: ChainRecorder = recorder
        self.batch_size = batch_size
        self.progress = progress

    def verify(self, anchors: tuple[Anchor, ...] = ()) -> Verification:
        # The chain head is read first. A write that commits later adds its
        # event and link together above it, so the walk up to `stop` reads
        # every event and link at or below it in their final form.
        stop = max(self.chain.max_link_position() or 0, self.recorder.max_notification_id() or 0)
        expected = {anchor.position: anchor.hash for anchor in anchors}
        events, position, head_hash = 0, 0, GENESIS_HASH
        for step in self._steps(stop):
            found = self._check(step, position, head_hash)
            if found is None and step.position in expected:
                found = _check_anchor(step, expected.pop(step.position))
            if found is not None:
                return Verification(events, position, head_hash, found)
            assert step.link is not None
            events, position, head_hash = events + 1, step.position, step.link.hash
            if self.progress and (events % self.batch_size == 0):
                self.progress(position, stop)
        if self.progress:
            self.progress(position, stop)
        return Verification(events, position, head_hash, _missing_anchor(expected, position))

    def _steps(self, stop: int) -> Iterator[_Step]:
        """Merge stored events and links by position into one ordered walk."""
        events, links = self._events(stop), self._links(stop)
        event, link = next(events, None), next(links, None)
        while event is not None or link is not None:
            if link is None or (event is not None and event.position < link.position):
                assert event is not None
                yield _Step(event.position, event, None, link)
                event = next(events, None)
            elif event is None or link.position < event.position:
                yield _Step(link.position, None, link, None)
                link = next(links, None)
            else:
                yield _Step(event.position, event, link, None)
                event, link = next(events, None), next(links, None)

    def _events(self, stop: int) -> Iterator[RecordedEvent]:
        start = 0
        while True:
            events = self.chain.select_recorded(start, self.batch_size, stop)
            yield from events
            if len(events) < self.batch_size:
                return
            start = events[-1].position

    def _links(self, stop: int) -> Iterator[Link]:
        start = 0
        while True:
            links = self.chain.select_links(start, self.batch_size, stop)
            yield from links
            if len(links) < self.batch_size:
                return
            start = links[-1].position

    def _check(self, step: _Step, previous_position: int, previous_hash: str) -> Break | None:
        if step.link is None:
            assert step.event is not None
            return self._unlinked(step.event, step.next_link)
        if step.event is None:
            return self._missing(step.link)
        link, event = step.link, step.event
        if link.previous_position > previous_position:
            return Break(link.previous_position, "removed",
                         "the event chained here is missing, and so is its link")
        if link.previous_position < previous_position:
            return Break(previous_position, "inserted",
                         f"the chain went from position {link.previous_position} to"
                         f" {step.position} without this event")
        if not isinstance(event.state, bytes):
            stored = "NULL" if event.state is None else type(event.state).__name__
            return Break(step.position, "changed",
                         f"the stored event's state is {stored}, where events store bytes")
        if link_hash(previous_hash, event) == link.hash:
            return None
        if (event.originator_id, event.originator_version) != (
            link.originator_id, link.originator_version
        ):
            moved = self.chain.select_link_of(event.originator_id, event.originator_version)
            if moved is not None:
                return Break(step.position, "reordered",
                             f"the event chained at position {moved.position} is stored here")
        return Break(step.position, "changed",
                     "the stored event or its link differs from what was chained here")

    def _unlinked(self, event: RecordedEvent, next_link: Link | None) -> Break:
        if next_link is not None and next_link.previous_position == event.position:
            return Break(event.position, "removed", "the link of the event stored here is missing")
        moved = self.chain.select_link_of(event.originator_id, event.originator_version)
        if moved is not None:
            return Break(event.position, "reordered",
                         f"the event chained at position {moved.position} is stored here")
        return Break(event.position, "inserted", "an event is stored here that was never chained")

    def _missing(self, link: Link) -> Break:
        position = self.chain.select_position_of(link.originator_id, link.originator_version)
        if position is not None:
            return Break(link.position, "reordered",
                         f"the event chained here is stored at position {position}")
        return Break(link.position, "removed", "the event chained here is missing")


def _check_anchor(step: _Step, expected_hash: str) -> Break | None:
    assert step.link is not None
    if step.link.hash == expected_hash:
        return None
    return Break(step.position, "rewritten",
                 "the chain is consistent but its hash here differs from the published anchor")


def _missing_anchor(expected: dict[int, str], head_position: int) -> Break | None:
    if not expected:
        return None
    position = min(expected)
    if position > head_position:
        return Break(position, "truncated",
                     f"the chain ends at position {head_position}, before the published anchor")
    return Break(position, "rewritten", "the chain has no link at the published anchor's position")


def _is_hex(text: str) -> bool:
    return all(char in "0123456789abcdef" for char in text)
