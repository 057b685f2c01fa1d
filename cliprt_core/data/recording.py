"""
Recording simulator rollouts as LIBERO demonstrations, in either published layout.

One step of a demo is the observation *before* the action, the flattened MuJoCo state at that
moment (``env.raw_env.get_sim_state()``: time, qpos, qvel) and the action. The per-demo datasets
are LIBERO's (DESIGN.md section 4, :mod:`cliprt_core.data.synthetic`):

``obs/agentview_rgb``, ``obs/eye_in_hand_rgb``
    (T, H, W, 3) uint8, stored as LIBERO renders them: rotated by 180 degrees from the upright
    frames :class:`~cliprt_core.sim.LiberoTaskEnv` returns.
``obs/joint_states`` (T, 7), ``obs/gripper_states`` (T, 2)
    arm joint and finger positions.
``obs/ee_pos`` (T, 3), ``obs/ee_ori`` (T, 3), ``obs/ee_states`` (T, 6)
    end-effector position and orientation as an **axis-angle** vector (robosuite's
    ``quat2axisangle``, what LIBERO's and OpenVLA's scripts store); ``ee_states`` is both.
``actions`` (T, 7), ``states`` (T, nq + nv + 1), ``robot_states`` (T, 9)
    ``robot_states`` is LIBERO's ``get_robot_state_vector``: gripper (2), eef pos (3), eef quat
    (4, xyzw).
``rewards``, ``dones`` (T,) uint8
    0 except 1 at the last step (only successful demos are written).

Every demo carries the attribute ``init_state_index`` (the fixed initial state it started from,
-1 if unknown). The ``original`` layout adds LIBERO's ``num_samples``, ``init_state`` and
``model_file`` demo attributes and the ``data`` attributes of :func:`original_file_attrs`.
"""
from __future__ import annotations

from dataclasses import dataclass
import json
import os
from pathlib import Path
from typing import Any, Sequence

from cliprt_core.atomic import atomic_path
from cliprt_core.orientation import libero_to_upright
import h5py
import numpy as np

LAYOUTS = ('no_noops', 'original')
PART_GROUP = 'demo'  # the group of a part file (one demo) that assembly copies


def quat_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """Return robosuite's ``quat2axisangle`` of (..., 4) xyzw quaternions as (..., 3)."""
    quat = np.asarray(quat, dtype=np.float64)
    w = np.clip(quat[..., 3], -1.0, 1.0)
    den = np.sqrt(1.0 - w * w)
    safe = np.where(np.isclose(den, 0.0), 1.0, den)
    vec = quat[..., :3] * (2.0 * np.arccos(w) / safe)[..., None]
    return np.where(np.isclose(den, 0.0)[..., None], 0.0, vec)


class DemoRecorder:
    """Collects the steps of one demo; :meth:`arrays` returns its LIBERO datasets."""

    def __init__(self) -> None:
        self._agentview: list[np.ndarray] = []
        self._wrist: list[np.ndarray] = []
        self._joints: list[np.ndarray] = []
        self._gripper: list[np.ndarray] = []
        self._eef_pos: list[np.ndarray] = []
        self._eef_quat: list[np.ndarray] = []
        self._states: list[np.ndarray] = []
        self._actions: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._actions)

    def add(self, observation, state: np.ndarray | None, action: np.ndarray) -> None:
        """
        Record one step: an upright :class:`~cliprt_core.sim.Observation`, state, action.

        ``state`` None (a robot outside the simulator): the demo has no ``states`` dataset.
        """
        self._agentview.append(libero_to_upright(observation.agentview))  # back to LIBERO's
        if observation.wrist is not None:
            self._wrist.append(libero_to_upright(observation.wrist))
        self._joints.append(np.asarray(observation.joint_states, dtype=np.float64))
        self._gripper.append(np.asarray(observation.gripper_states, dtype=np.float64))
        self._eef_pos.append(np.asarray(observation.eef_pos, dtype=np.float64))
        self._eef_quat.append(np.asarray(observation.eef_quat, dtype=np.float64))
        if state is not None:
            self._states.append(np.array(state, dtype=np.float64))
        self._actions.append(np.array(action, dtype=np.float64))

    def arrays(self) -> dict[str, np.ndarray]:
        """Return ``{dataset path inside the demo group: array}``."""
        if not self._actions:
            raise ValueError('an empty demo cannot be written')
        steps = len(self._actions)
        eef_pos, eef_quat = np.stack(self._eef_pos), np.stack(self._eef_quat)
        gripper = np.stack(self._gripper)
        ee_ori = quat_to_axis_angle(eef_quat)
        last = np.zeros(steps, dtype=np.uint8)
        last[-1] = 1
        out = {'obs/agentview_rgb': np.stack(self._agentview)}
        if self._wrist:
            out['obs/eye_in_hand_rgb'] = np.stack(self._wrist)
        out.update({
            'obs/gripper_states': gripper,
            'obs/joint_states': np.stack(self._joints),
            'obs/ee_states': np.concatenate([eef_pos, ee_ori], axis=1),
            'obs/ee_pos': eef_pos,
            'obs/ee_ori': ee_ori,
            'actions': np.stack(self._actions),
            **({'states': np.stack(self._states)} if self._states else {}),
            'robot_states': np.concatenate([gripper, eef_pos, eef_quat], axis=1),
            'rewards': last,
            'dones': last.copy(),
        })
        return out


def demo_attrs(arrays: dict[str, np.ndarray], layout: str, init_state_index: int,
               model_xml: str | None = None) -> dict[str, Any]:
    """Return the attributes of a demo group in ``layout``."""
    attrs: dict[str, Any] = {'init_state_index': int(init_state_index)}
    if layout == 'original':
        attrs['num_samples'] = int(len(arrays['actions']))
        attrs['init_state'] = arrays['states'][0]
        attrs['model_file'] = model_xml or ''
    return attrs


def write_demo(group: h5py.Group, arrays: dict[str, np.ndarray], attrs: dict[str, Any]) -> None:
    """Write one demo's datasets and attributes into ``group`` (an empty group)."""
    for key, value in arrays.items():
        group.create_dataset(key, data=value)
    for key, value in attrs.items():
        group.attrs[key] = value


def write_part(path: str | os.PathLike, arrays: dict[str, np.ndarray], attrs: dict[str, Any],
               meta: dict[str, Any], file_attrs: dict[str, Any] | None = None) -> None:
    """
    Write one finished demo as its own file (atomically: a reader never sees half of it).

    ``meta`` (how it was collected) and ``file_attrs`` (the ``data`` attributes of the final
    file, original layout only) are stored as JSON root attributes.
    """
    with atomic_path(path) as tmp:
        with h5py.File(tmp, 'w') as handle:
            write_demo(handle.create_group(PART_GROUP), arrays, attrs)
            handle.attrs['meta'] = json.dumps(meta)
            if file_attrs is not None:
                handle.attrs['file_attrs'] = json.dumps(file_attrs)


def original_file_attrs(env, suite: str, task_id: int, bddl: str) -> dict[str, Any]:
    """
    Return the ``data`` attributes of an original-layout file for a :class:`LiberoTaskEnv`.

    LIBERO's keys (``problem_info`` with the BDDL's own sentence, ``env_args``,
    ``bddl_file_name``, ``macros_image_convention``) plus ``suite``, ``task_id`` and
    ``task_name``, which name the task for replaying it. ``num_demos`` and ``total`` are added
    when the file is assembled.
    """
    raw = env.raw_env
    bddl_file_name = f'libero/libero/bddl_files/{bddl}'
    size = int(env.camera_size)
    cameras = ['agentview', 'robot0_eye_in_hand'] if env.wrist_camera else ['agentview']
    return {
        'problem_info': json.dumps({'problem_name': raw.problem_name,
                                    'domain_name': raw.domain_name,
                                    'language_instruction': raw.language_instruction}),
        'env_args': json.dumps({
            'type': 1, 'env_name': type(raw.env).__name__, 'problem_name': raw.problem_name,
            'bddl_file': bddl_file_name,
            'env_kwargs': {'bddl_file_name': bddl_file_name, 'camera_heights': size,
                           'camera_widths': size, 'camera_names': cameras,
                           'control_freq': int(raw.env.control_freq), 'controller': 'OSC_POSE'}}),
        'bddl_file_name': bddl_file_name,
        'macros_image_convention': 'opengl',
        'suite': suite, 'task_id': int(task_id), 'task_name': env.task_name,
    }


@dataclass(frozen=True)
class DemoSource:
    """A demo to copy into an assembled file: ``group`` of file ``path`` -> ``data/name``."""

    path: Path
    group: str
    name: str


def assemble(output: str | os.PathLike, sources: Sequence[DemoSource],
             data_attrs: dict[str, Any] | None) -> int:
    """
    Write ``output`` from ``sources`` (in order) and atomically replace it; the total steps.

    ``data_attrs`` None: the no_noops layout (no ``data`` attributes); otherwise the original
    layout's attributes, ``num_demos`` and ``total`` added. A source may be ``output`` itself
    (the previous version): it is read while the new version is written next to it.
    """
    total = 0
    with atomic_path(output) as tmp:
        with h5py.File(tmp, 'w') as handle:
            data = handle.create_group('data')
            for source in sources:
                with h5py.File(source.path, 'r') as src:
                    src.copy(src[source.group], data, name=source.name)
                    total += int(src[source.group]['actions'].shape[0])
            if data_attrs is not None:
                for key, value in data_attrs.items():
                    data.attrs[key] = value
                data.attrs['num_demos'] = len(sources)
                data.attrs['total'] = total
    return total
