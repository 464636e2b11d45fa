"""What a recorder that keeps the hash chain provides, on any backend.

The backend modules subclass the eventsourcing application recorders and
call `_append_links` inside the transaction that inserts the events,
while that transaction holds the write lock on the events table. Links
are therefore appended in position order, one writer at a time, and an
event is recorded if and only if its link is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from chain.links import Link, RecordedEvent, next_links

BATCH_SIZE = 1000


class ChainRecorder(ABC):
    """The chain operations of an application recorder."""

    @abstractmethod
    def select_links(self, start: int, limit: int, stop: int) -> list[Link]:
        """Return up to `limit` links after position `start`, up to `stop`, in order."""

    @abstractmethod
    def select_link_of(self, originator_id: str, originator_version: int) -> Link | None:
        """Return the link that binds the given event, wherever it is."""

    @abstractmethod
    def select_position_of(self, originator_id: str, originator_version: int) -> int | None:
        """Return the position at which the given event is stored now."""

    @abstractmethod
    def select_recorded(self, start: int, limit: int, stop: int) -> list[RecordedEvent]:
        """Return up to `limit` stored events after position `start`, up to `stop`, in order.

        Values come as stored, without the event store's conversions, so a
        row that was tampered into another type is returned rather than
        raising. Its state may then be None or text instead of bytes.
        """

    @abstractmethod
    def max_link_position(self) -> int | None:
        """Return the position of the last link, None for an empty chain."""

    @abstractmethod
    def chain_earlier_events(self) -> int:
        """Link the events recorded before the chain existed; return how many.

        Does nothing when the chain already has links, because an unlinked
        event after the first link is a break that verification reports.
        """

    def _append_links(self, cursor: Any, events: Sequence[RecordedEvent]) -> None:
        """Append links for events just inserted; the caller holds the write lock."""
        head = self._select_head(cursor)
        if head is None:
            # The first chained write of a ledger that has events from before
            # the chain links those first, so the chain starts at position 1.
            head, _ = self._link_unlinked(cursor, before=min(e.position for e in events))
        self._insert_links(cursor, next_links(head, events))

    def _link_unlinked(self, cursor: Any, before: int | None) -> tuple[Link | None, int]:
        """Link every event before position `before` (all without it), in batches."""
        head: Link | None = None
        count = 0
        while True:
            start = head.position if head else 0
            events = self._select_recorded(cursor, start, before, BATCH_SIZE)
            if not events:
                return head, count
            links = next_links(head, events)
            self._insert_links(cursor, links)
            head = links[-1]
            count += len(links)

    @abstractmethod
    def _select_head(self, cursor: Any) -> Link | None: ...

    @abstractmethod
    def _select_recorded(
        self, cursor: Any, start: int, before: int | None, limit: int
    ) -> list[RecordedEvent]:
        """Return stored events after position `start` and before `before`, in order."""

    @abstractmethod
    def _insert_links(self, cursor: Any, links: Sequence[Link]) -> None: ...
