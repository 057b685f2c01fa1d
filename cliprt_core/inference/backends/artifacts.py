"""
Identity of the per-query graph (weights fingerprint, I/O signature) and the artifact cache.

Exported ONNX files and TensorRT engines are derived from the weights: they are cached under a
key that includes a sha256 of every tensor the graph uses, so a file built from other weights is
never picked up silently (it is rebuilt, or a clear :class:`EngineMismatchError` is raised when
the user pointed at it explicitly).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1  # bump when the exported graph's I/O contract changes

DTYPE_NAMES = {torch.float32: 'fp32', torch.float16: 'fp16', torch.bfloat16: 'bf16'}
DTYPES_BY_NAME = {name: dtype for dtype, name in DTYPE_NAMES.items()}
DTYPES_BY_NAME.update({'float32': torch.float32, 'float16': torch.float16,
                       'bfloat16': torch.bfloat16, 'half': torch.float16})


def parse_dtype(value: str | torch.dtype) -> torch.dtype:
    """``'fp32' | 'fp16' | 'bf16'`` (or a torch dtype) -> torch dtype."""
    if isinstance(value, torch.dtype):
        if value not in DTYPE_NAMES:
            raise ValueError(f'unsupported dtype {value}; use fp32, fp16 or bf16')
        return value
    try:
        return DTYPES_BY_NAME[str(value).lower()]
    except KeyError:
        raise ValueError(f'unknown dtype {value!r}; use fp32, fp16 or bf16') from None


def dtype_name(dtype: torch.dtype) -> str:
    return DTYPE_NAMES[parse_dtype(dtype)]


def default_cache_dir() -> Path:
    """``$CLIPRT_CACHE_DIR``, else ``$XDG_CACHE_HOME/cliprt``, else ``~/.cache/cliprt``."""
    env = os.environ.get('CLIPRT_CACHE_DIR')
    if env:
        return Path(env)
    xdg = os.environ.get('XDG_CACHE_HOME')
    return (Path(xdg) if xdg else Path.home() / '.cache') / 'cliprt'


def weights_fingerprint(module: torch.nn.Module) -> str:
    """
    sha256 over name, dtype, shape and bytes of every parameter and buffer of ``module``.

    Includes non-persistent buffers (the head's text embeddings, e.g. primitives). Tensors are
    hashed in their current dtype, so the fingerprint of a bf16 policy differs from fp32's.
    """
    digest = hashlib.sha256()
    seen: set[int] = set()
    tensors = list(module.named_parameters(remove_duplicate=False))
    tensors += list(module.named_buffers(remove_duplicate=False))
    for name, tensor in sorted(tensors, key=lambda item: item[0]):
        if tensor is None:
            continue
        digest.update(f'{name}|{tensor.dtype}|{tuple(tensor.shape)}|'.encode())
        key = id(tensor)
        if key in seen:  # tied weights: hash the bytes once, the name every time
            continue
        seen.add(key)
        flat = tensor.detach().contiguous().reshape(-1)
        if flat.numel():
            digest.update(flat.view(torch.uint8).cpu().numpy().tobytes())
    return digest.hexdigest()


def graph_signature(policy: Any) -> dict[str, Any]:
    """Describe the exported graph from outside: names, shapes (batch dynamic), dtype."""
    head = policy.head
    return {
        'format_version': FORMAT_VERSION,
        'model': policy.config.name,
        'head': head.name,
        'dtype': dtype_name(policy.dtype),
        'image_size': int(policy.model.image_size),
        'embed_dim': int(policy.model.embed_dim),
        'inputs': {'pixels': ['batch', 3, int(policy.model.image_size),
                              int(policy.model.image_size)],
                   'prompt_embeddings': ['batch', int(policy.model.embed_dim)]},
        'output': {head.output_name: ['batch', *head.output_shape]},
    }


def output_name(policy: Any) -> str:
    """Return the graph's output name (``chunk`` or ``scores``): the policy head's."""
    return policy.head.output_name


def artifact_key(fields: dict[str, Any]) -> str:
    """Return a short, stable key (hex) from a JSON-serialisable dict of key fields."""
    blob = json.dumps(fields, sort_keys=True, separators=(',', ':')).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def mismatches(found: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Human-readable differences ``field: found != expected`` over the expected fields."""
    return [f'{name}: {found.get(name)!r} != expected {value!r}'
            for name, value in expected.items() if found.get(name) != value]
