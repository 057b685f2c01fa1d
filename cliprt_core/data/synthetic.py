"""
Synthetic LIBERO demonstration HDF5 files in the exact on-disk layouts (LIBERO's, OpenVLA's).

For tests, benchmarks and trying the training pipeline without LIBERO's datasets: writes small
files (a few demos of smooth actions and clearly changing frames) that real LIBERO readers accept.
The module depends only on numpy and h5py, not on the rest of ``cliprt_core``, so the tests of
the reader (:mod:`cliprt_core.data.libero_hdf5`) check it against the published layout, not
against itself. Two layouts:

``layout="original"`` (LIBERO's own files, ``{task}_demo.hdf5``)
    ``data`` attrs ``problem_info`` (JSON with ``language_instruction``), ``env_args`` (JSON),
    ``bddl_file_name``, ``macros_image_convention`` ("opengl": images upside down), ``num_demos``,
    ``total``; each ``data/demo_i`` has attrs ``num_samples``, ``init_state``, ``model_file`` and
    ``obs/{agentview_rgb, eye_in_hand_rgb, gripper_states, joint_states, ee_states, ee_pos,
    ee_ori}``, ``actions``, ``states``, ``robot_states``, ``rewards``, ``dones``. Demos start
    with a few no-op steps (zero motion, gripper unchanged), as real teleoperation data does.
``layout="no_noops"`` (OpenVLA's regeneration)
    The same per-demo datasets, no ``data`` attrs at all (the instruction lives only in the file
    name), no no-op steps, and ``drop_demos`` leaves gaps in the demo numbering like failed
    replays do.

In both layouts images are stored the way LIBERO renders them: rotated by 180 degrees. The
function takes *upright* frames (what the model must see) and returns them for comparison.

Usage::

    info = write_libero_hdf5(tmp_path / libero_file_name("put the bowl on the plate"),
                             num_demos=2, length=20, image_size=64, layout="no_noops")
    info.upright["demo_0"]   # (T, H, W, 3) uint8, what a correct reader must return
    info.actions["demo_0"]   # (T, 7) float64
"""
from __future__ import annotations

from dataclasses import dataclass, field
import json
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

DEFAULT_INSTRUCTION = 'put the black bowl on the plate'


@dataclass
class WrittenFile:
    """What was written: per demo name, the upright frames and the actions."""

    path: Path
    instruction: str
    layout: str
    demos: list[str]
    upright: dict[str, np.ndarray] = field(default_factory=dict)
    wrist_upright: dict[str, np.ndarray] = field(default_factory=dict)
    actions: dict[str, np.ndarray] = field(default_factory=dict)


def libero_file_name(instruction: str = DEFAULT_INSTRUCTION, scene: str | None = None) -> str:
    """Return LIBERO's file name for a task (``KITCHEN_SCENE3_turn_on_the_stove_demo.hdf5``)."""
    stem = instruction.strip().replace(' ', '_')
    if scene:
        stem = f'{scene}_{stem}'
    return f'{stem}_demo.hdf5'


def demo_actions(length: int, rng: np.random.Generator, noop_steps: int = 0) -> np.ndarray:
    """Smooth, distinct 7-D LIBERO actions in [-1, 1]; the gripper closes half-way through."""
    t = np.arange(length, dtype=np.float64) / max(length - 1, 1)
    phase = rng.uniform(0, 2 * np.pi, size=6)
    freq = rng.uniform(0.5, 1.5, size=6)
    amp = rng.uniform(0.3, 0.9, size=6)
    motion = amp * np.sin(2 * np.pi * freq * t[:, None] + phase)
    gripper = np.where(t < 0.5, -1.0, 1.0)[:, None]
    actions = np.concatenate([motion, gripper], axis=1)
    if noop_steps:
        actions[:noop_steps, :6] = 0.0
        actions[:noop_steps, 6] = -1.0
    return actions


def demo_frames(length: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """
    Return upright frames that change clearly over time.

    Upright frames that change clearly over time (so a policy can tell the steps apart):
    a colour gradient (channel order drawn per demo) whose tint follows the step, a large
    square that moves with the step, and a marker at the top-left corner.

    The marker (a white 4x4 block in the top-left corner) lets tests check the orientation.
    """
    frames = np.zeros((length, size, size, 3), dtype=np.uint8)
    ys, xs = np.mgrid[0:size, 0:size]
    colour = rng.integers(64, 256, size=3)
    side = max(size // 3, 2)
    start = rng.integers(0, size - side, size=2)
    channels = rng.permutation(3)  # each demo has its own colour scheme (its own "scene")
    for i in range(length):
        phase = i / max(length - 1, 1)
        tint = int(40 + 180 * phase)
        planes = [xs * 150 // size, np.full_like(xs, tint), ys * 150 // size]
        frame = np.stack([planes[c] for c in channels], axis=-1).astype(np.uint8)
        y = int(start[0] + phase * (size - side - start[0]))
        x = int(start[1] * (1 - phase))
        frame[y:y + side, x:x + side] = colour
        frame[:4, :4] = 255
        frames[i] = frame
    return frames


def write_libero_hdf5(path: str | Path, num_demos: int = 2, length: int | Sequence[int] = 20,
                      image_size: int = 64, layout: str = 'original',
                      instruction: str = DEFAULT_INSTRUCTION, seed: int = 0, wrist: bool = True,
                      drop_demos: Sequence[int] = (), noop_steps: int = 3,
                      compression: str | None = None) -> WrittenFile:
    """Write one LIBERO task file with ``num_demos`` demos (``length`` steps each, or a list)."""
    if layout not in ('original', 'no_noops'):
        raise ValueError(f"layout must be 'original' or 'no_noops', got {layout!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lengths = [length] * num_demos if isinstance(length, int) else list(length)
    if len(lengths) != num_demos:
        raise ValueError('need one length per demo')
    noops = noop_steps if layout == 'original' else 0
    result = WrittenFile(path=path, instruction=instruction, layout=layout, demos=[])
    with h5py.File(path, 'w') as f:
        data = f.create_group('data')
        total = 0
        for i in range(num_demos):
            demo_rng = np.random.default_rng([seed, i])
            if i in drop_demos:
                continue  # a failed replay: its number is skipped (no_noops files have gaps)
            steps = lengths[i]
            name = f'demo_{i}'
            actions = demo_actions(steps, demo_rng, noops)
            frames = demo_frames(steps, image_size, demo_rng)
            wrist_frames = 255 - frames
            demo = data.create_group(name)
            obs = demo.create_group('obs')
            kw = {'compression': compression} if compression else {}
            # stored the way LIBERO renders: rotated by 180 degrees
            obs.create_dataset('agentview_rgb', data=frames[:, ::-1, ::-1], **kw)
            if wrist:
                obs.create_dataset('eye_in_hand_rgb', data=wrist_frames[:, ::-1, ::-1], **kw)
            ee = demo_rng.normal(size=(steps, 6))
            obs.create_dataset('gripper_states', data=demo_rng.normal(size=(steps, 2)))
            obs.create_dataset('joint_states', data=demo_rng.normal(size=(steps, 7)))
            obs.create_dataset('ee_states', data=ee)
            obs.create_dataset('ee_pos', data=ee[:, :3])
            obs.create_dataset('ee_ori', data=ee[:, 3:])
            demo.create_dataset('actions', data=actions)
            demo.create_dataset('states', data=demo_rng.normal(size=(steps, 47)))
            demo.create_dataset('robot_states', data=demo_rng.normal(size=(steps, 9)))
            rewards = np.zeros(steps, dtype=np.uint8)
            rewards[-1] = 1
            demo.create_dataset('rewards', data=rewards)
            demo.create_dataset('dones', data=rewards.copy())
            if layout == 'original':
                demo.attrs['num_samples'] = steps
                demo.attrs['init_state'] = demo_rng.normal(size=47)
                demo.attrs['model_file'] = '<mujoco model xml>'
            total += steps
            result.demos.append(name)
            result.upright[name] = frames
            if wrist:
                result.wrist_upright[name] = wrist_frames
            result.actions[name] = actions
        if layout == 'original':
            data.attrs['problem_info'] = json.dumps({
                'problem_name': 'libero_tabletop_manipulation', 'domain_name': 'robosuite',
                'language_instruction': instruction})
            data.attrs['env_args'] = json.dumps({
                'type': 1, 'env_name': 'Libero_Tabletop_Manipulation',
                'env_kwargs': {'camera_heights': image_size, 'camera_widths': image_size}})
            data.attrs['bddl_file_name'] = f'libero/bddl_files/{path.stem}.bddl'
            data.attrs['macros_image_convention'] = 'opengl'
            data.attrs['num_demos'] = len(result.demos)
            data.attrs['total'] = total
    return result
