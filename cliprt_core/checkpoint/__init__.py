"""Checkpoints: our self-describing format, the official CLIP-RT files, and hub resolution."""
from cliprt_core.checkpoint.errors import CheckpointError
from cliprt_core.checkpoint.loading import load_model, load_payload
from cliprt_core.checkpoint.native import save_model_checkpoint

__all__ = ['CheckpointError', 'load_model', 'load_payload', 'save_model_checkpoint']
