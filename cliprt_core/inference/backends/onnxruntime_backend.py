"""
ONNX Runtime backend: runs the exported per-query graph (CPU EP; CUDA EP on GPU policies).

Only the image tower and the head run in ONNX Runtime; instruction embeddings still come from
the policy's cache (one torch text encode per new instruction).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from cliprt_core.inference.backends.artifacts import (artifact_key, default_cache_dir, dtype_name,
                                                      mismatches, output_name,
                                                      weights_fingerprint)
from cliprt_core.inference.backends.errors import BackendUnavailableError, EngineMismatchError
from cliprt_core.inference.backends.onnx_export import export_onnx, graph_metadata, read_metadata
import numpy as np
import torch

LEVELS = {'disable': 'ORT_DISABLE_ALL', 'basic': 'ORT_ENABLE_BASIC',
          'extended': 'ORT_ENABLE_EXTENDED', 'all': 'ORT_ENABLE_ALL'}


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailableError(
            "backend 'onnx' needs onnxruntime: pip install onnxruntime (CPU) or onnxruntime-gpu"
        ) from exc
    return onnxruntime


def cached_onnx(policy: Any, cache_dir: str | os.PathLike | None = None,
                fingerprint: str | None = None) -> Path:
    """Return the policy's exported graph in the artifact cache, exported on first use."""
    fingerprint = fingerprint or weights_fingerprint(policy.graph)
    meta = graph_metadata(policy, fingerprint)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = root / 'onnx' / f"{meta['model']}-{meta['dtype']}-{artifact_key(meta)}.onnx"
    if not path.is_file():
        export_onnx(policy, path, fingerprint=fingerprint)
    return path


def check_onnx(path: str | os.PathLike, policy: Any, fingerprint: str | None = None) -> None:
    """Raise :class:`EngineMismatchError` unless ``path`` was exported from this policy."""
    if not Path(path).is_file():
        raise EngineMismatchError(f'ONNX file {path} does not exist; export it with cliprt-export')
    found = read_metadata(path)
    if not found:
        raise EngineMismatchError(f'{path}: no cliprt metadata; export it with cliprt-export')
    expected = graph_metadata(policy, fingerprint)
    diff = mismatches(found, expected)
    if diff:
        raise EngineMismatchError(f'{path} does not match this policy (stale export?): '
                                  + '; '.join(diff) + '. Re-export it with cliprt-export.')


class OnnxRuntimeBackend:
    """
    ``backend='onnx'``.

    Options: ``onnx_path`` (a prebuilt export, validated against the policy), ``cache_dir``,
    ``providers``, ``threads`` (default: torch's intra-op threads), ``optimization_level``
    (default 'all'; 'extended' for fp16, which crashes ORT-CPU at 'all').
    """

    name = 'onnx'

    def __init__(self, policy: Any, onnx_path: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None,
                 providers: Sequence[str] | None = None, threads: int | None = None,
                 optimization_level: str | None = None) -> None:
        ort = import_onnxruntime()
        if policy.dtype == torch.bfloat16:
            raise BackendUnavailableError('onnxruntime does not run bf16 graphs; build the policy '
                                          'with dtype=torch.float32 or float16, or use tensorrt')
        self.device = policy.device
        self.dtype = policy.dtype
        self.output = output_name(policy)
        fingerprint = weights_fingerprint(policy.graph)
        if onnx_path is not None:
            check_onnx(onnx_path, policy, fingerprint)
            self.path = Path(onnx_path)
        else:
            self.path = cached_onnx(policy, cache_dir, fingerprint)
        self.providers = self._providers(ort, providers)
        level = optimization_level or ('extended' if self.dtype == torch.float16 else 'all')
        if level not in LEVELS:
            raise ValueError(f'optimization_level must be one of {list(LEVELS)}, got {level!r}')
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[level])
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=self.providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise EngineMismatchError(f'onnxruntime cannot load {self.path}: {exc}') from exc
        self.use_cuda = self.session.get_providers()[0] == 'CUDAExecutionProvider'
        self._np_dtype = np.float16 if self.dtype == torch.float16 else np.float32

    def _providers(self, ort: Any, requested: Sequence[str] | None) -> list[str]:
        available = ort.get_available_providers()
        if requested is None:
            requested = (['CUDAExecutionProvider', 'CPUExecutionProvider']
                         if self.device.type == 'cuda' else ['CPUExecutionProvider'])
        missing = [name for name in requested if name not in available]
        if self.device.type == 'cuda' and 'CUDAExecutionProvider' not in available:
            raise BackendUnavailableError(
                'the policy is on CUDA but this onnxruntime has no CUDAExecutionProvider '
                f"(available: {available}); install onnxruntime-gpu or use device='cpu'")
        if missing:
            raise BackendUnavailableError(f'onnxruntime providers {missing} are not available '
                                          f'(available: {available})')
        return list(requested)

    def describe(self) -> dict[str, Any]:
        return {'backend': self.name, 'onnx': str(self.path), 'dtype': dtype_name(self.dtype),
                'providers': self.session.get_providers()}

    def __call__(self, pixels: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        pixels = pixels.to(self.dtype).contiguous()
        prompts = prompts.to(self.dtype).contiguous()
        if self.use_cuda:
            return self._run_cuda(pixels, prompts)
        feeds = {'pixels': pixels.cpu().numpy(), 'prompt_embeddings': prompts.cpu().numpy()}
        (result,) = self.session.run([self.output], feeds)
        return torch.from_numpy(result).to(self.device)

    def _run_cuda(self, pixels: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        """Zero-copy: ORT reads and writes torch CUDA memory through an IO binding."""
        index = pixels.device.index or 0
        shape = [pixels.shape[0]] + list(self.session.get_outputs()[0].shape[1:])
        result = torch.empty(shape, dtype=self.dtype, device=pixels.device)
        binding = self.session.io_binding()
        for name, tensor in (('pixels', pixels), ('prompt_embeddings', prompts)):
            binding.bind_input(name, 'cuda', index, self._np_dtype, tuple(tensor.shape),
                               tensor.data_ptr())
        binding.bind_output(self.output, 'cuda', index, self._np_dtype, tuple(result.shape),
                            result.data_ptr())
        torch.cuda.current_stream(pixels.device).synchronize()  # inputs written by torch
        self.session.run_with_iobinding(binding)  # synchronous w.r.t. ORT's own stream
        return result
