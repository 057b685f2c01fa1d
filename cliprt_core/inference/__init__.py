"""
Serving CLIP-RT: the Policy API, input validation, the per-query graph and backends.

Names load on first use, so the torch-free parts (:mod:`~cliprt_core.inference.settings`, backend
names) can be imported by processes that never run a model (env workers, launch files).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    'NonFiniteActionError': 'inputs', 'PolicyInputError': 'inputs',
    'DiscreteAction': 'policy', 'Policy': 'policy',
    'PolicySettings': 'settings', 'build_policy': 'factory',
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cliprt_core.inference' has no attribute {name!r}")
    value = getattr(importlib.import_module(f'cliprt_core.inference.{module}'), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
