"""
Replaying stored demonstrations in the simulator: do the stored actions still succeed.

For each demo the env of its task is reset (to the demo's fixed initial state when it records
one, ``init_state_index``), brought to the demo's first stored state and the stored actions are
executed open loop. If the reset already ends exactly in ``states[0]`` (demos of ``cliprt-data
collect``) nothing is loaded; otherwise ``set_init_state(states[0])`` loads it
(``loaded_state``). Reported per demo:

``success``
    the task's goal holds after the last stored action (LIBERO's ``done``, as OpenVLA's
    regeneration judges a replay); ``first_success_step`` is the first step it held.
``max_state_divergence``, ``final_state_divergence``
    max |replayed - stored| over the flattened MuJoCo state (time, qpos, qvel) before each
    action, over all steps and at the last step; ``*_qpos_divergence`` the same over positions
    only (metres, radians, quaternion components). 0 is a bit-exact reproduction: what we
    measured for demos of ``cliprt-data collect`` (replayed from their reset) and of
    ``regenerate`` (loaded).
    Loading a state can change it by a rounding error (we saw 2e-16 in a quaternion), and
    contacts amplify that: forcing ``set_init_state`` on a collected demo gave ~2e-5 in qpos
    once the gripper touched the bowl and velocity differences of up to ~3.5 in the steps where
    the bowl lands (impacts), with the replay still succeeding. Large qpos values or a failed
    replay mean the demo no longer reproduces (another MuJoCo / robosuite / LIBERO version,
    edited actions, chaotic contacts).

Cameras are switched off while replaying (nothing is rendered), so a replay runs at physics speed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
import math
import os
from pathlib import Path
import time
from typing import Sequence

from cliprt_core.data.libero_hdf5 import DataError, demo_names, open_hdf5
from cliprt_core.data.libero_tasks import find_task, TaskRef
import numpy as np

REPLAY_CAMERA_SIZE = 32  # cameras are off during replays; the env still needs a size
# what h5py raises for a corrupted demo
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError)


@dataclass
class DemoReplay:
    """Outcome of replaying one demo (divergences: max abs difference, see the module doc)."""

    name: str
    steps: int
    success: bool
    first_success_step: int | None
    max_state_divergence: float
    final_state_divergence: float
    max_qpos_divergence: float
    final_qpos_divergence: float
    loaded_state: bool  # False: the protocol reset already gave states[0] exactly
    seconds: float
    error: str | None = None

    @classmethod
    def failed(cls, name: str, steps: int, error: str) -> 'DemoReplay':
        nan = float('nan')
        return cls(name=name, steps=steps, success=False, first_success_step=None,
                   max_state_divergence=nan, final_state_divergence=nan, max_qpos_divergence=nan,
                   final_qpos_divergence=nan, loaded_state=False, seconds=0.0, error=error)


@dataclass
class FileReplay:
    """Outcome of replaying the demos of one file."""

    path: str
    suite: str
    task_id: int
    demos: list[DemoReplay] = field(default_factory=list)

    @property
    def all_success(self) -> bool:
        return bool(self.demos) and all(d.success for d in self.demos)

    def to_dict(self) -> dict:
        """Return a JSON-ready dict (NaN divergences of failed replays become None)."""
        demos = [{k: None if isinstance(v, float) and math.isnan(v) else v
                  for k, v in asdict(d).items()} for d in self.demos]
        return {'path': self.path, 'suite': self.suite, 'task_id': self.task_id,
                'all_success': self.all_success, 'demos': demos}


class EnvCache:
    """One :class:`~cliprt_core.sim.LiberoTaskEnv` at a time, reused while the task stays."""

    def __init__(self) -> None:
        self._env = None
        self._key: tuple | None = None

    def get(self, task: TaskRef, camera_size: int = REPLAY_CAMERA_SIZE, wrist: bool = False):
        """Return an env of ``task`` with the given cameras (built if the last one differs)."""
        key = (task.suite, task.task_id, int(camera_size), bool(wrist))
        if key != self._key:
            self.close()
            from cliprt_core.sim import LiberoTaskEnv

            self._env = LiberoTaskEnv(task.suite, task.task_id, camera_size=camera_size,
                                      wrist_camera=wrist)
            self._key = key
        return self._env

    def close(self) -> None:
        env, self._env, self._key = self._env, None, None
        if env is not None:
            env.close()

    def __enter__(self) -> 'EnvCache':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_demo(path: str | os.PathLike, name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Return ``(states, actions, init_state_index)`` of one demo (index -1 if not recorded)."""
    with open_hdf5(path) as handle:
        try:
            group = handle['data'][name]
            states = np.asarray(group['states'][()], dtype=np.float64)
            actions = np.asarray(group['actions'][()], dtype=np.float64)
            index = int(group.attrs.get('init_state_index', -1))
        except H5_ERRORS as exc:
            raise DataError(f"{path}: cannot read 'data/{name}' (states, actions): "
                            f'{exc}') from None
    if actions.ndim != 2 or actions.shape[1] != 7 or len(states) != len(actions):
        raise DataError(f"{path}: 'data/{name}' has {len(states)} states and actions of shape "
                        f'{actions.shape}; expected one state per (T, 7) action')
    if not len(actions):
        raise DataError(f"{path}: 'data/{name}' is empty")
    return states, actions, index


def start_from_state(env, state: np.ndarray, init_state_index: int):
    """
    Reset ``env`` and bring it to ``state``; return (the upright observation there, loaded).

    The reset follows the protocol (init state ``init_state_index``, or 0 if unknown). If it
    already ends exactly in ``state`` (a demo recorded from that reset, e.g. by ``cliprt-data
    collect``), nothing is loaded (``loaded`` False): MuJoCo's solver warm start then also
    matches the recording and a replay is bit-exact. Otherwise ``set_init_state(state)``.
    """
    from cliprt_core.sim.libero_env import Observation

    index = init_state_index if 0 <= init_state_index < env.num_init_states else 0
    observation = env.reset(index)
    raw = env.raw_env
    current = raw.get_sim_state()
    if state.shape != current.shape:
        raise DataError(f'stored states have {state.shape[-1]} values but the MuJoCo model of '
                        f'{env.task_name} has {current.shape[0]} (recorded with another LIBERO / '
                        f'robosuite version or for another task?)')
    if init_state_index >= 0 and np.array_equal(current, state):
        return observation, False
    return Observation.from_robosuite(raw.set_init_state(state)), True


def allow_steps(env, steps: int) -> None:
    """Let the raw env run ``steps`` more steps (robosuite ends episodes at its horizon)."""
    inner = env.raw_env.env
    inner.horizon = max(int(inner.horizon), int(inner.timestep) + int(steps) + 1)


def replay_demo(env, name: str, states: np.ndarray, actions: np.ndarray,
                init_state_index: int = -1) -> DemoReplay:
    """Replay one demo's actions from its first state on ``env`` (a LiberoTaskEnv)."""
    started = time.perf_counter()
    _, loaded = start_from_state(env, states[0], init_state_index)
    raw = env.raw_env
    allow_steps(env, len(actions))
    qpos = slice(1, 1 + raw.sim.model.nq)  # flattened state: time, qpos, qvel
    divergence = np.zeros(len(actions))
    qpos_divergence = np.zeros(len(actions))
    first_success = None
    done = False
    with env.unseen_frames():  # nothing looks at the frames: no rendering
        for t, action in enumerate(actions):
            if t:
                diff = np.abs(raw.get_sim_state() - states[t])
                divergence[t], qpos_divergence[t] = diff.max(), diff[qpos].max()
            _, _, done, _ = raw.step(action.tolist())
            if done and first_success is None:
                first_success = t + 1
    return DemoReplay(name=name, steps=len(actions), success=bool(done),
                      first_success_step=first_success,
                      max_state_divergence=float(divergence.max()),
                      final_state_divergence=float(divergence[-1]),
                      max_qpos_divergence=float(qpos_divergence.max()),
                      final_qpos_divergence=float(qpos_divergence[-1]),
                      loaded_state=loaded, seconds=round(time.perf_counter() - started, 3))


def select_demos(path: str | os.PathLike, wanted: Sequence[str] | None) -> list[str]:
    """Return the demos of a file, or those of ``wanted`` (DataError naming a missing one)."""
    with open_hdf5(path) as handle:
        if 'data' not in handle:
            raise DataError(f"{path}: missing key 'data' (not a LIBERO demonstration file)")
        names = demo_names(handle['data'])
    if not names:
        raise DataError(f'{path}: the file has no demonstrations')
    if not wanted:
        return names
    missing = [n for n in wanted if n not in names]
    if missing:
        raise DataError(f"{path}: no demo {', '.join(missing)} (the file has {names[0]} .. "
                        f'{names[-1]}, {len(names)} demos)')
    return [n for n in names if n in set(wanted)]


def replay_file(path: str | os.PathLike, demos: Sequence[str] | None = None,
                task: TaskRef | None = None, envs: EnvCache | None = None,
                on_demo=None) -> FileReplay:
    """Replay the demos of one file (all, or ``demos``); ``task`` overrides the file's own."""
    path = Path(path)
    names = select_demos(path, demos)
    task = task or find_task(path)
    own = envs is None
    envs = envs or EnvCache()
    result = FileReplay(path=str(path), suite=task.suite, task_id=task.task_id)
    try:
        env = envs.get(task)
        for name in names:
            states, actions, index = read_demo(path, name)
            try:
                outcome = replay_demo(env, name, states, actions, index)
            except DataError:
                raise
            except Exception as exc:  # a simulator error fails this demo, not the others
                outcome = DemoReplay.failed(name, len(actions), f'{type(exc).__name__}: {exc}')
            result.demos.append(outcome)
            if on_demo is not None:
                on_demo(outcome)
    finally:
        if own:
            envs.close()
    return result
