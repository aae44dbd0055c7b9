"""Ctrl-C and SIGTERM are failures: one line, exit 130 / 143, and no half-written output.

:func:`raising_on_signals` (around the CLI's ``main``) turns SIGINT and SIGTERM into
:class:`Interrupted`. It is a ``BaseException`` on purpose: ``except Exception`` blocks in
libraries do not swallow it, click does not turn it into a silent ``Abort``, and the ``finally``
blocks of :func:`dpaudit.io.atomic_dir` still run and remove their temporary directories.
:func:`signals_deferred` holds a signal back across the few instructions that must not be
split (the rename that swaps an output directory in place).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM)
NOTHING_WRITTEN = "nothing written"


class Interrupted(BaseException):
    """The process got SIGINT or SIGTERM; ``exit_code`` is 128 + the signal number (130, 143)."""

    def __init__(self, signum: int, *, hint: str = NOTHING_WRITTEN) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        self.hint = hint
        super().__init__(signum)

    def __str__(self) -> str:
        return f"interrupted; {self.hint}"


_pending: list[int] = []  # signals that arrived inside signals_deferred(), in order
_deferring = 0  # nesting depth of signals_deferred()


def _raise(signum: int, frame: FrameType | None) -> None:
    if _deferring:
        _pending.append(signum)
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def raising_on_signals() -> Iterator[None]:
    """Inside the block SIGINT and SIGTERM raise :class:`Interrupted`; the old handlers come back after it.

    Only the main thread can install handlers; elsewhere the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise) for signum in HANDLED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back inside the block; one that arrived meanwhile is raised right after it.

    Python runs signal handlers in the main thread between bytecodes, so the handler itself defers
    (blocking the signal with ``pthread_sigmask`` would not do: another thread may receive it).
    """
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _pending:
            signum = _pending[0]
            _pending.clear()
            raise Interrupted(signum)
