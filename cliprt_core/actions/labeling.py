"""
Label continuous 7-D delta actions with CLIP-RT's discrete motion primitives, and back.

Input actions are ``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` in the units of the data set;
``LabelingConfig.position_scale`` / ``rotation_scale`` convert them to metres / radians. The
gripper is an absolute command (-1 open, +1 close, as in LIBERO) and is not scaled.

Rules (as in the CLIP-RT authors' ``pretrain/preprocess.py``):

1. A gripper change takes precedence: if ``|gripper - previous_gripper| > gripper_change`` the
   label is "open the gripper" when the command decreased (towards -1), else "close the gripper".
2. Dominant axis = argmax of ``[|pos| * position_weight, |rot|]`` (metres vs radians; 7.854 makes
   0.1 m weigh as much as 0.7854 rad). Ties go to the lowest index (x, y, z, roll, pitch, yaw).
3. No label (None / -1) if the dominant value is ``<= min_position`` (position axis) or
   ``<= min_rotation`` (rotation axis); the other axes are not looked at.
4. Otherwise the value is binned with the sorted edges: bin ``i`` is ``(edges[i-1], edges[i]]``,
   upper edge inclusive, i.e. ``np.searchsorted(edges, v, side="left")`` = the authors'
   ``np.digitize(v, edges, right=True)``, and mapped to ``magnitudes[i]``. A value exactly on an
   edge belongs to the bin below it: 0.03 m -> 1 cm, -0.03 m -> -5 cm.

Comparisons are done in float64 (``np.float32(0.03)`` is not exactly on the edge). The smallest
magnitudes equal the thresholds (0.01 m, 0.08727 rad), so labeling an executed 1 cm / 5 deg
primitive again gives no label.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
import functools

from cliprt_core.actions.vocabulary import (GRIPPER_AXIS, GRIPPER_CLOSE, GRIPPER_OPEN,
                                            load_vocabulary, Vocabulary, VocabularyError)
import numpy as np

__all__ = ['LABEL_AXES', 'LabelingConfig', 'label_action', 'label_actions', 'primitive_to_action']

LABEL_AXES = ('x', 'y', 'z', 'roll', 'pitch', 'yaw')  # action columns 0..5


@dataclass(frozen=True)
class LabelingConfig:
    """Units and thresholds of the labeling rules (defaults: metric input, authors' values)."""

    position_scale: float = 1.0     # metres per unit of input position (LIBERO: 0.05)
    rotation_scale: float = 1.0     # radians per unit of input rotation (LIBERO: 0.5)
    position_weight: float = 7.854  # |pos| (m) is multiplied by this before comparing to |rot|
    min_position: float = 0.01      # m; dominant position <= this -> no label
    min_rotation: float = 0.08727   # rad; dominant rotation <= this -> no label
    gripper_change: float = 0.5     # |gripper - previous| > this -> open / close label
    position_edges: tuple[float, ...] = (-0.15, -0.075, -0.03, 0.0, 0.03, 0.075, 0.15)
    position_magnitudes: tuple[float, ...] = (-0.2, -0.1, -0.05, -0.01, 0.01, 0.05, 0.1, 0.2)
    rotation_edges: tuple[float, ...] = (-1.1781, -0.5236, -0.1746, 0.0, 0.1746, 0.5236, 1.1781)
    rotation_magnitudes: tuple[float, ...] = (
        -1.5708, -0.7854, -0.2618, -0.08727, 0.08727, 0.2618, 0.7854, 1.5708)

    def __post_init__(self) -> None:
        for name in ('position_scale', 'rotation_scale', 'position_weight'):
            if not getattr(self, name) > 0:
                raise ValueError(f'LabelingConfig.{name} must be > 0, got {getattr(self, name)}')
        for name in ('min_position', 'min_rotation', 'gripper_change'):
            if not getattr(self, name) >= 0:
                raise ValueError(f'LabelingConfig.{name} must be >= 0, got {getattr(self, name)}')
        for kind in ('position', 'rotation'):
            edges = tuple(float(e) for e in getattr(self, f'{kind}_edges'))
            mags = tuple(float(m) for m in getattr(self, f'{kind}_magnitudes'))
            object.__setattr__(self, f'{kind}_edges', edges)
            object.__setattr__(self, f'{kind}_magnitudes', mags)
            if not edges or any(b <= a for a, b in zip(edges, edges[1:])):
                raise ValueError(
                    f'LabelingConfig.{kind}_edges must be non-empty and strictly increasing')
            if len(mags) != len(edges) + 1:
                raise ValueError(
                    f'LabelingConfig.{kind}_magnitudes needs len({kind}_edges) + 1 = '
                    f'{len(edges) + 1} values, got {len(mags)}')

    @classmethod
    def libero(cls) -> 'LabelingConfig':
        """LIBERO / robosuite OSC_POSE: normalised actions, 1.0 = 0.05 m and 0.5 rad."""
        return cls(position_scale=0.05, rotation_scale=0.5)


@dataclass(frozen=True)
class _Table:
    moves: np.ndarray  # int64 [6, n_bins]: primitive index per (axis, bin)
    open_index: int
    close_index: int


@functools.lru_cache(maxsize=32)
def _table(vocabulary: Vocabulary, config: LabelingConfig) -> _Table:
    if len(config.position_magnitudes) != len(config.rotation_magnitudes):
        raise ValueError('LabelingConfig: position and rotation need the same number of bins')
    rows = []
    for axis in LABEL_AXES:
        is_pos = axis in ('x', 'y', 'z')
        mags = config.position_magnitudes if is_pos else config.rotation_magnitudes
        rows.append([vocabulary.find(axis, m) for m in mags])
    return _Table(np.array(rows, dtype=np.int64), vocabulary.find(GRIPPER_AXIS, GRIPPER_OPEN),
                  vocabulary.find(GRIPPER_AXIS, GRIPPER_CLOSE))


@functools.lru_cache(maxsize=1)
def _default_vocabulary() -> Vocabulary:
    return load_vocabulary('pretrain_50')


def label_action(action: np.ndarray, previous_gripper: float | None = None,
                 vocabulary: Vocabulary | None = None,
                 config: LabelingConfig | None = None) -> int | None:
    """
    Primitive index for one 7-D delta action, or None when the step gets no label.

    ``previous_gripper`` is the previous step's gripper command (None: no gripper change is
    possible). ``vocabulary`` defaults to ``pretrain_50``; ``config`` to ``LabelingConfig()``.
    """
    vocabulary = _default_vocabulary() if vocabulary is None else vocabulary
    config = LabelingConfig() if config is None else config
    a = np.asarray(action, dtype=np.float64)
    if a.shape != (7,):
        raise ValueError(f'action must have shape (7,), got {a.shape}')
    if not np.isfinite(a).all():
        raise ValueError(f'action contains NaN or inf: {a.tolist()}')
    table = _table(vocabulary, config)
    if previous_gripper is not None:
        if not np.isfinite(previous_gripper):
            raise ValueError(f'previous_gripper must be finite, got {previous_gripper!r}')
        delta = float(a[6]) - float(previous_gripper)
        if abs(delta) > config.gripper_change:
            return table.open_index if delta < 0 else table.close_index
    values = ([float(v) * config.position_scale for v in a[:3]]
              + [float(v) * config.rotation_scale for v in a[3:6]])
    weighted = [abs(v) * config.position_weight for v in values[:3]]
    weighted += [abs(v) for v in values[3:]]
    axis = max(range(6), key=weighted.__getitem__)  # first maximum, like np.argmax
    value = values[axis]
    if axis < 3:
        if abs(value) <= config.min_position:
            return None
        return int(table.moves[axis, bisect.bisect_left(config.position_edges, value)])
    if abs(value) <= config.min_rotation:
        return None
    return int(table.moves[axis, bisect.bisect_left(config.rotation_edges, value)])


def label_actions(actions: np.ndarray, initial_gripper: float | None = None,
                  vocabulary: Vocabulary | None = None,
                  config: LabelingConfig | None = None) -> np.ndarray:
    """
    Vectorised labeling of a trajectory [T, 7] -> int64 [T], -1 for unlabeled steps.

    The previous gripper of step t is ``actions[t-1, 6]``; for t = 0 it is ``initial_gripper``
    (None: step 0 cannot be a gripper change). Same results as ``label_action`` per step.
    """
    vocabulary = _default_vocabulary() if vocabulary is None else vocabulary
    config = LabelingConfig() if config is None else config
    a = np.asarray(actions, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 7:
        raise ValueError(f'actions must have shape (T, 7), got {a.shape}')
    if not np.isfinite(a).all():
        raise ValueError('actions contain NaN or inf')
    if initial_gripper is not None and not np.isfinite(initial_gripper):
        raise ValueError(f'initial_gripper must be finite, got {initial_gripper!r}')
    table = _table(vocabulary, config)
    n = a.shape[0]
    labels = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return labels

    pos = a[:, :3] * config.position_scale
    rot = a[:, 3:6] * config.rotation_scale
    weighted = np.concatenate([np.abs(pos) * config.position_weight, np.abs(rot)], axis=1)
    axis = np.argmax(weighted, axis=1)
    value = np.concatenate([pos, rot], axis=1)[np.arange(n), axis]
    is_pos = axis < 3
    moving = np.abs(value) > np.where(is_pos, config.min_position, config.min_rotation)
    pos_bin = np.searchsorted(np.asarray(config.position_edges), value, side='left')
    rot_bin = np.searchsorted(np.asarray(config.rotation_edges), value, side='left')
    bins = np.where(is_pos, pos_bin, rot_bin)
    labels[moving] = table.moves[axis[moving], bins[moving]]

    previous = np.empty(n, dtype=np.float64)
    previous[0] = a[0, 6] if initial_gripper is None else float(initial_gripper)
    previous[1:] = a[:-1, 6]
    delta = a[:, 6] - previous
    changed = np.abs(delta) > config.gripper_change
    labels[changed] = np.where(delta[changed] < 0, table.open_index, table.close_index)
    return labels


def primitive_to_action(vocabulary: Vocabulary, index: int,
                        config: LabelingConfig | None = None,
                        keep_gripper: float = 0.0) -> np.ndarray:
    """
    Return the 7-D action in input units (float64) that executes primitive ``index``.

    Movement primitives put ``magnitude / scale`` on their axis and ``keep_gripper`` in the
    gripper entry (0.0 = no gripper command for robosuite / LIBERO, which acts on the sign of the
    gripper action; pass the last command to hold it explicitly). Gripper primitives give -1
    (open) / +1 (close) and no motion. Axes a 7-D action cannot express (``rotate_gripper``)
    raise ValueError.
    """
    config = LabelingConfig() if config is None else config
    if not -len(vocabulary) <= index < len(vocabulary):
        raise IndexError(
            f"primitive index {index} out of range for '{vocabulary.name}' ({len(vocabulary)})")
    prim = vocabulary.primitives[index]
    if prim.magnitude is None:
        raise VocabularyError(f'primitive {prim.phrase!r} has no magnitude; cannot execute it')
    action = np.zeros(7, dtype=np.float64)
    if prim.changes_gripper:
        if prim.axis != GRIPPER_AXIS or prim.magnitude not in (GRIPPER_OPEN, GRIPPER_CLOSE):
            raise VocabularyError(f"gripper primitive {prim.phrase!r} must have axis 'gripper' "
                                  f'and magnitude -1 (open) or +1 (close)')
        action[6] = prim.magnitude
        return action
    if prim.axis not in LABEL_AXES:
        raise ValueError(f'primitive {prim.phrase!r} moves axis {prim.axis!r}, which a 7-D '
                         f'[dx, dy, dz, droll, dpitch, dyaw, gripper] action cannot express')
    column = LABEL_AXES.index(prim.axis)
    scale = config.position_scale if column < 3 else config.rotation_scale
    action[column] = prim.magnitude / scale
    action[6] = keep_gripper
    return action
