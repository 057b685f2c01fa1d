"""
One LIBERO task as an environment that follows the evaluation protocol.

``LiberoTaskEnv(suite, task_id)`` owns a robosuite ``OffScreenRenderEnv``. ``reset(i)`` reseeds
(from seed, suite, task and ``i`` only), resets, loads fixed initial state ``i`` and runs the
dummy settle steps (``NUM_DUMMY_STEPS`` x ``[0,0,0,0,0,0,-1]``; they are part of the reset, do not
count as policy steps, and their success flag is ignored, as in OpenVLA's evaluation). It then
returns the first observation the policy sees. ``step(action)`` executes one policy step and
enforces the horizon (the env's own 1000-step limit is never relied on).

Images are returned in cliprt's upright convention (:mod:`cliprt_core.orientation`): LIBERO
renders upside down and this wrapper is where simulator images enter cliprt.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
import hashlib
import io
from pathlib import Path
import random

from cliprt_core.orientation import libero_to_upright
from cliprt_core.sim import model_cache, protocol
from cliprt_core.sim.libero_setup import import_libero
import numpy as np

AGENTVIEW = 'agentview'
WRIST = 'robot0_eye_in_hand'


class HorizonExceededError(RuntimeError):
    """``step`` was called after the episode's horizon was used up."""


@dataclass
class Observation:
    """
    What the simulator shows after a reset or a step (images upright, uint8 HxWx3).

    Images are None for a step taken with ``render=False`` (and ``wrist`` without a wrist camera).
    """

    agentview: np.ndarray | None
    wrist: np.ndarray | None
    joint_states: np.ndarray  # (7,) arm joint positions
    gripper_states: np.ndarray  # (2,) finger joint positions
    eef_pos: np.ndarray  # (3,)
    eef_quat: np.ndarray  # (4,) xyzw

    @classmethod
    def from_robosuite(cls, raw: dict, images: bool = True) -> 'Observation':
        wrist = raw.get(f'{WRIST}_image') if images else None
        return cls(
            agentview=libero_to_upright(raw[f'{AGENTVIEW}_image']) if images else None,
            wrist=None if wrist is None else libero_to_upright(wrist),
            joint_states=np.asarray(raw['robot0_joint_pos'], dtype=np.float64).copy(),
            gripper_states=np.asarray(raw['robot0_gripper_qpos'], dtype=np.float64).copy(),
            eef_pos=np.asarray(raw['robot0_eef_pos'], dtype=np.float64).copy(),
            eef_quat=np.asarray(raw['robot0_eef_quat'], dtype=np.float64).copy(),
        )


@dataclass
class StepResult:
    """Outcome of one policy step."""

    observation: Observation
    success: bool  # all BDDL goal predicates hold (``done`` of the LIBERO env)
    steps: int  # policy steps taken in this episode, this one included
    truncated: bool  # the horizon is used up without success
    reward: float = 0.0

    @property
    def done(self) -> bool:
        return self.success or self.truncated


class _BlankFrame:
    """A camera sensor stand-in that returns a black frame without rendering."""

    def __init__(self, shape: tuple[int, ...], real) -> None:
        self.frame = np.zeros(shape, dtype=np.uint8)
        self.__modality__ = getattr(real, '__modality__', 'image')

    def __call__(self, obs_cache) -> np.ndarray:
        return self.frame


class LiberoTaskEnv:
    """
    One LIBERO task: fixed init states, settle steps, horizon, success, upright images.

    Not thread-safe, and thread-affine: robosuite renders with the OpenGL context current on the
    calling thread and ``reset`` recreates it there, so make every call (construction, reset,
    step, close) from one thread. Stepping from another thread renders corrupted frames.
    """

    def __init__(self, suite: str, task_id: int, camera_size: int = protocol.CAMERA_SIZE,
                 seed: int = protocol.GLOBAL_SEED, wrist_camera: bool = False,
                 horizon: int | None = None,
                 num_dummy_steps: int = protocol.NUM_DUMMY_STEPS,
                 fast_settle: bool = True, cache_model: bool = True) -> None:
        self.suite = protocol.check_suite(suite)
        n_tasks = protocol.NUM_TASKS[suite]
        if not 0 <= int(task_id) < n_tasks:
            raise ValueError(f'task_id {task_id} out of range for {suite} (0..{n_tasks - 1})')
        if camera_size < 8:
            raise ValueError(f'camera_size must be >= 8 pixels, got {camera_size}')
        if horizon is not None and horizon < 1:
            raise ValueError(f'horizon must be >= 1, got {horizon}')
        self.task_id = int(task_id)
        self.camera_size = int(camera_size)
        self.seed = int(seed)
        self.wrist_camera = bool(wrist_camera)
        self.num_dummy_steps = int(num_dummy_steps)
        #: Skip rendering the camera frames nobody sees (init state, all but the last settle
        #: step). Physics and every returned observation are identical (tested); ~10 renders
        #: fewer per reset.
        self.fast_settle = bool(fast_settle)
        suite_horizon = protocol.HORIZONS[suite]
        self.horizon = suite_horizon if horizon is None else min(int(horizon), suite_horizon)

        libero = import_libero()
        with contextlib.redirect_stdout(io.StringIO()):  # task-order banner
            bench = libero.benchmark.get_benchmark_dict()[suite]()
        task = bench.get_task(self.task_id)
        self.task_name: str = task.name
        #: The policy instruction: ``task.language`` (differs from the BDDL's own sentence).
        self.language: str = task.language
        self.bddl_file = Path(libero.get_libero_path('bddl_files'), task.problem_folder,
                              task.bddl_file)
        self.init_states = np.asarray(bench.get_task_init_states(self.task_id))
        cameras = [AGENTVIEW, WRIST] if self.wrist_camera else [AGENTVIEW]
        self._cameras = cameras
        self._env = libero.OffScreenRenderEnv(
            bddl_file_name=str(self.bddl_file), camera_heights=self.camera_size,
            camera_widths=self.camera_size, camera_names=cameras)
        #: Later hard resets copy the compiled MuJoCo model instead of recompiling it (bit-
        #: identical; :mod:`cliprt_core.sim.model_cache`); None when disabled or unsupported.
        self.model_cache = (model_cache.install(getattr(self._env, 'env', None))
                            if cache_model else None)
        #: The sentence in the BDDL file (not what policies are given).
        self.bddl_language: str = self._env.language_instruction
        self._env.seed(0)  # protocol; every reset reseeds per episode anyway
        self._steps = 0
        self._success = False
        self._active = False
        self.episode_seed: int | None = None

    # --- protocol ------------------------------------------------------------------------------
    @property
    def num_init_states(self) -> int:
        return len(self.init_states)

    @property
    def steps(self) -> int:
        """Policy steps taken since the last reset (dummy steps excluded)."""
        return self._steps

    @property
    def raw_env(self):
        """Return the wrapped LIBERO ``OffScreenRenderEnv`` (for tests and advanced use)."""
        return self._env

    def reset(self, init_state_index: int) -> Observation:
        """Reseed, reset, load init state ``init_state_index``, settle; the first observation."""
        index = int(init_state_index)
        self._active = False
        self._steps = 0
        self.episode_seed = None
        if not 0 <= index < self.num_init_states:
            raise IndexError(f'init state {index} out of range for {self.suite} task '
                             f'{self.task_id} ({self.num_init_states} states)')
        self.episode_seed = protocol.episode_seed(self.seed, self.suite, self.task_id, index)
        random.seed(self.episode_seed)
        self._env.seed(self.episode_seed)  # LIBERO: np.random.seed (object placement sampling)
        self._env.reset()
        dummy = protocol.DUMMY_ACTION.tolist()
        if self.fast_settle and self.num_dummy_steps > 0:
            with self.unseen_frames():
                self._env.set_init_state(self.init_states[index])
                for _ in range(self.num_dummy_steps - 1):
                    self._env.step(dummy)
            raw, _, _, _ = self._env.step(dummy)
        else:
            raw = self._env.set_init_state(self.init_states[index])
            for _ in range(self.num_dummy_steps):
                raw, _, _, _ = self._env.step(dummy)
        self._steps = 0
        self._success = False
        self._active = True
        return Observation.from_robosuite(raw)

    def step(self, action: np.ndarray, render: bool = True) -> StepResult:
        """
        Execute one 7-D action; raises once the episode ended (success or horizon).

        ``render=False`` skips the camera renders of this step (the observation's images are
        None); physics, success and the frames of later rendered steps are unchanged (tested).
        """
        if not self._active:
            raise RuntimeError('step() before reset()')
        if self._success:
            raise RuntimeError('step() after the episode already succeeded')
        if self._steps >= self.horizon:
            raise HorizonExceededError(f'horizon of {self.horizon} policy steps is used up')
        vector = np.asarray(action, dtype=np.float64)
        if vector.shape != (protocol.ACTION_DIM,):
            raise ValueError(f'action must have shape ({protocol.ACTION_DIM},), '
                             f'got {vector.shape}')
        if not np.isfinite(vector).all():
            raise ValueError(f'action has non-finite values: {vector}')
        with contextlib.nullcontext() if render else self.unseen_frames():
            raw, reward, done, _ = self._env.step(vector.tolist())
        self._steps += 1
        self._success = bool(done)
        return StepResult(observation=Observation.from_robosuite(raw, images=render),
                          success=self._success,
                          steps=self._steps,
                          truncated=not self._success and self._steps >= self.horizon,
                          reward=float(reward))

    @contextlib.contextmanager
    def unseen_frames(self):
        """
        Swap the camera sensors for a blank frame (no rendering) while frames are discarded.

        Use it around steps whose images nobody reads (a state-based expert measuring success):
        the observations carry black frames, everything else is unchanged.

        Only the sensor function changes: robosuite's sampling clock (which sub-step a frame is
        taken at) runs exactly as before, so the first frame rendered afterwards is the same.
        Relies on robosuite 1.4's ``Observable._sensor``; without it this is a no-op.
        """
        observables = getattr(getattr(self._env, 'env', None), '_observables', {})
        swapped = []
        for camera in self._cameras:
            observable = observables.get(f'{camera}_image')
            if observable is None or not hasattr(observable, '_sensor'):
                continue
            shape = (self.camera_size, self.camera_size, 3)
            swapped.append((observable, observable._sensor))
            observable._sensor = _BlankFrame(shape, observable._sensor)
        try:
            yield
        finally:
            for observable, sensor in swapped:
                observable._sensor = sensor

    def check_success(self) -> bool:
        """Evaluate the goal predicates on the current state (no step)."""
        return bool(self._env.check_success())

    def state_fingerprint(self) -> str:
        """Short hash of the full MuJoCo state: equal iff two rollouts ended identically."""
        state = np.ascontiguousarray(self._env.get_sim_state(), dtype=np.float64)
        return hashlib.sha1(state.tobytes()).hexdigest()[:16]

    def close(self) -> None:
        env, self._env = getattr(self, '_env', None), None
        if env is not None:
            env.close()

    def __enter__(self) -> 'LiberoTaskEnv':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f'LiberoTaskEnv({self.suite!r}, task_id={self.task_id}, '
                f'camera_size={self.camera_size}, horizon={self.horizon})')
