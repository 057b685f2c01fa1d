"""Eager torch backend: the per-query graph as it is (the reference for every backend)."""
from __future__ import annotations

from typing import Any

from cliprt_core.inference.backends.artifacts import dtype_name
import torch


class EagerBackend:
    """``backend='torch'`` (no options)."""

    name = 'torch'

    def __init__(self, policy: Any) -> None:
        self.graph = policy.graph
        self.dtype = policy.dtype

    def describe(self) -> dict[str, Any]:
        return {'backend': self.name, 'dtype': dtype_name(self.dtype)}

    def __call__(self, pixels: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        return self.graph(pixels, prompts)
