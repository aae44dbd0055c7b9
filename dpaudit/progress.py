"""Progress that is seen wherever the output goes: a live bar on a terminal, plain lines in a log.

A rich bar draws nothing until it ends when stderr is not a terminal (CI logs, ``| tee``), so a
long scoring or generation pass would look like a hang there. Without a terminal,
:class:`PlainProgress` prints a line at the first step, then at least every
:data:`PLAIN_INTERVAL_S` seconds, and at the last: ``scoring 40/240 elapsed 0:00:30 left 0:02:30``.
Every loop that can run for minutes (training, scoring, generation, fanned-out tasks) reports
through here, so every command speaks at least every 30 seconds.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator

from rich.console import Console

PLAIN_INTERVAL_S = 30.0

Advance = Callable[..., None]


def clock(seconds: float) -> str:
    """``75.2 -> "0:01:15"``; an unknown duration is "-"."""
    if not math.isfinite(seconds):
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class PlainProgress:
    """Plain progress lines on ``console``: first step, every ``interval_s`` seconds, last step.

    ``start`` counts steps done before this run (a resumed training), so the time left is
    estimated from this run's pace only.
    """

    def __init__(self, label: str, total: int, *, console: Console, start: int = 0,
                 interval_s: float | None = None) -> None:
        self.label, self.total, self.start, self.done = label, total, start, start
        self.console = console
        self.interval_s = PLAIN_INTERVAL_S if interval_s is None else interval_s
        self.started = self.last_line = time.monotonic()
        self.reported = False

    def advance(self, n: int = 1, detail: str = "") -> None:
        self.update(self.done + n, detail)

    def update(self, done: int, detail: str = "") -> None:
        self.done = done
        now = time.monotonic()
        if self.reported and done < self.total and now - self.last_line < self.interval_s:
            return
        self.reported, self.last_line = True, now
        elapsed = now - self.started
        left = elapsed / (done - self.start) * (self.total - done) if done > self.start else float("nan")
        text = f"{self.label} {done}/{self.total}" + (f" {detail}" if detail else "")
        self.console.print(f"{text} elapsed {clock(elapsed)} left {clock(left)}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def progress_bar(label: str, total: int, *, enabled: bool) -> Iterator[Advance]:
    """``with progress_bar("scoring", n, enabled=progress) as advance: ... advance(k)``.

    On a terminal a transient rich bar (stderr, so stdout stays clean for ``--json``); otherwise
    :class:`PlainProgress` lines; nothing when ``enabled`` is False.
    """
    if not enabled:
        yield _nothing
        return
    console = Console(stderr=True)
    if not console.is_terminal:
        yield PlainProgress(label, total, console=console).advance
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn(), transient=True, console=console)
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda n=1, detail="": bar.advance(task, n)


def _nothing(n: int = 1, detail: str = "") -> None:
    return None
