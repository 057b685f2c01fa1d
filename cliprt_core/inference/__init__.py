"""Serving CLIP-RT: the Policy API, input validation, the per-query graph and backends."""
from cliprt_core.inference.inputs import NonFiniteActionError, PolicyInputError
from cliprt_core.inference.policy import DiscreteAction, Policy

__all__ = ["DiscreteAction", "NonFiniteActionError", "Policy", "PolicyInputError"]
