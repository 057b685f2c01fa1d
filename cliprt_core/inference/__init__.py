"""
Serving CLIP-RT: the Policy API, input validation, the per-query graph and backends.

Names load on first use, so the torch-free parts (:mod:`~cliprt_core.inference.settings`, backend
names) can be imported by processes that never run a model (env workers, launch files).
"""
from __future__ import annotations

from cliprt_core.lazy import lazy_exports

_EXPORTS = {
    'NonFiniteActionError': 'inputs', 'PolicyInputError': 'inputs',
    'DiscreteAction': 'policy', 'Policy': 'policy',
    'PolicySettings': 'settings', 'build_policy': 'factory',
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
