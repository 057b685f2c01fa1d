"""
Stopping a training run on SIGTERM / SIGINT without losing it.

What systemd, SLURM, containers and ``kill -- -PGID`` send reaches the whole process group:
the trainer *and* its DataLoader workers. The main process turns the signal into a stop request
(:class:`StopRequest`: it saves ``last.pt`` at the next step boundary and exits with
``128 + signum``); the workers ignore both signals (:mod:`cliprt_core.data.loader`), so they
keep serving batches until the main process shuts them down.
"""
from __future__ import annotations

from contextlib import contextmanager
import logging
import signal
import threading
from typing import Iterator

from cliprt_core.data.loader import STOP_SIGNALS

log = logging.getLogger('cliprt.train')


def exit_code(signum: int) -> int:
    """Return the shell's code for a process stopped by ``signum`` (130 SIGINT, 143 SIGTERM)."""
    return 128 + int(signum)


class Interrupted(BaseException):
    """Raised by :func:`interrupt_on_signals` handlers: a stop signal arrived during set-up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signum)


@contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise :class:`Interrupted` (before training, nothing to save yet)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_interrupted) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class StopRequest:
    """
    SIGTERM / SIGINT handlers that record a stop request instead of killing the process.

    A second SIGINT (Ctrl-C twice) raises KeyboardInterrupt: the user wants out now, without
    waiting for the save (the previous checkpoint is kept; saves are atomic).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum is not None else None

    def _handle(self, signum, frame) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is None:
            self.signum = int(signum)
            log.warning('%s received: saving checkpoints/last.pt at the end of this step, then '
                        'stopping', signal.Signals(signum).name)

    def __enter__(self) -> 'StopRequest':
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
