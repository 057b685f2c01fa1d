"""
Per-step language of recorded demos: the motion primitive each step executes.

Teleoperated and diversified demos store, next to LIBERO's datasets of a demo group:

``primitives`` (T,) UTF-8 strings
    the phrase of the primitive step ``t`` belongs to ("move the arm to the left by ten
    centimeters"), as the person (or the diversification) chose it;
``primitive_steps`` (T,) int32
    the position of step ``t`` within its primitive: 0 where the command was given (the image
    the person saw), 1, 2, ... for the further control steps of the same primitive.

The discrete model trains on these phrases directly (one sample per command: the steps with
``primitive_steps == 0``) instead of labeling the executed actions; demos without them are
labeled from their actions as usual.
"""
from __future__ import annotations

import os
from typing import Iterable

from cliprt_core.data.libero_hdf5 import DataError, open_hdf5
import h5py
import numpy as np

__all__ = ['PHRASES_KEY', 'PRIMITIVE_STEPS_KEY', 'phrase_arrays', 'read_phrases']

PHRASES_KEY = 'primitives'
PRIMITIVE_STEPS_KEY = 'primitive_steps'


def phrase_arrays(phrases: list[str], steps: list[int]) -> dict[str, np.ndarray]:
    """Return the two datasets of a demo (``{key: array}``) for its per-step phrases."""
    if len(phrases) != len(steps):
        raise ValueError(f'{len(phrases)} phrases but {len(steps)} primitive steps')
    return {PHRASES_KEY: np.array(phrases, dtype=h5py.string_dtype('utf-8')),
            PRIMITIVE_STEPS_KEY: np.asarray(steps, dtype=np.int32)}


def read_phrases(path: str | os.PathLike, demos: Iterable[str]
                 ) -> dict[str, tuple[list[str], np.ndarray]]:
    """Return ``{demo: (phrases, primitive_steps)}`` for the named demos that have them."""
    out = {}
    with open_hdf5(path) as handle:
        for name in demos:
            group = handle['data'][name]
            if PHRASES_KEY not in group:
                continue
            try:
                phrases = [p.decode('utf-8') if isinstance(p, bytes) else str(p)
                           for p in group[PHRASES_KEY][()]]
                steps = np.asarray(group[PRIMITIVE_STEPS_KEY][()], dtype=np.int64)
            except (OSError, KeyError, ValueError) as exc:
                raise DataError(f"{path}: cannot read the phrases of 'data/{name}' "
                                f'({PHRASES_KEY}, {PRIMITIVE_STEPS_KEY}): {exc}') from None
            length = group['actions'].shape[0]
            if len(phrases) != length or len(steps) != length:
                raise DataError(f"{path}: 'data/{name}' has {length} actions but "
                                f'{len(phrases)} phrases and {len(steps)} primitive steps')
            out[name] = (phrases, steps)
    return out
