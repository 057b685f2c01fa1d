"""
Inference backends for the per-query graph: eager torch, torch.compile, ONNX Runtime, TensorRT.

A backend is a callable ``(pixels [B,3,S,S], prompt_embeddings [B,D]) -> output`` built from a
:class:`~cliprt_core.inference.policy.Policy`, with a ``name`` and ``describe()``. The policy
keeps the text tower and the instruction-embedding cache; backends only replace
``policy.query``. Select one with ``Policy.from_config(..., backend='onnx')`` (or
``from_checkpoint``), or build one with :func:`create_backend`.

Backend modules are imported only when selected: onnxruntime / tensorrt are optional.
"""
from __future__ import annotations

import importlib
import inspect
import typing
from typing import Any

from cliprt_core.inference.backends.errors import (BackendError, BackendUnavailableError,
                                                   EngineMismatchError, UnknownBackendError)
from cliprt_core.inference.settings import Backend

__all__ = ['BACKENDS', 'BackendError', 'BackendUnavailableError', 'EngineMismatchError',
           'UnknownBackendError', 'backend_class', 'create_backend']

BACKENDS: tuple[str, ...] = typing.get_args(Backend)


def _locations() -> dict[str, tuple[str, str]]:
    package = __name__
    return {
        'torch': (f'{package}.torch_eager', 'EagerBackend'),
        'compile': (f'{package}.compiled', 'CompiledBackend'),
        'onnx': (f'{package}.onnxruntime_backend', 'OnnxRuntimeBackend'),
        'tensorrt': (f'{package}.tensorrt_runtime', 'TensorRTBackend'),
    }


def backend_class(name: str) -> type:
    """Return the class implementing backend ``name`` (imports only that backend's module)."""
    locations = _locations()
    if name not in locations:
        raise UnknownBackendError(f'unknown backend {name!r}; choose one of {list(locations)}')
    module, attribute = locations[name]
    return getattr(importlib.import_module(module), attribute)


def create_backend(name: str, policy: Any, **options: Any) -> Any:
    """
    Build backend ``name`` for ``policy``.

    Raises :class:`UnknownBackendError` (bad name or option), :class:`BackendUnavailableError`
    (not installed / needs a GPU) or :class:`EngineMismatchError` (stale ONNX file or engine).
    """
    cls = backend_class(name)
    parameters = inspect.signature(cls.__init__).parameters
    accepted = [p for p in parameters if p not in ('self', 'policy')]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UnknownBackendError(f'backend {name!r} has no option(s) {unknown}; '
                                  f'its options are {accepted}')
    return cls(policy, **options)
