"""
Stopping long jobs on SIGTERM / SIGINT at a safe point instead of wherever the signal lands.

A signal handler that raises (Python's default for SIGINT) interrupts whatever code runs at
that moment, and third-party code may turn the exception into something else: robosuite wraps
any error while building observables in a ``ValueError``, so a Ctrl-C during a LIBERO reset
became a "simulator failure" and the evaluation went on. :class:`StopRequest` only records the
request; the job checks it at its own safe points (a training step, an evaluation round), keeps
what is finished and exits with :func:`exit_code`.
"""
from __future__ import annotations

from contextlib import contextmanager
import logging
import signal
import threading
from typing import Iterator

#: What systemd, SLURM, containers, ``kill`` and a terminal's Ctrl-C send.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def exit_code(signum: int) -> int:
    """Return the shell's code for a job stopped by ``signum`` (130 SIGINT, 143 SIGTERM)."""
    return 128 + int(signum)


class Interrupted(BaseException):
    """Raised by :func:`interrupt_on_signals` handlers: a stop signal arrived (nothing to save)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signum)


@contextmanager
def stop_handlers_restored() -> Iterator[None]:
    """Put the SIGTERM / SIGINT handlers of now back on exit, whatever changed them meanwhile."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """Make SIGTERM and SIGINT raise :class:`Interrupted` (set-up phases: nothing to save yet)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with stop_handlers_restored():
        for sig in STOP_SIGNALS:
            signal.signal(sig, _raise_interrupted)
        yield


class StopRequest:
    """
    SIGTERM / SIGINT handlers that record a stop request instead of killing the process.

    Use as a context manager around the job (the previous handlers come back on exit; outside
    the main thread it does nothing). ``then`` says in the log what the job does next. A second
    SIGINT (Ctrl-C twice) raises KeyboardInterrupt: the user wants out now.
    """

    def __init__(self, then: str, logger: logging.Logger | None = None) -> None:
        self.signum: int | None = None
        self.then = then
        self.log = logger or logging.getLogger('cliprt')
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """Whether a stop signal arrived."""
        return self.signum is not None

    @property
    def name(self) -> str | None:
        """Return the name of the signal that arrived (``SIGTERM``), or None."""
        return signal.Signals(self.signum).name if self.signum is not None else None

    def _handle(self, signum, frame) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is None:
            self.signum = int(signum)
            self.log.warning('%s received: %s', signal.Signals(signum).name, self.then)

    def __enter__(self) -> 'StopRequest':
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
