"""Progress of long commands: a bar on a terminal, periodic plain lines elsewhere."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from projections.rebuild import Progress

BAR_WIDTH = 30
PLAIN_INTERVAL_SECONDS = 10.0


class ProgressReport:
    """Shows rebuild progress on `stream` with the rate and the time left.

    On a terminal one line is redrawn in place after every batch. Elsewhere
    (a log file, a pipe, CI) a plain line is written at most once every
    `interval` seconds, and once at the end.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        interval: float = PLAIN_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stderr
        self.interval = interval
        self.clock = clock
        self.on_terminal = self.stream.isatty()
        self._last_line_at: float | None = None

    def __call__(self, progress: Progress) -> None:
        if self.on_terminal:
            end = "\n" if progress.done else ""
            self.stream.write("\r" + bar_line(progress) + "\x1b[K" + end)
            self.stream.flush()
            return
        now = self.clock()
        due = self._last_line_at is None or now - self._last_line_at >= self.interval
        if due or progress.done:
            self._last_line_at = now
            self.stream.write(plain_line(progress) + "\n")
            self.stream.flush()


def bar_line(progress: Progress) -> str:
    """Return `name [####....]  42%  420/1,000 events  350 events/s  0:00:02 left`."""
    fraction = _fraction(progress)
    filled = round(fraction * BAR_WIDTH)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    return (
        f"{progress.name} [{bar}] {fraction:4.0%}  {progress.position:,}/{progress.head:,}"
        f" events  {_rate(progress):,.0f} events/s  {_clock_time(_seconds_left(progress))} left"
    )


def plain_line(progress: Progress) -> str:
    """Return one log-friendly line with the same figures as the bar."""
    if progress.done:
        return (
            f"rebuild {progress.name}: live at position {progress.position:,};"
            f" {progress.applied:,} events in {progress.elapsed:.1f} s"
            f" ({_rate(progress):,.0f} events/s)"
        )
    return (
        f"rebuild {progress.name}: position {progress.position:,} of {progress.head:,}"
        f" ({_fraction(progress):.0%}), {_rate(progress):,.0f} events/s,"
        f" {_clock_time(_seconds_left(progress))} left"
    )


def _fraction(progress: Progress) -> float:
    if progress.head <= 0:
        return 1.0
    return min(progress.position / progress.head, 1.0)


def _rate(progress: Progress) -> float:
    return progress.applied / progress.elapsed if progress.elapsed > 0 else 0.0


def _seconds_left(progress: Progress) -> float | None:
    """Return the estimated seconds left at this run's rate; None before any event."""
    rate = _rate(progress)
    if progress.done or progress.position >= progress.head:
        return 0.0
    if rate <= 0:
        return None
    return (progress.head - progress.position) / rate


def _clock_time(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
