"""
The TensorRT runtime and the ``backend='tensorrt'`` glue.

TensorRT runtime binding torch CUDA tensors (no cuda-python / pycuda dependency), and the
``backend='tensorrt'`` glue (engine cache -> runtime).

I/O: ``context.set_input_shape`` + ``context.set_tensor_address(name, tensor.data_ptr())`` on
torch tensors; ``execute_async_v3`` on a dedicated torch CUDA stream that is ordered with the
caller's current stream both ways (TensorRT discourages the legacy default stream). Batches
larger than the engine profile's maximum are split.

Unverified on CPU-only CI (TensorRT needs a GPU); written against the documented Python API
of TensorRT 10.x/11.x.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from cliprt_core.inference.backends.artifacts import (default_cache_dir, output_name,
                                                      weights_fingerprint)
from cliprt_core.inference.backends.errors import (BackendError, BackendUnavailableError,
                                                   EngineMismatchError)
from cliprt_core.inference.backends.tensorrt_engine import (build_engine, cache_path,
                                                            default_precision, engine_fields,
                                                            import_tensorrt, policy_identity,
                                                            read_engine, tensorrt_environment)
import torch

log = logging.getLogger(__name__)


def torch_dtype(trt: Any, dtype: Any) -> torch.dtype:
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
             trt.DataType.INT32: torch.int32, trt.DataType.BOOL: torch.bool}
    for name, value in (('BF16', torch.bfloat16), ('INT64', torch.int64)):
        if hasattr(trt.DataType, name):
            table[getattr(trt.DataType, name)] = value
    if dtype not in table:
        raise BackendError(f'unsupported TensorRT I/O data type {dtype}')
    return table[dtype]


class TensorRTRuntime:
    """A deserialized engine + one execution context; call with named torch CUDA tensors."""

    def __init__(self, engine_bytes: bytes, device: torch.device) -> None:
        trt = import_tensorrt()
        self.device = device
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        with torch.cuda.device(device):
            self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
            if self.engine is None:
                raise EngineMismatchError('TensorRT could not deserialize the engine (built by '
                                          'another TensorRT version or for another GPU?)')
            self.context = self.engine.create_execution_context()
        if self.context is None:
            raise BackendError('TensorRT could not create an execution context (out of memory?)')
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.inputs = [n for n in names if is_input[n]]
        self.outputs = [n for n in names if not is_input[n]]
        self.dtypes = {n: torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}
        self.max_batch = int(self.engine.get_tensor_profile_shape(self.inputs[0], 0)[2][0])
        self.stream = torch.cuda.Stream(device)

    def __call__(self, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        missing = set(self.inputs) - set(feeds)
        if missing:
            raise BackendError(f'missing engine inputs {sorted(missing)}')
        batch = next(iter(feeds.values())).shape[0]
        if batch <= self.max_batch:
            return self._execute(feeds)
        parts = [self._execute({k: v[i:i + self.max_batch] for k, v in feeds.items()})
                 for i in range(0, batch, self.max_batch)]
        return {name: torch.cat([p[name] for p in parts]) for name in self.outputs}

    def _execute(self, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        current = torch.cuda.current_stream(self.device)
        # Inputs (cast on the current stream) and outputs are allocated from the current
        # stream's pool; our stream waits for them and the current stream waits for the result.
        bound = {name: feeds[name].to(self.device, self.dtypes[name]).contiguous()
                 for name in self.inputs}
        for name, tensor in bound.items():
            if not self.context.set_input_shape(name, tuple(tensor.shape)):
                raise BackendError(f'input {name} shape {tuple(tensor.shape)} is outside the '
                                   f"engine's optimization profile (batch 1..{self.max_batch})")
            self.context.set_tensor_address(name, tensor.data_ptr())
        results = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            if any(dim < 0 for dim in shape):
                raise BackendError(f'TensorRT could not infer the shape of output {name}')
            results[name] = torch.empty(shape, dtype=self.dtypes[name], device=self.device)
            self.context.set_tensor_address(name, results[name].data_ptr())
        self.stream.wait_stream(current)
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise BackendError('TensorRT execute_async_v3 failed (see the TensorRT log)')
        current.wait_stream(self.stream)
        return results


class TensorRTBackend:
    """
    ``backend='tensorrt'``.

    Options: ``engine`` (a prebuilt engine file, checked against this policy, GPU and TensorRT
    version), ``cache_dir``, ``precision`` (default: the policy dtype), ``max_batch`` (32),
    ``opt_batch`` (1), ``workspace_gb``.
    """

    name = 'tensorrt'

    def __init__(self, policy: Any, engine: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None, precision: str | None = None,
                 max_batch: int = 32, opt_batch: int = 1,
                 workspace_gb: float | None = None) -> None:
        if policy.device.type != 'cuda':
            raise BackendUnavailableError(f"backend 'tensorrt' needs a CUDA policy "
                                          f"(device={policy.device}); use device='cuda'")
        import_tensorrt()
        self.device = policy.device
        self.output = output_name(policy)
        environment = tensorrt_environment(self.device)
        fingerprint = weights_fingerprint(policy.graph)
        identity = policy_identity(policy, fingerprint, environment)
        if engine is not None:
            data, self.meta = read_engine(engine, identity)
            self.path = Path(engine)
        else:
            precision = precision or default_precision(policy)
            root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
            fields = engine_fields(dict(identity, dtype=default_precision(policy)), precision,
                                   opt_batch, max_batch, environment)
            self.path = cache_path(root, fields)
            data, self.meta = self._cached(policy, root, fields, fingerprint, workspace_gb)
        self.runtime = TensorRTRuntime(data, self.device)

    def _cached(self, policy: Any, root: Path, fields: dict[str, Any], fingerprint: str,
                workspace_gb: float | None) -> tuple[bytes, dict]:
        from cliprt_core.inference.backends.onnxruntime_backend import cached_onnx

        if self.path.is_file():
            try:
                return read_engine(self.path, fields)
            except EngineMismatchError as exc:  # our own cache: rebuild rather than fail
                log.warning('rebuilding cached TensorRT engine: %s', exc)
        onnx_path = cached_onnx(policy, root, fingerprint)
        build_engine(onnx_path, self.path, precision=fields['precision'],
                     max_batch=fields['max_batch'], opt_batch=fields['opt_batch'],
                     workspace_gb=workspace_gb, device=self.device)
        return read_engine(self.path, fields)

    def describe(self) -> dict[str, Any]:
        keys = ('precision', 'max_batch', 'tensorrt', 'gpu', 'strongly_typed')
        return {'backend': self.name, 'engine': str(self.path),
                **{k: self.meta.get(k) for k in keys}}

    def __call__(self, pixels: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        return self.runtime({'pixels': pixels, 'prompt_embeddings': prompts})[self.output]
