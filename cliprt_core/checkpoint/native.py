"""Our self-describing checkpoint: model config + weights + metadata in one torch file."""
from __future__ import annotations

import datetime as _dt
import os
import platform
from typing import Any

from cliprt_core.checkpoint.torch_files import atomic_torch_save
from cliprt_core.config import to_dict
import torch

FORMAT = 'cliprt-checkpoint'
VERSION = 1


def is_native(payload: Any) -> bool:
    """Tell whether a payload was written by :func:`save_model_checkpoint` (or the trainer)."""
    return isinstance(payload, dict) and payload.get('format') == FORMAT


def make_payload(model: torch.nn.Module, metadata: dict[str, Any] | None = None,
                 **extra: Any) -> dict[str, Any]:
    """Return the checkpoint dict for ``model`` (a CLIPRT); ``extra`` adds e.g. optimizer state."""
    info = {
        'created': _dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds'),
        'torch': str(torch.__version__),
        'python': platform.python_version(),
    }
    info.update(metadata or {})
    return {
        'format': FORMAT,
        'version': VERSION,
        'model_config': to_dict(model.config),
        'state_dict': {k: v.detach().cpu() for k, v in model.state_dict().items()},
        'metadata': info,
        **extra,
    }


def save_model_checkpoint(model: torch.nn.Module, path: str | os.PathLike,
                          metadata: dict[str, Any] | None = None, **extra: Any) -> None:
    """Write ``model`` atomically in our format (loadable with ``weights_only=True``)."""
    atomic_torch_save(make_payload(model, metadata, **extra), path)
