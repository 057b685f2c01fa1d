"""Build a Policy from the settings every entry point shares (CLIs, ROS nodes, benchmarks).

``checkpoint`` is a cliprt checkpoint, an official CLIP-RT file or a hub id; without one the
policy gets random weights of ``model_config`` (default ``cliprt-tiny``: demos and smoke runs).
With a checkpoint, ``model_config`` names the architecture of an *official* file (they do not
record it; default: the published ViT-H-14-378 one); our own checkpoints carry their config, and
giving a different one is an error.
"""
from __future__ import annotations

from typing import Any

import torch

from cliprt_core.inference.backends.artifacts import parse_dtype
from cliprt_core.inference.policy import Policy

DEFAULT_RANDOM_MODEL = "cliprt-tiny"


def resolve_dtype(name: str | None) -> torch.dtype | None:
    """``auto``/empty -> None (bf16 on GPU, fp32 on CPU); else fp32/fp16/bf16 and aliases."""
    if not name or name == "auto":
        return None
    return parse_dtype(name)


def build_policy(checkpoint: str | None = None, model_config: str | None = None, *,
                 device: str | None = None, dtype: str | None = "auto", backend: str = "torch",
                 backend_options: dict[str, Any] | None = None, seed: int = 0) -> Policy:
    """The policy the settings describe (see the module docstring)."""
    common = dict(device=device or None, dtype=resolve_dtype(dtype), backend=backend,
                  backend_options=backend_options)
    if checkpoint:
        return Policy.from_checkpoint(checkpoint, model_config=model_config or None, **common)
    return Policy.from_config(model_config or DEFAULT_RANDOM_MODEL, seed=seed, **common)
