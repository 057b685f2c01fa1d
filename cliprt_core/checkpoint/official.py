"""
Map the authors' CLIP-RT / CLIP-RT+ checkpoint keys (their open_clip 2.24 fork) onto our model.

Every tensor of the file is accounted for: mapped, or a verified duplicate of a mapped tensor
(``text.*``, and the decoder's top-level ``*2`` aliases of ``text2.*``). Anything unknown,
missing, conflicting or mis-shaped is an error that names the keys.
"""
from __future__ import annotations

from typing import Any, Mapping

from cliprt_core.checkpoint.errors import CheckpointError
import torch

MAX_LISTED = 5  # example keys per kind of mismatch in an error message
MISMATCH = 'official checkpoint does not match the model: '

# Top-level aliases of the decoder tower (same tensors as text2.*).
_DECODER_ALIASES = {
    'token_embedding2.': 'token_embedding.',
    'positional_embedding2': 'positional_embedding',
    'transformer2.': 'transformer.',
    'ln_final2.': 'ln_final.',
    'text_projection2': 'text_projection',
}


def is_official(payload: Any) -> bool:
    """Heuristic: a dict with a ``state_dict`` of open_clip-style (``module.``-prefixed) keys."""
    state = payload.get('state_dict') if isinstance(payload, dict) else None
    if not isinstance(state, Mapping):
        return False
    return any(k.removeprefix('module.').startswith('visual.') for k in state)


def has_action_decoder(state_dict: Mapping[str, Any]) -> bool:
    """Tell whether a state dict is a CLIP-RT+ file (an action head is present)."""
    return any(k.removeprefix('module.').startswith('action_head.') for k in state_dict)


def official_key_to_ours(key: str) -> str:
    """Our parameter name for one official key (``module.`` already stripped)."""
    if key.startswith('text2.'):
        return 'decoder.' + key[len('text2.'):]
    for alias, target in _DECODER_ALIASES.items():
        if key.startswith(alias):
            return 'decoder.' + target + key[len(alias):]
    if key.startswith('action_head.'):
        return key
    if key.startswith('text.'):
        return 'clip.' + key[len('text.'):]
    return 'clip.' + key


def map_official_state_dict(official: Mapping[str, torch.Tensor],
                            expected: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """
    Translate an official state dict into our key space, checking every tensor.

    ``expected`` is our model's ``state_dict()`` (names and shapes). Raises CheckpointError that
    lists unexpected, missing, mis-shaped and conflicting-duplicate keys.
    """
    mapped: dict[str, torch.Tensor] = {}
    source: dict[str, str] = {}
    unexpected, shape_errors, conflicts = [], [], []
    mis_shaped: set[str] = set()
    for raw_key, tensor in official.items():
        key = raw_key.removeprefix('module.')
        ours = official_key_to_ours(key)
        if ours not in expected:
            unexpected.append(raw_key)
            continue
        if tuple(tensor.shape) != tuple(expected[ours].shape):
            mis_shaped.add(ours)
            shape_errors.append(f'{raw_key}: file {tuple(tensor.shape)} vs model '
                                f'{tuple(expected[ours].shape)}')
            continue
        if ours in mapped:
            if not _same_tensor(mapped[ours], tensor):
                conflicts.append(f'{raw_key} differs from its duplicate {source[ours]}')
            continue
        mapped[ours] = tensor
        source[ours] = raw_key
    missing = sorted(set(expected) - set(mapped) - mis_shaped)
    problems = {'unexpected keys': unexpected, 'missing keys': missing,
                'shape mismatches': shape_errors, 'conflicting duplicates': conflicts}
    problems = {kind: items for kind, items in problems.items() if items}
    if problems:
        raise CheckpointError(MISMATCH + describe(problems))
    return mapped


def describe(problems: Mapping[str, list[str]]) -> str:
    """``3 missing keys: a, b, c; 1 shape mismatches: ...`` with at most MAX_LISTED examples."""
    parts = []
    for kind, items in problems.items():
        more = f' and {len(items) - MAX_LISTED} more' if len(items) > MAX_LISTED else ''
        parts.append(f"{len(items)} {kind}: {', '.join(items[:MAX_LISTED])}{more}")
    return '; '.join(parts)


def our_state_dict_to_official(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """
    Return the inverse layout, as the authors' DDP training wrote it (for tests and interop).

    Includes the ``module.`` prefix and every duplicate: ``text.*`` for the text tower and both
    ``text2.*`` and the top-level ``*2`` aliases for the decoder.
    """
    out: dict[str, torch.Tensor] = {}
    text_tower = ('token_embedding.', 'positional_embedding', 'transformer.', 'ln_final.',
                  'text_projection')
    for key, tensor in state_dict.items():
        if key.startswith('clip.'):
            name = key[len('clip.'):]
            out['module.' + name] = tensor
            if name.startswith(text_tower):
                out['module.text.' + name] = tensor
        elif key.startswith('decoder.'):
            name = key[len('decoder.'):]
            out['module.text2.' + name] = tensor
            for alias, target in _DECODER_ALIASES.items():
                if name.startswith(target):
                    out['module.' + alias + name[len(target):]] = tensor
                    break
        else:
            out['module.' + key] = tensor
    return out


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.data_ptr() == b.data_ptr() and a.shape == b.shape:
        return True
    return a.dtype == b.dtype and torch.equal(a, b)
