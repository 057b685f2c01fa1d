"""
Recording teleoperated episodes from streams: latest observation + each executed action.

The recorder node feeds :class:`EpisodeRecorder` with what arrives: camera frames, joint states,
end-effector poses, the instruction, the phrase of each new command and each executed action.
A step is recorded per executed action, with the latest observation (the one the action was
applied to) and the phrase of the current command; ``start`` / ``stop`` / ``discard`` delimit
episodes, ``stop`` saves through :class:`~cliprt_core.data.episode_store.EpisodeStore`. Until
``stop`` the episode lives in memory only: a kill loses at most the episode in progress.
"""
from __future__ import annotations

from datetime import datetime, timezone
import time

from cliprt_core.data.episode_store import EpisodeStore
from cliprt_core.data.phrases import phrase_arrays
from cliprt_core.data.recording import DemoRecorder
from cliprt_core.sim.libero_env import Observation
from cliprt_core.teleop.settings import RecorderConfig
import numpy as np

__all__ = ['EpisodeRecorder']


class EpisodeRecorder:
    """Assemble steps from the latest observation parts; save episodes on ``stop``."""

    def __init__(self, config: RecorderConfig, store: EpisodeStore | None = None,
                 clock=time.monotonic) -> None:
        self.config = config
        self.store = store or EpisodeStore(config.output_dir, self._data_attrs(config))
        self.clock = clock
        self.instruction: str | None = config.instruction or None
        self.recording = False
        self.saved: list[tuple[str, str, int]] = []  # (file, demo, steps)
        self.skipped: dict[str, int] = {}
        self._parts: dict[str, tuple[float, object]] = {}
        self._phrase = ''
        self._primitive_step = -1
        self._reset_episode()

    @staticmethod
    def _data_attrs(config: RecorderConfig) -> dict:
        attrs = {'recorded_by': 'cliprt recorder_node'}
        if config.suite:
            attrs.update(suite=config.suite, task_id=int(config.task_id))
        return attrs

    def _reset_episode(self) -> None:
        self._demo = DemoRecorder()
        self._phrases: list[str] = []
        self._steps: list[int] = []
        self._started_at = ''

    @property
    def steps(self) -> int:
        """Return the number of steps of the episode in progress."""
        return len(self._demo)

    # --- inputs ----------------------------------------------------------------------------
    def observe(self, part: str, value) -> None:
        """Keep the latest ``camera`` / ``wrist`` image, ``joints`` (7 + 2) or ``pose``."""
        self._parts[part] = (self.clock(), value)

    def set_instruction(self, text: str) -> None:
        """Take the task instruction from the topic (unless the parameter fixes it)."""
        if not self.config.instruction and text.strip():
            self.instruction = ' '.join(text.split())

    def set_primitive(self, phrase: str) -> None:
        """Start a new command: the next executed action is its first step."""
        self._phrase = ' '.join(phrase.split())
        self._primitive_step = 0

    def add_action(self, action) -> str | None:
        """Record one executed action; return why it was not recorded (None if it was)."""
        if not self.recording:
            return None
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (7,) or not np.isfinite(action).all():
            return self._skip('invalid action', f'action must be 7 finite values, got '
                              f'{action.tolist()}')
        needed = ('camera', 'joints', 'pose') + (('wrist',) if self.config.wrist else ())
        missing = [p for p in needed if p not in self._parts]
        if missing:
            return self._skip('no observation', f"no {', '.join(missing)} received yet")
        now = self.clock()
        stale = [p for p in needed if now - self._parts[p][0] > self.config.max_observation_age]
        if stale:
            return self._skip('stale observation', f"{', '.join(stale)} older than "
                              f'{self.config.max_observation_age} s')
        joints = np.asarray(self._parts['joints'][1], dtype=np.float64)
        pos, quat = self._parts['pose'][1]
        wrist = self._parts['wrist'][1] if self.config.wrist else None
        observation = Observation(agentview=self._parts['camera'][1], wrist=wrist,
                                  joint_states=joints[:7], gripper_states=joints[7:9],
                                  eef_pos=np.asarray(pos, dtype=np.float64),
                                  eef_quat=np.asarray(quat, dtype=np.float64))
        self._demo.add(observation, None, action)
        self._phrases.append(self._phrase)
        self._steps.append(self._primitive_step)
        if self._primitive_step >= 0:
            self._primitive_step += 1
        return None

    def _skip(self, kind: str, reason: str) -> str:
        self.skipped[kind] = self.skipped.get(kind, 0) + 1
        return reason

    @property
    def full(self) -> bool:
        """Return whether the episode reached ``max_episode_steps`` (the node then stops it)."""
        return self.recording and 0 < self.config.max_episode_steps <= self.steps

    # --- services --------------------------------------------------------------------------
    def start(self) -> tuple[bool, str]:
        if self.recording:
            return False, f'already recording ({self.steps} steps so far)'
        self._reset_episode()
        self.recording = True
        self._phrase, self._primitive_step = '', -1
        self._started_at = datetime.now(timezone.utc).isoformat(timespec='seconds')
        return True, 'recording'

    def discard(self) -> tuple[bool, str]:
        if not self.recording:
            return False, 'not recording'
        steps = self.steps
        self.recording = False
        self._reset_episode()
        return True, f'discarded {steps} steps'

    def stop(self) -> tuple[bool, str]:
        """Save the episode (nothing is saved when it has no step or no instruction)."""
        if not self.recording:
            return False, 'not recording'
        if not self.steps:
            self.recording = False
            return False, 'no step was recorded (no executed action); nothing saved'
        if not self.instruction:
            return False, ('no instruction yet (publish one on the instruction topic or set '
                           'the instruction parameter); still recording')
        arrays = self._demo.arrays()
        if any(self._phrases):
            arrays.update(phrase_arrays(self._phrases, self._steps))
        attrs = {'init_state_index': int(self.config.init_state), 'source': 'teleoperation',
                 'started_at': self._started_at}
        path, demo = self.store.save(self.instruction, arrays, attrs)
        steps = self.steps
        self.saved.append((str(path), demo, steps))
        self.recording = False
        self._reset_episode()
        return True, f'saved {steps} steps as {demo} of {path}'
