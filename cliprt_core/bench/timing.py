"""
Fair side-by-side timing.

Fair side-by-side timing: variants are interleaved (round robin, rotating which goes first)
after a warm-up, so machine noise and thermal drift hit all of them alike.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch


def interleaved_timings(variants: dict[str, Callable[[], object]], iters: int, warmup: int,
                        device: torch.device | None = None) -> dict[str, np.ndarray]:
    """
    Seconds per call of each variant: ``warmup`` untimed rounds, then ``iters`` timed ones.

    Each round calls every variant once; the starting variant rotates every round. On CUDA the
    device is synchronised around each call (``act`` already copies its result to the host).
    """
    if iters < 1 or warmup < 0:
        raise ValueError('need iters >= 1 and warmup >= 0')
    names = list(variants)
    sync = (lambda: torch.cuda.synchronize(device)) if (
        device is not None and device.type == 'cuda') else (lambda: None)
    samples: dict[str, list[float]] = {name: [] for name in names}
    with torch.inference_mode():
        for round_index in range(warmup + iters):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                sync()
                start = time.perf_counter()
                variants[name]()
                sync()
                elapsed = time.perf_counter() - start
                if round_index >= warmup:
                    samples[name].append(elapsed)
    return {name: np.asarray(values) for name, values in samples.items()}


def latency_stats(seconds: np.ndarray) -> dict[str, float]:
    """p50/p90/p99/mean in milliseconds and the sample count."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    return {'p50_ms': round(float(np.percentile(ms, 50)), 3),
            'p90_ms': round(float(np.percentile(ms, 90)), 3),
            'p99_ms': round(float(np.percentile(ms, 99)), 3),
            'mean_ms': round(float(ms.mean()), 3), 'n': int(ms.size)}
