"""
Check an exported ONNX graph against the torch graph it came from.

ONNX Runtime runs the file on random inputs at batch sizes 1 and 3 (the batch is dynamic, so a
batch baked in at export shows up as a shape error) and its output is compared with
``policy.graph`` in the policy's own dtype. bf16 graphs cannot be checked this way: ONNX Runtime
has no bf16 kernels for most ops.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

from cliprt_core.inference.backends.errors import BackendError
import numpy as np
import torch

VERIFY_BATCHES = (1, 3)
TOLERANCES = {torch.float32: 1e-3, torch.float16: 5e-2}


class OnnxVerificationError(BackendError):
    """ONNX Runtime's output differs from torch's (shape, or values beyond the tolerance)."""


def onnx_max_abs_diff(policy: Any, path: str | os.PathLike,
                      batches: Sequence[int] = VERIFY_BATCHES, seed: int = 0) -> float:
    """Max |ONNX Runtime - torch| of ``path`` against ``policy.graph`` over random batches."""
    from cliprt_core.inference.backends.onnxruntime_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(policy, onnx_path=path)
    worst = 0.0
    generator = torch.Generator().manual_seed(seed)
    size, dim = policy.model.image_size, policy.model.embed_dim
    with torch.inference_mode():
        for batch in batches:
            pixels = torch.randn(batch, 3, size, size, generator=generator)
            prompts = torch.randn(batch, dim, generator=generator)
            pixels = pixels.to(policy.device, policy.dtype)
            prompts = prompts.to(policy.device, policy.dtype)
            expected = policy.graph(pixels, prompts).float().cpu().numpy()
            got = backend(pixels, prompts).float().cpu().numpy()
            if got.shape != expected.shape:
                raise OnnxVerificationError(
                    f'ONNX output shape {got.shape} != torch {expected.shape}')
            worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def verify_onnx(policy: Any, path: str | os.PathLike, tolerance: float | None = None
                ) -> float | None:
    """
    Check ``path`` against ``policy`` and return the max abs difference.

    ``tolerance`` defaults to 1e-3 for fp32 graphs and 5e-2 for fp16 ones. Returns ``None``
    (nothing checked) for bf16 graphs; raises :class:`OnnxVerificationError` on a mismatch.
    """
    if tolerance is None:
        if policy.dtype not in TOLERANCES:
            return None
        tolerance = TOLERANCES[policy.dtype]
    diff = onnx_max_abs_diff(policy, path)
    if diff > tolerance:
        raise OnnxVerificationError(
            f'ONNX Runtime disagrees with torch: max |diff| {diff:.3g} > {tolerance}')
    return diff
