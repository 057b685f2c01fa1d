"""
Stochastic trajectory diversification (CLIP-RT's STA, first phase), verified in simulation.

CLIP-RT (arXiv 2411.00508) augments each language-teleoperated demo by re-sampling the step
sizes along the demonstrated path, split at gripper changes: the same waypoints reached by
other sequences of primitives (e.g. 5 + 5 cm instead of 10 cm, in another axis order). Here,
for each demo:

1. **Waypoints**: the demo is split where its gripper command changes; the end-effector pose
   (``obs/ee_pos`` and the quaternion of ``robot_states``) at each split, and at the last
   step, is a waypoint; the gripper change is kept as it was. With ``waypoint_every`` N > 0
   (default 10) the pose every N steps along the path is a waypoint too: with only the gripper
   splits, a straight re-sampled segment drops the demo's lift between grasp and place and
   drags the object (measured: 0 of 3 attempts succeeded on a scripted pick-and-place demo).
2. **Re-sampled primitives**: from the demo's start (its init state / first stored state), each
   segment is driven to its waypoint by random primitives of the vocabulary: a random axis
   among those whose residual exceeds half the smallest primitive, and a random magnitude of
   that axis no larger than the residual (plus that tolerance), executed as the teleop node
   executes it (:func:`cliprt_core.teleop.primitive_actions`, with the arm's measured scales).
   The residual is measured in the simulator before every primitive (closed loop), so the
   trajectory reaches the waypoint although commanded and realised motion differ.
3. **Settling**: after the last waypoint the arm holds still for ``settle_steps`` steps
   (recorded without a phrase: no training sample), so placed objects come to rest.
4. **Verification**: a trajectory is kept only if the simulator confirms it: the task's goal
   holds (``verify='success'``, for demos that complete the task; the episode stops at the
   first success, as in evaluation) or every waypoint was reached within the tolerance
   (``verify='waypoints'``, e.g. for partial teleoperation sessions).

Departures from the paper: the authors compute the new step sizes offline from the recorded
displacements (their real robot tracks commands closely); we re-plan against the simulator's
measured pose because LIBERO's OSC controller moves ~1.3 cm per step of action 1.0, not the
nominal 5 cm. The second phase of STA (recovery: deliberate deviations followed by the
correcting primitive) is not implemented.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import os
from pathlib import Path
import time
from typing import Callable, Sequence

from cliprt_core.actions import LabelingConfig, load_vocabulary, Vocabulary, VocabularyError
from cliprt_core.actions.execution import primitive_actions
from cliprt_core.atomic import atomic_path
from cliprt_core.data.libero_hdf5 import DataError, open_hdf5
from cliprt_core.data.libero_tasks import find_task, TaskRef
from cliprt_core.data.phrases import phrase_arrays
from cliprt_core.data.recording import DemoRecorder, write_demo
from cliprt_core.data.replay import allow_steps, EnvCache, select_demos, start_from_state
from cliprt_core.sim.libero_env import Observation
import h5py
import numpy as np

__all__ = ['DiversifySettings', 'DiversifiedDemo', 'FileDiversification', 'diversify_demo',
           'diversify_file', 'read_waypoints', 'rotation_residual', 'Waypoint']

POSITION_AXES = ('x', 'y', 'z')
ROTATION_AXES = ('roll', 'pitch', 'yaw')


@dataclass(frozen=True)
class DiversifySettings:
    """How trajectories are re-sampled and verified (see the module docstring)."""

    per_demo: int = 3
    seed: int = 0
    vocabulary: str = 'pretrain_50'
    verify: str = 'success'  # 'success' | 'waypoints'
    metres_per_unit: float = 0.013  # LIBERO's measured response (README)
    radians_per_unit: float = 0.5
    gripper_steps: int = 10
    max_primitives: int = 40  # per segment
    rotate: bool = True  # also re-sample rotations (else position only)
    settle_steps: int = 10  # hold still after the last waypoint (recorded without a phrase)
    waypoint_every: int = 10  # also a waypoint every N demo steps along the path (0: only the
    # gripper changes and the end, the paper's split)

    def __post_init__(self) -> None:
        if self.verify not in ('success', 'waypoints'):
            raise DataError(f"verify must be 'success' or 'waypoints', got {self.verify!r}")
        if self.per_demo < 1:
            raise DataError(f'per_demo must be >= 1, got {self.per_demo}')
        if self.waypoint_every < 0 or self.settle_steps < 0:
            raise DataError('waypoint_every and settle_steps must be >= 0')
        if not (self.metres_per_unit > 0 and self.radians_per_unit > 0):
            raise DataError('metres_per_unit and radians_per_unit must be > 0')
        try:
            load_vocabulary(self.vocabulary)
        except VocabularyError as exc:
            raise DataError(str(exc)) from None


@dataclass(frozen=True)
class Waypoint:
    """A segment's end: pose to reach, then the gripper command to give (None: none)."""

    position: np.ndarray
    quaternion: np.ndarray  # xyzw
    gripper: float | None


@dataclass
class DiversifiedDemo:
    """One attempt: its datasets (None if not kept), outcome and why."""

    source: str
    attempt: int
    kept: bool
    reason: str
    steps: int
    primitives: int
    seconds: float
    arrays: dict[str, np.ndarray] | None = field(default=None, repr=False)


def read_waypoints(path, name: str, every: int = 0
                   ) -> tuple[list[Waypoint], float, np.ndarray | None, int]:
    """
    Return (waypoints, initial gripper command, states[0] or None, init_state_index).

    Waypoints are the poses where the gripper command changes, the last pose and, with
    ``every`` > 0, the pose every ``every`` steps along the path.
    """
    with open_hdf5(path) as handle:
        try:
            group = handle['data'][name]
            actions = np.asarray(group['actions'][()], dtype=np.float64)
            pos = np.asarray(group['obs/ee_pos'][()], dtype=np.float64)
            quat = np.asarray(group['robot_states'][()], dtype=np.float64)[:, 5:9]
            state = np.asarray(group['states'][0], dtype=np.float64) if 'states' in group \
                else None
            index = int(group.attrs.get('init_state_index', -1))
        except (KeyError, OSError, ValueError) as exc:
            raise DataError(f"{path}: 'data/{name}' lacks what diversification needs "
                            f'(actions, obs/ee_pos, robot_states): {exc}') from None
    if state is None and index < 0:
        raise DataError(f"{path}: 'data/{name}' has neither states nor init_state_index: its "
                        'start cannot be reproduced in the simulator')
    command = np.sign(actions[:, 6])
    for t in range(1, len(command)):  # 0 = keep: carry the previous command
        command[t] = command[t] or command[t - 1]
    waypoints = []
    for t in range(1, len(command)):
        if command[t] != command[t - 1] and command[t] != 0:
            waypoints.append(Waypoint(pos[t], quat[t], float(command[t])))
        elif every > 0 and t % every == 0 and t < len(command) - 1:
            waypoints.append(Waypoint(pos[t], quat[t], None))
    waypoints.append(Waypoint(pos[-1], quat[-1], None))
    start = float(command[0]) if command[0] else -1.0
    return waypoints, start, state, index


def rotation_residual(current_xyzw: np.ndarray, target_xyzw: np.ndarray) -> np.ndarray:
    """World-frame axis-angle rotating ``current`` onto ``target`` (what OSC deltas are)."""
    from scipy.spatial.transform import Rotation

    return (Rotation.from_quat(target_xyzw) * Rotation.from_quat(current_xyzw).inv()).as_rotvec()


class _Planner:
    """Random primitive choice towards a waypoint (axis, then a magnitude within the residual)."""

    def __init__(self, vocabulary: Vocabulary, settings: DiversifySettings) -> None:
        self.vocabulary = vocabulary
        axes = POSITION_AXES + (ROTATION_AXES if settings.rotate else ())
        self.magnitudes = {a: sorted({p.magnitude for p in vocabulary.primitives
                                      if p.axis == a and p.magnitude is not None})
                           for a in axes}
        self.tolerance = {a: min(abs(m) for m in mags) / 2
                          for a, mags in self.magnitudes.items()}

    def residual(self, observation, waypoint: Waypoint) -> dict[str, float]:
        rot = rotation_residual(observation.eef_quat, waypoint.quaternion)
        values = dict(zip(POSITION_AXES, waypoint.position - observation.eef_pos))
        values.update(zip(ROTATION_AXES, rot))
        return {a: float(values[a]) for a in self.magnitudes}

    def reached(self, residual: dict[str, float]) -> bool:
        return all(abs(v) <= self.tolerance[a] for a, v in residual.items())

    def choose(self, residual: dict[str, float], rng: np.random.Generator) -> int | None:
        open_axes = [a for a, v in residual.items() if abs(v) > self.tolerance[a]]
        if not open_axes:
            return None
        axis = open_axes[rng.integers(len(open_axes))]
        value = residual[axis]
        fitting = [m for m in self.magnitudes[axis]
                   if m * value > 0 and abs(m) <= abs(value) + self.tolerance[axis]]
        if not fitting:  # residual between the tolerance and the smallest step
            fitting = [min((m for m in self.magnitudes[axis] if m * value > 0), key=abs)]
        return self.vocabulary.find(axis, fitting[rng.integers(len(fitting))])


def diversify_demo(env, path, name: str, attempt: int, settings: DiversifySettings,
                   stop: Callable[[], bool] = lambda: False) -> DiversifiedDemo:
    """Run one diversified trajectory of demo ``name`` on ``env`` (a LiberoTaskEnv)."""
    started = time.perf_counter()
    vocabulary = load_vocabulary(settings.vocabulary)
    waypoints, gripper, state, index = read_waypoints(path, name, settings.waypoint_every)
    rng = np.random.default_rng([settings.seed, attempt, *name.encode()])
    planner = _Planner(vocabulary, settings)
    scales = LabelingConfig(position_scale=settings.metres_per_unit,
                            rotation_scale=settings.radians_per_unit)
    if state is not None:
        observation, _ = start_from_state(env, state, index)
    else:
        observation = env.reset(index)
    budget = (settings.max_primitives * 4 + settings.gripper_steps) * (len(waypoints) + 1) * 4
    allow_steps(env, budget)
    raw = env.raw_env
    recorder, phrases, steps = DemoRecorder(), [], []
    primitives, success, missed = 0, False, []

    def run(index: int | None) -> bool:
        """Execute primitive ``index`` (None: hold still for the settle steps)."""
        nonlocal observation, gripper, primitives, success
        if index is None:
            actions = np.zeros((settings.settle_steps, 7))
            actions[:, 6] = gripper
        else:
            primitives += 1
            actions = primitive_actions(vocabulary, index, gripper,
                                        gripper_steps=settings.gripper_steps, labeling=scales)
        for k, action in enumerate(actions):
            if stop():
                raise KeyboardInterrupt
            recorder.add(observation, raw.get_sim_state(), action)
            phrases.append('' if index is None else vocabulary.phrases[index])
            steps.append(-1 if index is None else k)
            obs, _, done, _ = raw.step(action.tolist())
            observation = Observation.from_robosuite(obs)
            if done:
                success = True
                return True
        gripper = float(actions[-1, 6])
        return False

    for number, waypoint in enumerate(waypoints):
        for _ in range(settings.max_primitives):
            choice = planner.choose(planner.residual(observation, waypoint), rng)
            if choice is None or run(choice):
                break
        if success:
            break
        if not planner.reached(planner.residual(observation, waypoint)):
            missed.append(number)
        if waypoint.gripper is not None and run(vocabulary.find('gripper', waypoint.gripper)):
            break
    if not success and settings.settle_steps and len(recorder):
        run(None)  # let the objects come to rest; the goal may hold then
    seconds = round(time.perf_counter() - started, 2)
    if settings.verify == 'success':
        kept, reason = success, 'the goal holds' if success else 'the goal was not reached'
    else:
        kept = not missed
        reason = 'every waypoint reached' if kept else f'waypoint(s) {missed} not reached'
    arrays = None
    if kept and len(recorder):
        arrays = recorder.arrays()
        arrays.update(phrase_arrays(phrases, steps))
    return DiversifiedDemo(name, attempt, kept and arrays is not None, reason, len(recorder),
                           primitives, seconds, arrays)


@dataclass
class FileDiversification:
    """Outcome for one file: every attempt, and the written file (None if nothing was kept)."""

    path: str
    output: str | None
    attempts: list[DiversifiedDemo]

    @property
    def kept(self) -> int:
        return sum(a.kept for a in self.attempts)

    def to_dict(self) -> dict:
        return {'path': self.path, 'output': self.output, 'kept': self.kept,
                'attempts': [{k: v for k, v in vars(a).items() if k != 'arrays'}
                             for a in self.attempts]}


def diversify_file(path: str | os.PathLike, output: str | os.PathLike,
                   settings: DiversifySettings, demos: Sequence[str] | None = None,
                   task: TaskRef | None = None, envs: EnvCache | None = None,
                   on_attempt: Callable[[DiversifiedDemo], None] | None = None,
                   stop: Callable[[], bool] = lambda: False) -> FileDiversification:
    """
    Diversify the demos of one file into ``output/{file name}`` (originals + kept attempts).

    The output file is written atomically once every attempt has run (an interruption leaves
    no partial file); each kept demo has the attributes ``augmented_from`` and
    ``augmentation_attempt``.
    """
    path = Path(path)
    names = select_demos(path, demos)
    task = task or find_task(path)
    target = Path(output) / path.name
    if target.resolve() == path.resolve():
        raise DataError(f'{target}: the output would overwrite the input; choose another '
                        f'--output')
    with open_hdf5(path) as handle:
        data = handle['data']
        first = data[names[0]]['obs']
        size = int(first['agentview_rgb'].shape[1])
        wrist = 'eye_in_hand_rgb' in first
        all_names = list(data.keys())
    for name in names:  # what the simulator cannot reproduce fails before it starts
        read_waypoints(path, name)
    own = envs is None
    envs = envs or EnvCache()
    attempts = []
    try:
        env = envs.get(task, camera_size=size, wrist=wrist)
        for name in names:
            for attempt in range(settings.per_demo):
                try:
                    result = diversify_demo(env, path, name, attempt, settings, stop)
                except DataError:
                    raise
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as exc:  # noqa: B902 - a simulator error fails this attempt
                    result = DiversifiedDemo(name, attempt, False,
                                             f'{type(exc).__name__}: {exc}', 0, 0, 0.0)
                attempts.append(result)
                if on_attempt is not None:
                    on_attempt(result)
    finally:
        if own:
            envs.close()
    kept = [a for a in attempts if a.kept]
    if not kept:
        return FileDiversification(str(path), None, attempts)
    numbers = [int(n.split('_')[1]) for n in all_names if n.startswith('demo_')]
    next_number = max(numbers, default=-1) + 1
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        with open_hdf5(path) as src, h5py.File(tmp, 'w') as dst:
            src.copy(src['data'], dst, name='data')
            for offset, attempt in enumerate(kept):
                group = dst['data'].create_group(f'demo_{next_number + offset}')
                index = int(src['data'][attempt.source].attrs.get('init_state_index', -1))
                write_demo(group, attempt.arrays, {
                    'init_state_index': index, 'augmented_from': attempt.source,
                    'augmentation_attempt': attempt.attempt, 'augmentation_seed': settings.seed,
                    'augmentation_verified': settings.verify})
            if 'num_demos' in dst['data'].attrs:
                dst['data'].attrs['num_demos'] = len(all_names) + len(kept)
    for attempt in kept:
        attempt.arrays = None
    return FileDiversification(str(path), str(target), attempts)
