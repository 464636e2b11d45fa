"""A projector process: keeps read models up to date until it is stopped.

Any number of runners may start, on any number of hosts. For each read
model one of them holds its runner lock and applies new events. The others
stand by and try the lock every poll interval, so one of them takes over
within about that interval after the active runner's session ends. Every batch
still runs under the projector's transaction lock and re-reads the
position it starts from, so no event is applied twice or skipped even
while a runner that lost its lock has not noticed yet.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Sequence

from projections.database import UNAVAILABLE_ERRORS
from projections.projection import Projection
from projections.projector import Projector
from projections.runner_locks import RunnerLocks

logger = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 10.0
# A read model that failed on an event is tried again after this long,
# doubling with each failure in a row up to the maximum. The runner keeps
# the other read models current meanwhile.
FAILED_MODEL_FIRST_RETRY_SECONDS = 5.0
FAILED_MODEL_MAX_RETRY_SECONDS = 300.0
# How often a wait checks whether the runner was asked to stop.
STOP_CHECK_SECONDS = 0.25


class _Stopping(Exception):
    """Raised between batches when the runner was asked to stop."""


class Runner:
    """Applies new ledger events to the read models whose lock it holds.

    Wakes up on each notification of new events and, as a safety net
    against lost notifications, every `poll_interval` seconds. After a
    database error it drops its locks, waits with exponential backoff and
    starts over. `projector` returns the projector to use, and may raise a
    database error while the database is down.

    The read models named in `first` get batches of their own, applied
    before the others'. A batch holds the lock of each read model it
    applies to until it commits. Requests that catch up some read models
    themselves wait for those locks, which batches of their own hold for
    a few models' work instead of every model's.
    """

    def __init__(
        self,
        projector: Callable[[], Projector],
        locks: RunnerLocks,
        projections: Sequence[Projection],
        runner_id: str,
        poll_interval: float = 1.0,
        first: Collection[str] = (),
    ) -> None:
        self.projector = projector
        self.locks = locks
        self.projections = list(projections)
        self.first = frozenset(first)
        self.runner_id = runner_id
        self.poll_interval = poll_interval
        self.held: set[str] = set()
        # Read models whose lock was just taken, whose indexes are checked
        # before their first batch.
        self.unchecked: set[str] = set()
        self.standing_by: set[str] = set()
        # When to try each failed read model again, and its current delay.
        self.paused_until: dict[str, float] = {}
        self.pause_seconds: dict[str, float] = {}
        self.stopping = threading.Event()

    def stop(self) -> None:
        """Ask the runner to finish its current batch and return from `run`."""
        self.stopping.set()

    def run(self) -> None:
        logger.info("projector started", extra=self._ids(read_models=self._names()))
        retry_in = FIRST_RETRY_SECONDS
        try:
            while not self.stopping.is_set():
                try:
                    self.locks.connect()
                    self._acquire()
                    self._catch_up()
                    retry_in = FIRST_RETRY_SECONDS
                    self._wait()
                except UNAVAILABLE_ERRORS as error:
                    self._drop_locks(error)
                    delay = retry_in * random.uniform(0.8, 1.2)
                    logger.warning(
                        "database unavailable; projector retrying",
                        extra=self._ids(error=f"{type(error).__name__}: {error}",
                                        retry_in_seconds=round(delay, 2)),
                    )
                    self.stopping.wait(delay)
                    retry_in = min(retry_in * 2, MAX_RETRY_SECONDS)
        except Exception:
            logger.exception("projector failed", extra=self._ids(read_models=sorted(self.held)))
            raise
        finally:
            self.locks.close()
        logger.info("projector stopped", extra=self._ids(read_models=sorted(self.held)))
        self.held.clear()

    def _acquire(self) -> None:
        for projection in self.projections:
            name = projection.name
            if name in self.held:
                continue
            if self.locks.try_acquire(name):
                self.held.add(name)
                self.unchecked.add(name)
                took_over = name in self.standing_by
                self.standing_by.discard(name)
                logger.info(
                    "took over read model" if took_over else "running read model",
                    extra=self._ids(read_model=name, failover=took_over),
                )
            elif name not in self.standing_by:
                self.standing_by.add(name)
                logger.info("standing by for read model", extra=self._ids(read_model=name))

    def _catch_up(self) -> None:
        held = [projection for projection in self.projections if projection.name in self.held]
        if not held:
            return
        projector = self.projector()
        unchecked = [projection for projection in held if projection.name in self.unchecked]
        if unchecked:
            restored = projector.restore_query_indexes(unchecked)
            self.unchecked.clear()
            if restored:
                logger.warning("rebuilt query indexes that an interrupted fill left dropped",
                               extra=self._ids(indexes=restored))
        now = time.monotonic()
        due = [p for p in held if self.paused_until.get(p.name, 0.0) <= now]
        groups = ([p for p in due if p.name in self.first],
                  [p for p in due if p.name not in self.first])
        count = 0
        try:
            for group in groups:
                if group:
                    count += self._catch_up_group(projector, group)
        except _Stopping:
            return
        if count:
            logger.debug(
                "applied events",
                extra=self._ids(read_models=[p.name for p in held], events=count),
            )

    def _catch_up_group(self, projector: Projector, group: list[Projection]) -> int:
        """Catch up one group of read models, pausing those that fail instead of stopping."""
        try:
            count = projector.catch_up(projections=group, before_batch=self._before_batch)
        except _Stopping:
            raise
        except Exception as error:
            failed = getattr(error, "failed_read_models", ())
            if isinstance(error, UNAVAILABLE_ERRORS) or not failed:
                raise
            self._pause(failed, error)
            return 0
        for projection in group:
            self.pause_seconds.pop(projection.name, None)
            self.paused_until.pop(projection.name, None)
        return count

    def _pause(self, names: Collection[str], error: BaseException) -> None:
        for name in names:
            delay = self.pause_seconds.get(name, FAILED_MODEL_FIRST_RETRY_SECONDS / 2) * 2
            delay = min(delay, FAILED_MODEL_MAX_RETRY_SECONDS)
            self.pause_seconds[name] = delay
            self.paused_until[name] = time.monotonic() + delay
            logger.error(
                "read model failed, projector continues with the others",
                extra=self._ids(read_model=name, retry_in_seconds=delay,
                                error=f"{type(error).__name__}: {error}"),
            )

    def _before_batch(self) -> None:
        # The lock session may have ended since the last batch.
        self.locks.check()
        if self.stopping.is_set():
            raise _Stopping

    def _wait(self) -> None:
        deadline = time.monotonic() + self.poll_interval
        while not self.stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self.locks.wait(min(remaining, STOP_CHECK_SECONDS)):
                return

    def _drop_locks(self, error: BaseException) -> None:
        for name in sorted(self.held):
            logger.warning(
                "lost read model lock", extra=self._ids(read_model=name, error=str(error))
            )
        self.held.clear()
        self.locks.close()

    def _names(self) -> list[str]:
        return [projection.name for projection in self.projections]

    def _ids(self, **fields: object) -> dict[str, object]:
        return {"runner": self.runner_id, **fields}
