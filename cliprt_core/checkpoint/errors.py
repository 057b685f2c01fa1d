"""Checkpoint errors."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, unsafe, or does not match the model."""
