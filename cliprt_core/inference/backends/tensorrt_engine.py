"""
TensorRT engine build from the exported ONNX, and the engine cache.

Precision: an ONNX exported in fp16/bf16 is built as a *strongly typed* network (the only mode
of TensorRT 11, which removed ``BuilderFlag.FP16/BF16``; opt-in on 10.x). An fp32 ONNX with
``precision='fp16'|'bf16'`` uses the weak-typing builder flag, which only TensorRT 10.x has.

Every engine has a JSON sidecar (``<engine>.json``) with the fields it was built for: weights
sha256, graph signature, precision, batch profile, TensorRT version, GPU name and compute
capability, plus the engine's own sha256. A cached engine is keyed by all of them; an engine
given explicitly is checked against them (:class:`EngineMismatchError` when stale).

Unverified on CPU-only CI (TensorRT needs a GPU); written against the documented Python API.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from cliprt_core.atomic import atomic_path, atomic_write_json
from cliprt_core.inference.backends.artifacts import (artifact_key, dtype_name, file_sha256,
                                                      graph_signature, mismatches)
from cliprt_core.inference.backends.errors import (BackendError, BackendUnavailableError,
                                                   EngineMismatchError)
from cliprt_core.inference.backends.onnx_export import onnx_input_dtype, read_metadata

log = logging.getLogger(__name__)

PRECISIONS = ('fp32', 'fp16', 'bf16')
# Fields that make an engine usable for a policy (batch profile and precision are free).
IDENTITY_FIELDS = ('weights_sha256', 'model', 'head', 'image_size', 'embed_dim',
                   'format_version', 'tensorrt', 'gpu', 'compute_capability')


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendUnavailableError(
            "backend 'tensorrt' needs the TensorRT Python package on a CUDA machine: "
            "make gpu-extras (pip install 'tensorrt>=10,<12' from https://pypi.nvidia.com)"
        ) from exc
    return tensorrt


def tensorrt_environment(device: Any = None) -> dict[str, str]:
    """Return the TensorRT version, GPU name and compute capability (an engine's identity)."""
    import torch

    trt = import_tensorrt()
    if not torch.cuda.is_available():
        raise BackendUnavailableError('TensorRT needs a CUDA GPU; torch.cuda is not available')
    major, minor = torch.cuda.get_device_capability(device)
    return {'tensorrt': str(trt.__version__), 'gpu': torch.cuda.get_device_name(device),
            'compute_capability': f'{major}.{minor}'}


def has_weak_typing(trt: Any) -> bool:
    """Tell whether TensorRT has the 10.x precision flags (removed in 11.x)."""
    return hasattr(trt.BuilderFlag, 'FP16') and hasattr(trt.BuilderFlag, 'BF16')


def plan_typing(onnx_dtype: str, precision: str, weak_typing: bool) -> tuple[bool, str | None]:
    """(strongly_typed, builder flag name or None) for an ONNX dtype and a target precision."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    if onnx_dtype == precision:
        return True, None
    if onnx_dtype == 'fp32' and weak_typing:
        return False, precision.upper() if precision != 'fp32' else None
    raise BackendUnavailableError(
        f'cannot build a {precision} engine from a {onnx_dtype} ONNX with this TensorRT '
        f'(strongly typed networks take their precision from the ONNX): export it in '
        f'{precision}: cliprt-export --device cuda --dtype {precision}')


def engine_fields(onnx_meta: dict[str, Any], precision: str, opt_batch: int, max_batch: int,
                  environment: dict[str, str]) -> dict[str, Any]:
    fields = {name: onnx_meta.get(name) for name in IDENTITY_FIELDS if name in onnx_meta}
    fields.update(environment)
    fields.update({'onnx_dtype': onnx_meta.get('dtype'), 'precision': precision,
                   'min_batch': 1, 'opt_batch': int(opt_batch), 'max_batch': int(max_batch)})
    return fields


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, *,
                 precision: str | None = None, max_batch: int = 32, opt_batch: int = 1,
                 workspace_gb: float | None = None, device: Any = None) -> dict[str, Any]:
    """
    Build and write a serialized engine and its metadata.

    Build a serialized engine with a batch profile ``1..max_batch`` and write it with its
    metadata sidecar. Returns the metadata.
    """
    if not 1 <= opt_batch <= max_batch:
        raise ValueError(f'need 1 <= opt_batch ({opt_batch}) <= max_batch ({max_batch})')
    trt = import_tensorrt()
    environment = tensorrt_environment(device)
    onnx_meta = read_metadata(onnx_path)
    onnx_dtype = onnx_input_dtype(onnx_path)
    onnx_meta.setdefault('dtype', onnx_dtype)
    onnx_meta.setdefault('weights_sha256', file_sha256(onnx_path))
    precision = precision or onnx_dtype
    strongly_typed, flag = plan_typing(onnx_dtype, precision, has_weak_typing(trt))

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network_flags = 0
    creation = trt.NetworkDefinitionCreationFlag
    if strongly_typed and hasattr(creation, 'STRONGLY_TYPED'):
        network_flags |= 1 << int(creation.STRONGLY_TYPED)
    network = builder.create_network(network_flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # resolves external weight files too
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f'TensorRT cannot parse {onnx_path}: {errors}')
    config = builder.create_builder_config()
    if workspace_gb:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if flag is not None:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    profile = builder.create_optimization_profile()
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        rest = tuple(tensor.shape)[1:]
        if any(dim < 0 for dim in rest):
            raise BackendError(f'input {tensor.name} has dynamic non-batch dims {tensor.shape}')
        profile.set_shape(tensor.name, (1, *rest), (opt_batch, *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)
    log.info('building TensorRT %s engine (%s, batch 1..%d) from %s', precision,
             'strongly typed' if strongly_typed else f'BuilderFlag.{flag}', max_batch, onnx_path)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BackendError(f'TensorRT failed to build an engine from {onnx_path} '
                           '(see the TensorRT log above)')
    data = bytes(plan)
    meta = engine_fields(onnx_meta, precision, opt_batch, max_batch, environment)
    meta.update({'strongly_typed': strongly_typed, 'engine_bytes': len(data)})
    meta['engine_sha256'] = hashlib.sha256(data).hexdigest()
    engine_path = Path(engine_path)
    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(data)
    atomic_write_json(sidecar(engine_path), meta)
    return meta


def sidecar(engine_path: str | os.PathLike) -> Path:
    return Path(str(engine_path) + '.json')


def read_engine(engine_path: str | os.PathLike, expected: dict[str, Any]) -> tuple[bytes, dict]:
    """
    Return engine bytes and metadata after checking them.

    Engine bytes and metadata, after checking the sidecar against ``expected`` fields and
    the bytes against the recorded sha256. Raises :class:`EngineMismatchError`.
    """
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise EngineMismatchError(f'TensorRT engine {engine_path} does not exist')
    meta_path = sidecar(engine_path)
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EngineMismatchError(
            f'{engine_path}: missing or unreadable metadata {meta_path} ({exc}); rebuild the '
            'engine with cliprt-export --engine') from exc
    diff = mismatches(meta, expected)
    if diff:
        raise EngineMismatchError(f'TensorRT engine {engine_path} was built for something else '
                                  f"(stale engine): {'; '.join(diff)}. Rebuild it with "
                                  'cliprt-export --engine, or let the backend build one.')
    data = engine_path.read_bytes()
    if meta.get('engine_sha256') != hashlib.sha256(data).hexdigest():
        raise EngineMismatchError(f'TensorRT engine {engine_path} does not match the sha256 in '
                                  f'{meta_path} (truncated or replaced file); rebuild it')
    return data, meta


def cache_path(cache_dir: Path, fields: dict[str, Any]) -> Path:
    name = f"{fields.get('model', 'graph')}-{fields['precision']}-{artifact_key(fields)}.engine"
    return cache_dir / 'engines' / name


def policy_identity(policy: Any, fingerprint: str, environment: dict[str, str]) -> dict:
    """Return the identity fields an engine must have to serve ``policy``."""
    signature = graph_signature(policy)
    identity = {name: signature[name] for name in IDENTITY_FIELDS if name in signature}
    identity['weights_sha256'] = fingerprint
    identity.update(environment)
    return identity


def default_precision(policy: Any) -> str:
    return dtype_name(policy.dtype)
