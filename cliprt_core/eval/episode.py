"""
One evaluation episode as a state machine (the single implementation of the protocol loop).

Two ways to drive it:

- ``run_episode(env, init_index, chunk_fn)`` — a plain loop, in-process.
- ``Episode`` — incremental, for callers that get actions asynchronously (the parallel runner,
  the ROS LIBERO bridge)::

      episode = Episode(env, init_index, max_steps=None)
      obs = episode.start()                 # reset + init state + settle steps
      while obs is not None:                # obs needs an action chunk for episode.instruction
          chunk = ...                       # (k, 7) actions, e.g. a CLIP-RT+ chunk (8, 7)
          obs = episode.apply_chunk(chunk)  # executes ALL k actions unless the episode ends
      record = episode.result().to_record()

The protocol it enforces: every action of a chunk runs before the next query; the episode stops
at the first success or when the horizon (``min(env.horizon, max_steps)``) is used up.

Only what is consumed is rendered: the cameras at the last step of a chunk (the observation of
the next query), every step's frame only when a video is written. Skipped renders change neither
the physics nor any later frame, so results equal those of ``render_all_steps=True`` (the old
path: every camera at every step), which is tested and kept for benchmarks. Any
exception of the simulator (reset or step), an invalid chunk (wrong shape, NaN/inf), or an error
reported by the caller through ``fail()`` ends the episode as a failure with the error recorded.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
import os
from pathlib import Path
import time
from typing import Any, Callable, Protocol
import warnings

from cliprt_core.eval.video import VideoWriter
from cliprt_core.sim.protocol import ACTION_DIM
import numpy as np

ChunkFn = Callable[[np.ndarray, str], np.ndarray]


class TaskEnv(Protocol):
    """What an episode needs from an environment (``LiberoTaskEnv`` implements it)."""

    suite: str
    task_id: int
    language: str
    horizon: int
    episode_seed: int | None

    def reset(self, init_state_index: int) -> Any: ...

    def step(self, action: np.ndarray, render: bool = True) -> Any: ...

    def state_fingerprint(self) -> str: ...


@dataclass
class EpisodeTiming:
    reset_s: float = 0.0  # env.reset + init state + settle steps
    sim_s: float = 0.0  # policy steps in the simulator (rendering included)
    policy_s: float = 0.0  # time spent producing chunks (as reported by the caller)
    total_s: float = 0.0  # start() to the end


@dataclass
class EpisodeResult:
    """The outcome of one episode: one line of ``episodes.jsonl``."""

    suite: str
    task_id: int
    task: str  # the instruction (task.language)
    episode: int  # init state index
    success: bool
    steps: int  # policy steps executed (settle steps excluded)
    queries: int  # chunks requested from the policy
    error: str | None = None
    seed: int | None = None
    state_hash: str | None = None  # MuJoCo state at the end: equal rollouts have equal hashes
    video: str | None = None
    time: EpisodeTiming = field(default_factory=EpisodeTiming)

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.suite, self.task_id, self.episode)

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record['time'] = {k: round(v, 4) for k, v in record['time'].items()}
        record['finished_at'] = datetime.now(timezone.utc).isoformat(timespec='seconds')
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> 'EpisodeResult':
        data = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        data['time'] = EpisodeTiming(**record.get('time', {}))
        return cls(**data)


def format_error(error: BaseException | str) -> str:
    """``ExceptionType: message`` (one line, bounded) for the results file."""
    if isinstance(error, BaseException):
        text = f'{type(error).__name__}: {error}'
    else:
        text = str(error)
    text = ' '.join(text.split())
    return text if len(text) <= 500 else text[:497] + '...'


def video_name(suite: str, task_id: int, episode: int, success: bool | None = None) -> str:
    """``libero_spatial/task00_ep007_success.mp4`` (no outcome suffix: the base name)."""
    outcome = '' if success is None else ('_success' if success else '_failure')
    return f'{suite}/task{task_id:02d}_ep{episode:03d}{outcome}.mp4'


class Episode:
    """Incremental episode: ``start()``, then ``apply_chunk()`` until it returns None."""

    def __init__(self, env: TaskEnv, init_index: int, *, max_steps: int | None = None,
                 video: str | os.PathLike | None = None, clip_actions: bool = True,
                 binarize_gripper: bool = False, render_all_steps: bool = False) -> None:
        if max_steps is not None and max_steps < 1:
            raise ValueError(f'max_steps must be >= 1, got {max_steps}')
        self.env = env
        self.init_index = int(init_index)
        self.limit = env.horizon if max_steps is None else min(env.horizon, int(max_steps))
        self.clip_actions = clip_actions
        self.binarize_gripper = binarize_gripper
        self.render_all_steps = render_all_steps
        self._video = VideoWriter(video) if video is not None else None
        self._state = 'new'
        self._observation = None
        self._result: EpisodeResult | None = None
        self._queries = 0
        self._steps = 0
        self._reset_done = False
        self._timing = EpisodeTiming()
        self._t0 = 0.0

    # --- state ---------------------------------------------------------------------------------
    @property
    def instruction(self) -> str:
        return self.env.language

    @property
    def done(self) -> bool:
        return self._state == 'done'

    @property
    def observation(self):
        """Return the observation waiting for a chunk (None before start and after the end)."""
        return self._observation

    # --- driving -------------------------------------------------------------------------------
    def start(self):
        """Reset to the init state and settle; the first observation, or None if reset failed."""
        if self._state != 'new':
            raise RuntimeError('Episode.start() called twice')
        self._state = 'running'
        self._t0 = time.perf_counter()
        try:
            observation = self.env.reset(self.init_index)
        except Exception as exc:  # simulator failure: recorded, evaluation goes on
            self._timing.reset_s = time.perf_counter() - self._t0
            self._finish(success=False, error=exc)
            return None
        self._timing.reset_s = time.perf_counter() - self._t0
        self._reset_done = True
        self._frame(observation)
        self._observation = observation
        return observation

    def apply_chunk(self, chunk: np.ndarray, policy_s: float = 0.0, query: bool = True):
        """
        Execute every action of ``chunk`` (``(k, 7)`` or ``(7,)``) unless the episode ends.

        ``policy_s``: time the caller spent producing this chunk (for the timing breakdown).
        ``query``: the chunk is one policy query (False for the single actions of a real-time
        run, whose caller counts the policy's chunks itself). Returns the next observation
        needing a chunk, or None when the episode is over.
        """
        if self._state != 'running' or self._observation is None:
            raise RuntimeError('apply_chunk() needs a started, unfinished episode')
        self._timing.policy_s += float(policy_s)
        self._queries += int(query)
        self._observation = None
        try:
            actions = self._prepare(chunk)
        except ValueError as exc:
            self._finish(success=False, error=exc)
            return None
        result = None
        last = len(actions) - 1
        for index, action in enumerate(actions):
            t = time.perf_counter()
            try:
                result = self.env.step(action, render=self._render(index == last))
            except Exception as exc:  # simulator failure: recorded, evaluation goes on
                self._timing.sim_s += time.perf_counter() - t
                self._finish(success=False, error=exc)
                return None
            self._timing.sim_s += time.perf_counter() - t
            self._steps += 1
            self._frame(result.observation)
            if result.success:
                self._finish(success=True)
                return None
            if self._steps >= self.limit:
                self._finish(success=False)
                return None
        self._observation = result.observation
        return self._observation

    def fail(self, error: BaseException | str, policy_s: float = 0.0) -> None:
        """End the episode as a failure because of an external error (e.g. the policy's)."""
        if self._state == 'done':
            return
        if self._state == 'new':
            self._t0 = time.perf_counter()
        self._timing.policy_s += float(policy_s)
        self._observation = None
        self._finish(success=False, error=error)

    def result(self) -> EpisodeResult:
        if self._result is None:
            raise RuntimeError('the episode has not finished')
        return self._result

    # --- internals -----------------------------------------------------------------------------
    def _render(self, last_of_chunk: bool) -> bool:
        """Tell whether the next step's frames are consumed (a query, a video, the old path)."""
        if self.render_all_steps or self._video is not None:
            return True
        return last_of_chunk and self._steps + 1 < self.limit

    def _prepare(self, chunk: np.ndarray) -> np.ndarray:
        actions = np.asarray(chunk, dtype=np.float64)
        if actions.ndim == 1:
            actions = actions[None]
        if actions.ndim != 2 or actions.shape[0] < 1 or actions.shape[1] != ACTION_DIM:
            raise ValueError(f'action chunk must have shape (k, {ACTION_DIM}), '
                             f'got {np.shape(chunk)}')
        if not np.isfinite(actions).all():
            raise ValueError('action chunk contains NaN/inf values; nothing was executed')
        if self.clip_actions:
            actions = np.clip(actions, -1.0, 1.0)
        if self.binarize_gripper:
            actions = actions.copy()
            actions[:, -1] = np.where(actions[:, -1] > 0, 1.0, -1.0)
        return actions

    def _frame(self, observation) -> None:
        if self._video is None or observation is None:
            return
        try:
            self._video.append(observation.agentview)
        except Exception as exc:  # a video problem never costs the episode
            warnings.warn(f'video disabled for this episode: {format_error(exc)}')
            self._video.discard()
            self._video = None

    def _finish(self, success: bool, error: BaseException | str | None = None) -> None:
        self._state = 'done'
        self._timing.total_s = time.perf_counter() - self._t0
        state_hash = None
        if self._reset_done:  # otherwise the simulator holds another episode's state
            try:
                state_hash = self.env.state_fingerprint()
            except Exception:  # a broken simulator has no state to fingerprint
                pass
        video = None
        if self._video is not None:
            try:
                final = self._video.path.with_name(
                    self._video.path.stem + ('_success.mp4' if success else '_failure.mp4'))
                written = self._video.finish(final)
                video = str(written) if written is not None else None
            except Exception as exc:  # a video problem never costs the episode
                self._video.discard()
                warnings.warn(f'video of {self.env.suite} task {self.env.task_id} episode '
                              f'{self.init_index} not written: {format_error(exc)}')
        self._result = EpisodeResult(
            suite=self.env.suite, task_id=self.env.task_id, task=self.env.language,
            episode=self.init_index, success=bool(success), steps=self._steps,
            queries=self._queries, error=None if error is None else format_error(error),
            seed=self.env.episode_seed, state_hash=state_hash, video=video,
            time=self._timing)


def run_episode(env: TaskEnv, init_index: int, chunk_fn: ChunkFn, max_steps: int | None = None,
                video: str | os.PathLike | Path | None = None, **options) -> EpisodeResult:
    """
    Run one episode in-process: ``chunk_fn(image_upright, instruction) -> (k, 7)``.

    A ``chunk_fn`` exception (e.g. ``NonFiniteActionError``) ends the episode as a failure with
    the error recorded. ``options``: ``clip_actions``, ``binarize_gripper`` (see :class:`Episode`).
    """
    episode = Episode(env, init_index, max_steps=max_steps, video=video, **options)
    observation = episode.start()
    while observation is not None:
        t = time.perf_counter()
        try:
            chunk = chunk_fn(observation.agentview, episode.instruction)
        except Exception as exc:
            episode.fail(exc, policy_s=time.perf_counter() - t)
            break
        observation = episode.apply_chunk(chunk, policy_s=time.perf_counter() - t)
    return episode.result()
