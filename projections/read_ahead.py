"""Reading the next batch of ledger events while the projector applies the current one.

A batch's time splits into work in this process (decoding events and
applying them) and waits for the database (reading the notifications,
writing rows, committing). A thread reads and decodes the next batch
during those waits, so that both stay busy. The database reads the next
batch while this process applies the current one. This process decodes
the next batch while the database writes the current one. The decode
holds the interpreter lock, so it overlaps the waits, not the apply.

A batch read ahead is only a guess at the next range. It is used when the
next range is the one guessed and dropped otherwise, and committed events
never change, so a batch read early is the same as one read late. Any
error of the thread is dropped with its batch: the projector then reads
the range itself, where the error is raised and handled as it always is.
Databases whose `reads_ahead` is false, SQLite's, skip the thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from eventsourcing.application import Application
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import Notification

logger = logging.getLogger(__name__)

# A batch whose stored states add up to more than this is left for the
# projector to decode one event at a time, which drops each state before
# the next is decoded. One commit list can take tens of megabytes.
DECODE_AHEAD_MAX_BYTES = 8 * 1024 * 1024


@dataclass
class Batch:
    """The notifications after ledger position `after`, up to `target`, and their events.

    `events` lists the decoded events in the order of `notifications`, or
    is None when they are still to be decoded.
    """

    after: int
    target: int
    notifications: list[Notification]
    events: list[DomainEvent] | None = None

    @property
    def end(self) -> int:
        """Return the position the read models reach once the batch is applied."""
        return self.notifications[-1].id if self.notifications else self.target


def read_batch(
    ledger: Application, after: int, target: int, limit: int, decode_events: bool = False
) -> Batch:
    """Read up to `limit` notifications after position `after`, up to `target`.

    With `decode_events`, the batch carries their events too, unless
    `decode_ahead` leaves them to be decoded one at a time.
    """
    notifications = ledger.recorder.select_notifications(
        start=after, limit=limit, stop=target, inclusive_of_start=False
    )
    events = decode_ahead(notifications, ledger.mapper.to_domain_event) if decode_events else None
    return Batch(after, target, notifications, events)


def decode_ahead(
    notifications: list[Notification], decode: Callable[[Notification], DomainEvent]
) -> list[DomainEvent] | None:
    """Return the decoded events of a batch that is small enough, else None.

    A notification that fails to decode also gives None, so that the
    projector decodes it again where the failure is reported.
    """
    if sum(len(notification.state) for notification in notifications) > DECODE_AHEAD_MAX_BYTES:
        return None
    try:
        return [decode(notification) for notification in notifications]
    except Exception as error:
        # The projector meets the same error when it decodes the event, and reports it.
        logger.debug("decoding ahead failed", extra={
            "after": notifications[0].id - 1, "error": str(error),
        })
        return None


class ReadAhead:
    """One thread that reads the batch after the one being applied.

    `read(after, target)` returns the batch after `after`. Use it as a
    context manager: leaving it waits for a read still under way, which
    one query bounds, and drops its batch.
    """

    def __init__(self, read: Callable[[int, int], Batch]) -> None:
        self._read = read
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
        self._pending: tuple[int, int, Future[Batch]] | None = None

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pending = None
        self._executor.shutdown(wait=True, cancel_futures=True)

    def start(self, after: int, target: int) -> None:
        """Begin reading the batch after `after`, replacing any batch not taken."""
        self._pending = (after, target, self._executor.submit(self._read, after, target))

    def take(self, after: int, target: int) -> Batch | None:
        """Return the batch read ahead for this range, or None if there is none to use."""
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        pending_after, pending_target, future = pending
        if (pending_after, pending_target) != (after, target):
            future.cancel()
            return None
        try:
            return future.result()
        except Exception as error:
            # The projector reads the range itself and handles the error it meets there.
            logger.debug("reading ahead failed", extra={"after": after, "error": str(error)})
            return None


def read_ahead_if(
    enabled: bool, read: Callable[[int, int], Batch]
) -> AbstractContextManager[ReadAhead | None]:
    """Return a ReadAhead of `read` when `enabled`, else a context that gives None."""
    return ReadAhead(read) if enabled else nullcontext(None)


def next_batch(
    read_ahead: ReadAhead | None, after: int, target: int, read: Callable[[int, int], Batch]
) -> Batch:
    """Return the batch after `after`: the one read ahead for this range, else `read`'s.

    When the batch stops short of `target`, `read_ahead` starts reading
    the range after it.
    """
    batch = read_ahead.take(after, target) if read_ahead is not None else None
    if batch is None:
        batch = read(after, target)
    if read_ahead is not None and batch.end < target:
        read_ahead.start(batch.end, target)
    return batch
