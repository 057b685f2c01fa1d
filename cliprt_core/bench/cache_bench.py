"""
Benchmark the instruction-embedding cache of ``act()``.

Issue 2: per-query latency of ``act()`` with the instruction-embedding cache against naive
re-encoding of the instruction on every query (``cache_size=0``), side by side.
"""
from __future__ import annotations

from typing import Any

from cliprt_core.bench.common import build_model, environment, images, INSTRUCTION
from cliprt_core.bench.timing import interleaved_timings, latency_stats
from cliprt_core.inference.policy import Policy
import torch


def run_cache_benchmark(model_name: str, *, device: str | torch.device = 'cpu',
                        dtype: torch.dtype | None = None, iters: int = 50, warmup: int = 5,
                        checkpoint: str | None = None, image_size: int = 256,
                        seed: int = 0) -> dict[str, Any]:
    """One JSON-able record: p50/p90 of both variants and the naive/cached ratio."""
    model = build_model(model_name, checkpoint, seed)
    cached = Policy(model, device=device, dtype=dtype, cache_size=256)
    naive = Policy(model, device=device, dtype=dtype, cache_size=0)  # same weights, no cache
    image = images(1, image_size, seed)[0]
    cached.reset(INSTRUCTION)
    naive.reset(INSTRUCTION)
    timings = interleaved_timings({'cached': lambda: cached.act(image),
                                   'naive': lambda: naive.act(image)},
                                  iters=iters, warmup=warmup, device=cached.device)
    stats = {name: latency_stats(values) for name, values in timings.items()}
    return {
        'bench': 'cache', 'model': model.config.name, 'device': str(cached.device),
        'dtype': str(cached.dtype).replace('torch.', ''), **environment(cached.device),
        'cached': stats['cached'], 'naive': stats['naive'],
        'ratio_p50': round(stats['naive']['p50_ms'] / stats['cached']['p50_ms'], 3),
        'ratio_p90': round(stats['naive']['p90_ms'] / stats['cached']['p90_ms'], 3),
        'text_encodes': {'cached': cached.cache.misses, 'naive': naive.cache.misses},
    }
