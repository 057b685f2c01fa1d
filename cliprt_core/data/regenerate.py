"""
OpenVLA's "no_noops" regeneration of LIBERO demonstration files (``cliprt-data regenerate``).

For each demo of an input file (LIBERO's original layout, or any file of a known task): reset
the task's env, load the demo's first stored state, let objects settle (``settle_steps`` dummy
actions, OpenVLA's 10; skipped when the protocol reset itself reproduced the state, which has
settled already), then execute the stored actions *except* the no-op steps (DESIGN.md section 4,
:func:`~cliprt_core.data.libero_hdf5.noop_mask`), recording every executed step at
``camera_size`` pixels with both cameras (:mod:`cliprt_core.data.recording`). A demo whose
replay does not end in success is dropped; the others keep their numbers (``demo_7`` stays
``demo_7``, so failed replays leave gaps, as in OpenVLA's files). The output is
``{output}/{task.name}_demo.hdf5`` in the no_noops layout (no ``data`` attributes), written
atomically.

One difference from OpenVLA's script: its ``states[0]`` is the stored state *before* settling;
here every state is the one the recorded observation was taken in, so the regenerated file
replays from its own first state.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
import os
from pathlib import Path
import time
from typing import Callable, Sequence

from cliprt_core.atomic import atomic_path
from cliprt_core.data.libero_hdf5 import DataError, noop_mask
from cliprt_core.data.libero_tasks import find_task, TaskRef
from cliprt_core.data.recording import demo_attrs, DemoRecorder, write_demo
from cliprt_core.data.replay import (allow_steps, EnvCache, read_demo, select_demos,
                                     start_from_state)
from cliprt_core.sim import protocol
import h5py
import numpy as np

SETTLE_STEPS = protocol.NUM_DUMMY_STEPS


class RegenerationStopped(Exception):
    """Stopped on request: the file being written was not finished (nothing of it is kept)."""


@dataclass
class RegeneratedFile:
    """What became of one input file."""

    source: str
    output: str | None  # None: no demo replayed successfully, nothing written
    suite: str
    task_id: int
    kept: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    steps_in: int = 0
    steps_out: int = 0
    noops_removed: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def replay_without_noops(env, states: np.ndarray, actions: np.ndarray, init_state_index: int,
                         settle_steps: int = SETTLE_STEPS,
                         stop: Callable[[], bool] = lambda: False
                         ) -> tuple[DemoRecorder, bool, int]:
    """Return (recording of the executed steps, success at the end, no-op steps skipped)."""
    from cliprt_core.sim.libero_env import Observation

    observation, loaded = start_from_state(env, states[0], init_state_index)
    raw = env.raw_env
    skip = noop_mask(actions)
    allow_steps(env, int((~skip).sum()) + settle_steps)
    if loaded:
        for _ in range(settle_steps):
            raw_obs, _, _, _ = raw.step(protocol.DUMMY_ACTION.tolist())
            observation = Observation.from_robosuite(raw_obs)
    recorder = DemoRecorder()
    done = False
    for action, noop in zip(actions, skip):
        if noop:
            continue
        if stop():
            raise RegenerationStopped('stopped on request')
        recorder.add(observation, raw.get_sim_state(), action)
        raw_obs, _, done, _ = raw.step(action.tolist())
        observation = Observation.from_robosuite(raw_obs)
    return recorder, bool(done) and len(recorder) > 0, int(skip.sum())


def regenerate_file(path: str | os.PathLike, output_dir: str | os.PathLike,
                    camera_size: int = protocol.CAMERA_SIZE, demos: Sequence[str] | None = None,
                    task: TaskRef | None = None, settle_steps: int = SETTLE_STEPS,
                    envs: EnvCache | None = None, stop: Callable[[], bool] = lambda: False,
                    on_demo: Callable[[str, bool], None] | None = None) -> RegeneratedFile:
    """Regenerate one file into ``output_dir`` (see the module docstring)."""
    path = Path(path)
    names = select_demos(path, demos)
    task = task or find_task(path)
    target = Path(output_dir) / task.file_name
    if target.resolve() == path.resolve():
        raise DataError(f'{path}: the output would replace the input; choose another --output')
    for stale in target.parent.glob(f'.{target.name}.*.tmp'):  # left by a killed run
        stale.unlink(missing_ok=True)
    result = RegeneratedFile(source=str(path), output=None, suite=task.suite,
                             task_id=task.task_id)
    started = time.perf_counter()
    own = envs is None
    envs = envs or EnvCache()
    try:
        env = envs.get(task, camera_size, wrist=True)
        with atomic_path(target) as tmp:
            with h5py.File(tmp, 'w') as handle:
                data = handle.create_group('data')
                for name in names:
                    _regenerate_demo(env, path, name, data, result, settle_steps, stop)
                    if on_demo is not None:
                        on_demo(name, name in result.kept)
            if not result.kept:
                raise _NothingKept
    except _NothingKept:
        pass  # atomic_path removed the empty file
    finally:
        if own:
            envs.close()
    if result.kept:
        result.output = str(target)
    result.seconds = round(time.perf_counter() - started, 2)
    return result


class _NothingKept(Exception):
    """No demo of a file replayed successfully: its output is not written."""


def _regenerate_demo(env, path: Path, name: str, data: h5py.Group, result: RegeneratedFile,
                     settle_steps: int, stop: Callable[[], bool]) -> None:
    states, actions, index = read_demo(path, name)
    result.steps_in += len(actions)
    try:
        recorder, success, noops = replay_without_noops(env, states, actions, index,
                                                        settle_steps, stop)
    except (DataError, RegenerationStopped):
        raise
    except Exception as exc:  # a simulator error drops this demo, not the file
        result.dropped.append(name)
        result.errors[name] = f'{type(exc).__name__}: {exc}'
        return
    result.noops_removed += noops
    if not success:
        result.dropped.append(name)
        return
    arrays = recorder.arrays()
    write_demo(data.create_group(name), arrays, demo_attrs(arrays, 'no_noops', index))
    result.kept.append(name)
    result.steps_out += len(recorder)
