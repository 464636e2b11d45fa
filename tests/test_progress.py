"""Rebuild progress: a bar redrawn on a terminal, plain periodic lines elsewhere."""

from __future__ import annotations

import io

from api.progress import ProgressReport, bar_line, plain_line
from projections.rebuild import Progress


class Stream(io.StringIO):
    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def progress(position: int, applied: int, elapsed: float, done: bool = False) -> Progress:
    return Progress("releases_v1", position, 1000, applied, elapsed, done)


def test_bar_shows_share_rate_and_time_left():
    line = bar_line(progress(400, 400, 2.0))

    assert line == (
        "releases_v1 [############..................]  40%  400/1,000 events"
        "  200 events/s  0:00:03 left"
    )


def test_bar_before_first_event_has_unknown_time_left():
    assert bar_line(progress(0, 0, 0.0)).endswith("0 events/s  -:--:-- left")


def test_plain_line_counts_this_run_only_after_resume():
    line = plain_line(progress(600, 100, 1.0))

    assert line == "rebuild releases_v1: position 600 of 1,000 (60%), 100 events/s, 0:00:04 left"


def test_terminal_gets_one_line_redrawn_in_place():
    stream = Stream(terminal=True)
    report = ProgressReport(stream)

    report(progress(100, 100, 1.0))
    report(progress(200, 200, 2.0))
    report(progress(1000, 1000, 4.0, done=True))

    output = stream.getvalue()
    assert output.count("\r") == 3
    assert output.count("\n") == 1
    assert output.endswith("100%  1,000/1,000 events  250 events/s  0:00:00 left\x1b[K\n")


def test_plain_lines_once_per_interval():
    stream = Stream(terminal=False)
    clock = Clock()
    report = ProgressReport(stream, interval=10.0, clock=clock)

    for second in range(25):
        clock.now = float(second)
        report(progress(second * 10, second * 10, float(second)))
    report(progress(1000, 1000, 30.0, done=True))

    lines = stream.getvalue().splitlines()
    assert [line.split(":")[1].split(" of")[0] for line in lines[:3]] == [
        " position 0", " position 100", " position 200",
    ]
    assert lines[3] == (
        "rebuild releases_v1: live at position 1,000; 1,000 events in 30.0 s (33 events/s)"
    )
    assert len(lines) == 4
    assert "\r" not in stream.getvalue()
