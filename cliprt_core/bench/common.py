"""Shared pieces of the benchmarks: model construction, inputs, environment description."""
from __future__ import annotations

import platform
from typing import Any

from cliprt_core.heads import ChunkHead, head_class
from cliprt_core.model.configuration import CLIPRTConfig, load_model_config
from cliprt_core.model.modeling import CLIPRT, create_model
import numpy as np
import torch

# CLIP-RT+ as published (arXiv 2411.00508): 8 actions per 49 ms query on an A100 at batch 1.
PUBLISHED_HZ = 163.8
PUBLISHED_MS_PER_CHUNK = round(8 / PUBLISHED_HZ * 1e3, 2)
TARGET_MS_PER_CHUNK = 5.0  # the project's target: 10x the published rate (>= 1600 actions/s)
COMPUTE_LIMIT_MS_PER_CHUNK = 1.3  # ~1 TFLOP per chunk at ~790 TFLOP/s (one H200)
INSTRUCTION = 'put both the alphabet soup and the tomato sauce in the basket'


def build_model(model: str, checkpoint: str | None = None, seed: int = 0) -> CLIPRT:
    """Random weights from a model config (seeded), or real weights from a checkpoint."""
    if checkpoint:
        from cliprt_core.checkpoint import load_model

        return load_model(checkpoint, model or None)[0]
    torch.manual_seed(seed)
    return create_model(load_model_config(model))


def images(batch: int, size: int = 256, seed: int = 0) -> list[np.ndarray]:
    """LIBERO-sized random RGB frames (the policy resizes them on the device)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(batch)]


def environment(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {'torch': torch.__version__.split('+')[0],
                           'threads': torch.get_num_threads(),
                           'cpu': platform.processor() or platform.machine()}
    if device.type == 'cuda':
        env['gpu'] = torch.cuda.get_device_name(device)
    return env


def is_published_architecture(config: CLIPRTConfig) -> bool:
    """Return the real CLIP-RT+ (ViT-H-14-378 backbone with the chunk decoder)."""
    return (head_class(config.head) is ChunkHead and config.backbone_config is None
            and config.backbone.startswith('ViT-H-14-378'))


def published_reference() -> dict[str, float]:
    return {'published_hz': PUBLISHED_HZ, 'published_ms_per_chunk': PUBLISHED_MS_PER_CHUNK,
            'target_ms_per_chunk': TARGET_MS_PER_CHUNK,
            'compute_limit_ms_per_chunk': COMPUTE_LIMIT_MS_PER_CHUNK}
