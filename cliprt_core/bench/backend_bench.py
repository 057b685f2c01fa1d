"""
Issue 6: the inference backends against eager torch, side by side in one run.

For every batch size, each backend's policy serves ``act_batch`` on the same images and
instructions (one per client, all cached: the steady state of a serving loop); calls are
interleaved across backends. Latency is per call (one forward for the whole batch, including
preprocessing and the copy of the actions to the host); actions/s counts the chunk of 8 per
query (1 for the discrete head).
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

from cliprt_core.bench.common import (build_model, environment, images, INSTRUCTION,
                                      is_published_architecture, published_reference)
from cliprt_core.bench.timing import interleaved_timings, latency_stats
from cliprt_core.inference.backends import BackendError, BackendUnavailableError
from cliprt_core.inference.policy import Policy
import numpy as np
import torch

log = logging.getLogger(__name__)


def _options(name: str, batches: Sequence[int], options: dict[str, dict[str, Any]]
             ) -> dict[str, Any]:
    opts = dict(options.get(name, {}))
    if name == 'compile':
        opts.setdefault('warmup_batches', tuple(batches))  # compile outside the timed region
    if name == 'tensorrt':
        opts.setdefault('max_batch', max(batches))
    return opts


def build_policies(model: Any, backends: Sequence[str], batches: Sequence[int], *,
                   device: Any, dtype: torch.dtype | None,
                   options: dict[str, dict[str, Any]]) -> tuple[dict[str, Policy], list[dict]]:
    """One policy per backend on the same model object; unavailable backends are reported."""
    policies: dict[str, Policy] = {}
    problems: list[dict] = []
    for name in backends:
        try:
            policy = Policy(model, device=device, dtype=dtype)
            if name != 'torch':
                policy.use_backend(name, **_options(name, batches, options))
            policies[name] = policy
        except BackendUnavailableError as exc:
            problems.append({'backend': name, 'skipped': str(exc)})
        except BackendError as exc:
            problems.append({'backend': name, 'error': str(exc)})
    return policies, problems


def run_backend_benchmark(model_name: str, backends: Sequence[str], batches: Sequence[int], *,
                          device: str | torch.device = 'cpu', dtype: torch.dtype | None = None,
                          iters: int = 30, warmup: int = 3, checkpoint: str | None = None,
                          options: dict[str, dict[str, Any]] | None = None,
                          image_size: int = 256, seed: int = 0) -> list[dict[str, Any]]:
    """JSON-able records: one per (backend, batch), plus one per skipped/failed backend."""
    backends = list(dict.fromkeys(['torch', *backends]))  # eager torch is the reference
    model = build_model(model_name, checkpoint, seed)
    policies, problems = build_policies(model, backends, batches, device=device, dtype=dtype,
                                        options=options or {})
    reference = policies.get('torch')
    if reference is None:
        raise BackendError(f'the eager torch reference could not be built: {problems}')
    base = {'bench': 'backend', 'model': model.config.name, 'device': str(reference.device),
            'dtype': str(reference.dtype).replace('torch.', ''), **environment(reference.device)}
    if is_published_architecture(model.config):
        base.update(published_reference())
    actions_per_query = reference.head.actions_per_query
    records = [dict(base, **problem) for problem in problems]
    for batch in batches:
        frames = images(batch, image_size, seed)
        texts = [f'{INSTRUCTION} (client {i})' for i in range(batch)]
        outputs = {name: policy.act_batch(frames, texts) for name, policy in policies.items()}
        timings = interleaved_timings(
            {name: (lambda p=policy: p.act_batch(frames, texts))
             for name, policy in policies.items()}, iters=iters, warmup=warmup,
            device=reference.device)
        torch_p50 = latency_stats(timings['torch'])['p50_ms']
        for name, policy in policies.items():
            stats = latency_stats(timings[name])
            mean_s = float(np.mean(timings[name]))
            record = dict(base, backend=name, batch=batch, **stats)
            record.update({
                'ms_per_chunk': round(stats['p50_ms'] / batch, 3),
                'queries_per_s': round(batch / mean_s, 2),
                'actions_per_s': round(batch * actions_per_query / mean_s, 1),
                'speedup_vs_torch': round(torch_p50 / stats['p50_ms'], 3),
                'max_abs_diff_vs_torch': _max_diff(outputs[name], outputs['torch']),
            })
            if policy.backend is not None:
                record['backend_info'] = policy.backend.describe()
            if 'published_hz' in base:
                record['x_published_hz'] = round(record['actions_per_s'] / base['published_hz'], 2)
            records.append(record)
    return records


def _max_diff(output: Any, reference: Any) -> float:
    """Agreement with eager torch (chunks, or the discrete head's chosen-primitive scores)."""
    if isinstance(output, np.ndarray):
        return float(np.abs(output - reference).max())
    return float(max(abs(a.score - b.score) for a, b in zip(output, reference)))
