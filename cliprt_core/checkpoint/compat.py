"""
Does a state dict fit a model config? Checked on the meta device, before any model is built.

Building the real ViT-H-14-378 CLIP-RT+ takes many seconds and ~5 GB; its tensor names and
shapes come from a meta-device build in a fraction of a second. A mismatch is reported with the
file, the model config, a few examples, and the shipped model config that fits the file.
"""
from __future__ import annotations

from contextlib import contextmanager
import logging
from pathlib import Path
from typing import Iterator, Mapping

from cliprt_core.checkpoint.errors import CheckpointError
from cliprt_core.checkpoint.official import (describe, map_official_state_dict, MISMATCH,
                                             official_key_to_ours)
from cliprt_core.model.configuration import CLIPRTConfig, list_model_configs, load_model_config
from cliprt_core.model.modeling import create_model
import torch


class _DropNoPretrained(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:  # noqa: A003 (logging.Filter API)
        return 'No pretrained weights loaded' not in record.getMessage()


@contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """open_clip warns about missing pretrained weights on every build: meaningless here."""
    quiet = _DropNoPretrained()
    logging.getLogger().addFilter(quiet)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(quiet)


def expected_state(config: CLIPRTConfig) -> dict[str, torch.Tensor]:
    """Return the model's state dict as meta tensors (names, shapes, dtypes; no memory)."""
    with _quiet_open_clip(), torch.device('meta'):
        return create_model(config).state_dict()


def _shape(value: object) -> tuple[int, ...] | str:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def shape_mismatches(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
                     ) -> dict[str, list[str]]:
    """Missing, unexpected and mis-shaped keys of ``state`` against ``expected`` (empty: fits)."""
    problems = {
        'missing keys': sorted(set(expected) - set(state)),
        'unexpected keys': sorted(set(state) - set(expected)),
        'shape mismatches': sorted(
            f'{k}: file {_shape(state[k])} vs model {tuple(expected[k].shape)}'
            for k in set(state) & set(expected) if _shape(state[k]) != tuple(expected[k].shape)),
    }
    return {kind: items for kind, items in problems.items() if items}


def _agreement(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor],
               official: bool) -> tuple[bool, int, int]:
    """(fits exactly, tensors that agree, tensors of the model) of a state dict and a config."""
    if official:
        try:
            map_official_state_dict(state, expected)
            return True, len(expected), len(expected)
        except CheckpointError:
            state = {official_key_to_ours(k.removeprefix('module.')): v for k, v in state.items()}
    agree = sum(1 for k, v in state.items()
                if k in expected and _shape(v) == tuple(expected[k].shape))
    fits = not shape_mismatches(state, expected)
    return fits, agree, len(expected)


def suggest_model_config(state: Mapping[str, torch.Tensor], official: bool,
                         tried: str | None = None) -> str:
    """Return a sentence naming the shipped model config that fits ``state``."""
    scores = []
    for name in list_model_configs():
        if name == tried:
            continue
        try:
            expected = expected_state(load_model_config(name))
        except Exception:  # noqa: BLE001 - a broken config must not hide the real error
            continue
        fits, agree, total = _agreement(state, expected, official)
        if fits:
            return f'it fits model config {name!r}: pass model_config={name!r}'
        scores.append((agree / max(total, 1), agree, total, name))
    if not scores:
        return 'no shipped model config to compare with'
    _, agree, total, name = max(scores)
    return (f'no shipped model config fits it (closest: {name!r}, {agree} of {total} tensors '
            f'agree); pass the model_config it was trained with')


def check_fits(path: Path, state: Mapping[str, torch.Tensor], config: CLIPRTConfig,
               official: bool, how: str = '') -> dict[str, torch.Tensor] | None:
    """
    Raise CheckpointError unless ``state`` fits ``config``; official files are mapped.

    Returns the mapped state dict of an official file (None for ours). ``how`` says where the
    config came from (e.g. "the default for CLIP-RT+ files").
    """
    expected = expected_state(config)
    if official:
        try:
            return map_official_state_dict(state, expected)
        except CheckpointError as exc:
            details = str(exc).removeprefix(MISMATCH)
    else:
        problems = shape_mismatches(state, expected)
        if not problems:
            return None
        details = describe(problems)
    origin = f' ({how})' if how else ''
    hint = suggest_model_config(state, official, tried=config.name)
    raise CheckpointError(f'{path} does not fit model_config {config.name!r}{origin}: {hint}. '
                          f'Details: {details}')
