"""
Build a Policy from :class:`~cliprt_core.inference.settings.PolicySettings` (every entry point).

``checkpoint`` is a cliprt checkpoint, an official CLIP-RT file or a hub id; without one the
policy gets random weights of ``model_config`` (default ``cliprt-tiny``: demos and smoke runs).
With a checkpoint, ``model_config`` names the architecture of an *official* file (they do not
record it; default: the published ViT-H-14-378 one); our own checkpoints carry their config, and
giving a different one is an error.
"""
from __future__ import annotations

from typing import Any

from cliprt_core.checkpoint.errors import CheckpointError
from cliprt_core.config import ConfigError
from cliprt_core.inference.backends.artifacts import parse_dtype, weights_fingerprint
from cliprt_core.inference.backends.errors import BackendError
from cliprt_core.inference.policy import Policy
from cliprt_core.inference.settings import DEFAULT_RANDOM_MODEL, PolicySettings
import torch

__all__ = ['DEFAULT_RANDOM_MODEL', 'PolicyLoadError', 'build_policy', 'describe_weights',
           'load_policy', 'resolve_dtype']


class PolicyLoadError(ValueError):
    """
    The policy the settings describe cannot be loaded here.

    The policy the settings describe cannot be loaded here (a user error: bad checkpoint,
    model config, device, dtype or backend); the message says which and why.
    """


def resolve_dtype(name: str | None) -> torch.dtype | None:
    """``auto``/empty -> None (bf16 on GPU, fp32 on CPU); else fp32/fp16/bf16 and aliases."""
    if not name or name == 'auto':
        return None
    return parse_dtype(name)


def load_policy(settings: PolicySettings, backend_options: dict[str, Any] | None = None
                ) -> Policy:
    """
    Return the policy ``settings`` describe (see the module docstring).

    Raises :class:`PolicyLoadError` for anything the settings got wrong (missing or unreadable
    checkpoint, unknown model config, a CUDA device without CUDA, an unavailable backend).
    """
    check_device(settings.device)
    try:
        return build_policy(settings.checkpoint, settings.model_config, device=settings.device,
                            dtype=settings.dtype, backend=settings.backend,
                            backend_options=backend_options, seed=settings.weights_seed)
    except (CheckpointError, BackendError, ConfigError, FileNotFoundError, ValueError) as exc:
        raise PolicyLoadError(str(exc)) from exc


def check_device(device: str) -> None:
    """Reject a device string torch rejects, or a CUDA device this machine lacks, clearly."""
    if not device:
        return
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise PolicyLoadError(f'device {device!r} is not a torch device (use cpu, cuda or '
                              'cuda:N)') from None
    if parsed.type == 'cuda':
        if not torch.cuda.is_available():
            raise PolicyLoadError(f'device {device!r}: CUDA is not available on this machine '
                                  '(use device cpu, or leave it empty for cuda-if-available)')
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise PolicyLoadError(f'device {device!r}: this machine has '
                                  f'{torch.cuda.device_count()} CUDA device(s)')


def build_policy(checkpoint: str | None = None, model_config: str | None = None, *,
                 device: str | None = None, dtype: str | None = 'auto', backend: str = 'torch',
                 backend_options: dict[str, Any] | None = None, seed: int = 0) -> Policy:
    """Keyword form of :func:`load_policy` (scripts and tests)."""
    common = {'device': device or None, 'dtype': resolve_dtype(dtype), 'backend': backend,
              'backend_options': backend_options}
    if checkpoint:
        return Policy.from_checkpoint(checkpoint, model_config=model_config or None, **common)
    return Policy.from_config(model_config or DEFAULT_RANDOM_MODEL, seed=seed, **common)


def describe_weights(policy: Policy, settings: PolicySettings) -> str:
    """Describe what was loaded for the start-up log: the file (or RANDOM) and a weights hash."""
    fingerprint = weights_fingerprint(policy.model)[:12]
    if settings.checkpoint:
        return f'weights from {settings.checkpoint} (fingerprint {fingerprint})'
    return (f'RANDOM weights of {settings.random_model} (weights_seed {settings.weights_seed}, '
            f'fingerprint {fingerprint}): not a trained policy; set checkpoint to load one')
