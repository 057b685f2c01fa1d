"""
``torch.compile`` backend (CUDA graphs on GPU), warmed up at load time.

Compilation happens lazily in torch, on the first call per input shape; we run that first call
(and the CUDA-graph recording) in ``__init__`` for every batch size in ``warmup_batches`` so the
first real query is not slow. Other batch sizes still work: they compile on first use.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

from cliprt_core.inference.backends.artifacts import dtype_name
from cliprt_core.inference.backends.errors import BackendUnavailableError
import torch

CUDA_GRAPH_MODES = ('reduce-overhead', 'max-autotune')


class CompiledBackend:
    """
    ``backend='compile'``.

    Options: ``mode`` (torch.compile mode; default 'reduce-overhead' = CUDA graphs on GPU, torch's
    default on CPU), ``compile_backend`` (default 'inductor'; 'aot_eager'/'eager' for debugging),
    ``dynamic`` (default False: one specialised graph per batch size), ``fullgraph`` (default
    True), ``warmup_batches`` (default (1,)), ``warmup_iters`` (default 3).
    """

    name = 'compile'

    def __init__(self, policy: Any, mode: str | None = None, compile_backend: str = 'inductor',
                 dynamic: bool | None = False, fullgraph: bool = True,
                 warmup_batches: Sequence[int] = (1,), warmup_iters: int = 3) -> None:
        if not hasattr(torch, 'compile'):
            raise BackendUnavailableError("backend 'compile' needs torch >= 2.0")
        self.device = policy.device
        self.dtype = policy.dtype
        if mode is None and self.device.type == 'cuda' and compile_backend == 'inductor':
            mode = 'reduce-overhead'
        self.mode = mode
        self.compile_backend = compile_backend
        self.cuda_graphs = (self.device.type == 'cuda' and compile_backend == 'inductor'
                            and mode in CUDA_GRAPH_MODES)
        try:
            self.fn = torch.compile(policy.graph, mode=mode, backend=compile_backend,
                                    dynamic=dynamic, fullgraph=fullgraph)
        except Exception as exc:  # noqa: BLE001 - e.g. unsupported Python version
            raise BackendUnavailableError(f'torch.compile is not usable here: {exc}') from exc
        self.warmup_seconds = self._warm_up(policy, tuple(warmup_batches), warmup_iters)

    def _warm_up(self, policy: Any, batches: tuple[int, ...], iters: int) -> float:
        start = time.perf_counter()
        size, dim = policy.model.image_size, policy.model.embed_dim
        generator = torch.Generator().manual_seed(0)
        for batch in batches:
            try:
                # Inputs made under inference_mode, exactly like Policy.act_batch's: dynamo
                # guards on it, and a mismatch would recompile on the first real query.
                with torch.inference_mode():
                    pixels = torch.randn(batch, 3, size, size, generator=generator)
                    prompts = torch.randn(batch, dim, generator=generator)
                    pixels = pixels.to(self.device, self.dtype)
                    prompts = prompts.to(self.device, self.dtype)
                    for _ in range(max(1, iters)):
                        self(pixels, prompts)
            except Exception as exc:  # noqa: BLE001 - inductor/C++ toolchain errors vary
                raise BackendUnavailableError(
                    f'torch.compile failed while warming up (batch {batch}): '
                    f'{type(exc).__name__}: {exc}. Inductor needs a C++ compiler on CPU and '
                    "Triton on GPU; try backend_options={'compile_backend': 'aot_eager'} or "
                    "backend='torch'") from exc
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start

    def describe(self) -> dict[str, Any]:
        return {'backend': self.name, 'dtype': dtype_name(self.dtype), 'mode': self.mode,
                'compile_backend': self.compile_backend, 'cuda_graphs': self.cuda_graphs,
                'warmup_s': round(self.warmup_seconds, 2)}

    def __call__(self, pixels: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        # Same dtype/layout as the warm-up inputs, so no guard fails and nothing recompiles
        # (preprocessing yields channels-last strides).
        pixels = pixels.to(self.dtype).contiguous()
        prompts = prompts.to(self.dtype).contiguous()
        if not self.cuda_graphs:
            return self.fn(pixels, prompts)
        # CUDA-graph outputs live in a static pool that the next replay overwrites: copy out.
        torch.compiler.cudagraph_mark_step_begin()
        return self.fn(pixels, prompts).clone()
