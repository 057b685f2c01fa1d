"""Errors of the inference backends: a clear message instead of a stack trace deep in a runtime."""
from __future__ import annotations


class BackendError(RuntimeError):
    """Base class of every backend error."""


class UnknownBackendError(BackendError, ValueError):
    """The backend name (or one of its options) is not known."""


class BackendUnavailableError(BackendError):
    """The backend cannot run here: its package is not installed, or it needs a GPU."""


class EngineMismatchError(BackendError):
    """
    A prebuilt ONNX file or TensorRT engine does not fit.

    A prebuilt ONNX file or TensorRT engine does not match this policy, GPU or runtime
    (stale file, other weights, other TensorRT version) or cannot be deserialised.
    """
