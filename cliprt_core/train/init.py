"""
Initialise a model before training.

Initialise a model before training: from a checkpoint (whole model or only the CLIP towers)
or from open_clip's pretrained weights (``open_clip:<tag>``, e.g. ``open_clip:dfn5b``).

Nothing is loaded silently: every tensor of the copied part must exist with the same shape,
and what stays randomly initialised is reported.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

from cliprt_core.checkpoint import CheckpointError, load_model
from cliprt_core.checkpoint.loading import load_payload
from cliprt_core.checkpoint.official import has_action_decoder
from cliprt_core.config import ConfigError
from cliprt_core.model.modeling import CLIPRT
from cliprt_core.model.torchvision_compat import import_open_clip
import torch

BACKBONE_PREFIX = 'clip.'


def initialise(model: CLIPRT, spec: str, mode: str = 'full') -> str:
    """Load weights named by ``spec`` into ``model``; returns a one-line report."""
    if spec.startswith('open_clip:'):
        return _from_open_clip(model, spec.split(':', 1)[1])
    loaded = load_payload(spec)
    if loaded.kind == 'official':
        head = 'chunk' if has_action_decoder(loaded.payload['state_dict']) else 'discrete'
        if mode == 'full' and head != model.config.head:
            raise CheckpointError(f'{spec}: a {head}-head file cannot initialise the whole '
                                  f'{model.config.head}-head model; use init_mode=backbone')
        source, _ = load_model(spec, dataclasses.replace(model.config, head=head))
    else:
        source, _ = load_model(spec)
    state = source.state_dict()
    if mode == 'full':
        if source.config != model.config:
            raise CheckpointError(f'{spec}: its model config ({source.config.name}) differs from '
                                  f"the trained model's ({model.config.name}); "
                                  f'use init_mode=backbone')
        model.load_state_dict(state, strict=True)
        return f'initialised the whole model from {spec}'
    copied = copy_backbone(model, state, spec)
    fresh = len(model.state_dict()) - copied
    return f'initialised {copied} backbone tensors from {spec}; {fresh} head tensors stay random'


def copy_backbone(model: CLIPRT, state: Mapping[str, torch.Tensor], source: str) -> int:
    """Copy every ``clip.*`` tensor (all must be present with equal shapes)."""
    ours = {k: v for k, v in model.state_dict().items() if k.startswith(BACKBONE_PREFIX)}
    theirs = {k: v for k, v in state.items() if k.startswith(BACKBONE_PREFIX)}
    missing = sorted(set(ours) - set(theirs))
    unexpected = sorted(set(theirs) - set(ours))
    shapes = [f'{k}: {tuple(theirs[k].shape)} vs {tuple(v.shape)}'
              for k, v in ours.items() if k in theirs and theirs[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise CheckpointError(f'{source}: backbone does not match the model: '
                              f'missing={missing[:10]} unexpected={unexpected[:10]} '
                              f'shape mismatches={shapes[:10]}')
    with torch.no_grad():
        for key, value in ours.items():
            value.copy_(theirs[key])
    return len(ours)


def _from_open_clip(model: CLIPRT, tag: str) -> str:
    if model.config.backbone_config is not None:
        raise ConfigError('init_checkpoint=open_clip:<tag> needs a named open_clip backbone, '
                          f'not the custom backbone_config of {model.config.name!r}')
    open_clip = import_open_clip()
    try:
        pretrained = open_clip.create_model(model.config.backbone, pretrained=tag)
    except Exception as exc:  # noqa: BLE001 - download / cache failures of open_clip
        raise CheckpointError(f'open_clip could not provide {model.config.backbone} '
                              f'pretrained={tag!r}: {exc}') from exc
    state = {BACKBONE_PREFIX + k: v for k, v in pretrained.state_dict().items()}
    copied = copy_backbone(model, state, f'open_clip:{tag}')
    return f'initialised {copied} backbone tensors from open_clip {model.config.backbone}/{tag}'
