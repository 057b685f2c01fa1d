"""Load a CLIP-RT model from our checkpoint format or the authors' official files."""
from __future__ import annotations

from dataclasses import dataclass, field
import os
from pathlib import Path
from typing import Any

from cliprt_core.checkpoint import native, official
from cliprt_core.checkpoint.compat import check_fits
from cliprt_core.checkpoint.errors import CheckpointError
from cliprt_core.checkpoint.hub import resolve_checkpoint
from cliprt_core.checkpoint.safe_load import safe_torch_load
from cliprt_core.checkpoint.torch_files import verify_checksums
from cliprt_core.config import ConfigError, from_dict
from cliprt_core.model.configuration import CLIPRTConfig, load_model_config
from cliprt_core.model.modeling import CLIPRT, create_model

# Architectures of the official files (they do not record their config).
OFFICIAL_CHUNK_CONFIG = 'cliprt-plus-vit-h-14-378'
OFFICIAL_DISCRETE_CONFIG = 'cliprt-vit-h-14-378'


@dataclass
class LoadedCheckpoint:
    """A checkpoint read from disk: the resolved file, its kind and its raw payload."""

    path: Path
    kind: str  # "native" | "official"
    payload: dict[str, Any] = field(repr=False)


def load_payload(path_or_id: str | os.PathLike) -> LoadedCheckpoint:
    """
    Resolve and read a checkpoint safely, and classify it.

    Our own files are also checked for bit rot (every zip entry's CRC-32).
    """
    path = resolve_checkpoint(path_or_id)
    payload = safe_torch_load(path)
    if native.is_native(payload):
        if payload.get('version', 0) > native.VERSION:
            raise CheckpointError(f"{path}: checkpoint format version {payload['version']} is "
                                  f'newer than this cliprt ({native.VERSION}); upgrade cliprt')
        verify_checksums(path)
        return LoadedCheckpoint(path, 'native', payload)
    if official.is_official(payload):
        return LoadedCheckpoint(path, 'official', payload)
    keys = list(payload)[:10] if isinstance(payload, dict) else type(payload).__name__
    raise CheckpointError(f'{path}: neither a cliprt checkpoint nor an official CLIP-RT file '
                          f'(top-level: {keys})')


def load_model(path_or_id: str | os.PathLike, model_config: CLIPRTConfig | str | None = None
               ) -> tuple[CLIPRT, LoadedCheckpoint]:
    """
    Build the model described by a checkpoint and load its weights strictly.

    ``model_config`` is required only for official files whose architecture is not the
    published ViT-H-14-378 one (e.g. a tiny test model in the official layout). Names and
    shapes are checked before the model is built.
    """
    loaded = load_payload(path_or_id)
    payload = loaded.payload
    state = payload.get('state_dict')
    if not isinstance(state, dict):
        raise CheckpointError(f'{loaded.path}: no state_dict')
    if loaded.kind == 'native':
        try:
            config = from_dict(CLIPRTConfig, payload['model_config'])
        except (ConfigError, KeyError) as exc:
            raise CheckpointError(f'{loaded.path}: invalid model_config: {exc}') from exc
        if model_config is not None and _config_name(model_config) != config.name:
            raise CheckpointError(
                f'{loaded.path} is a cliprt checkpoint of model {config.name!r}; it carries its '
                f'own config, so model_config {_config_name(model_config)!r} does not apply')
        check_fits(loaded.path, state, config, official=False, how='stored in the file')
    else:
        how = 'given'
        if model_config is None:
            model_config = (OFFICIAL_CHUNK_CONFIG if official.has_action_decoder(state)
                            else OFFICIAL_DISCRETE_CONFIG)
            how = 'the default for official CLIP-RT' + ('+' if official.has_action_decoder(state)
                                                        else '') + ' files'
        config = (load_model_config(model_config) if isinstance(model_config, str)
                  else model_config)
        state = check_fits(loaded.path, state, config, official=True, how=how)
    model = create_model(config)
    model.load_state_dict(state, strict=True)
    return model, loaded


def _config_name(model_config: CLIPRTConfig | str) -> str:
    if isinstance(model_config, CLIPRTConfig):
        return model_config.name
    return load_model_config(model_config).name
