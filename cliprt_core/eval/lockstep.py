"""
Lockstep between a simulator and a remote policy: one observation out, only its answer in.

Used by the ROS LIBERO bridge (the answer is an action chunk whose header stamp echoes the
observation's); ROS-free so it is tested on its own. Times are plain floats in seconds.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Hashable


@dataclass
class Lockstep:
    """
    Pairs each observation with the one answer that may advance the simulator.

    ``expect(key, now)`` registers the latest observation (its key is what the answer must
    echo, e.g. the image stamp); ``offer(key)`` says whether an answer is *the* answer to the
    pending observation. Anything else is counted: ``stale`` (it answers an earlier observation
    or one already answered) or ``mismatched`` (a key this side never issued). ``expired(now)``
    tells whether the pending observation went unanswered for longer than ``timeout``.
    """

    timeout: float
    history: int = 64
    pending: Hashable | None = None
    sent_at: float | None = None
    accepted: int = 0
    stale: int = 0
    mismatched: int = 0
    _issued: deque = field(default_factory=deque, repr=False)

    def expect(self, key: Hashable, now: float) -> None:
        if key in self._issued:
            raise ValueError(f'observation key {key!r} was already used; keys must be unique')
        self.pending = key
        self.sent_at = now
        self._issued.append(key)
        while len(self._issued) > self.history:
            self._issued.popleft()

    def offer(self, key: Hashable) -> bool:
        if self.pending is not None and key == self.pending:
            self.pending = None
            self.sent_at = None
            self.accepted += 1
            return True
        if key in self._issued:
            self.stale += 1
        else:
            self.mismatched += 1
        return False

    def cancel(self) -> None:
        """Forget the pending observation (episode over); late answers then count as stale."""
        self.pending = None
        self.sent_at = None

    def waited(self, now: float) -> float:
        return 0.0 if self.sent_at is None else now - self.sent_at

    def expired(self, now: float) -> bool:
        return self.pending is not None and self.timeout > 0 and self.waited(now) > self.timeout
