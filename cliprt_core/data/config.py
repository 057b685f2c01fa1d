"""Configuration of the demonstration data pipeline (the ``data:`` section of a train config)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class DataConfig:
    """
    Where the demonstrations are and how samples are made and loaded.

    ``paths``: HDF5 files, folders (searched recursively) or glob patterns, e.g.
    ``data/libero_spatial_no_noops/*.hdf5``; several suites at once are fine.
    ``camera``: the camera that feeds the model (``agentview``, ``eye_in_hand``/``wrist`` or a raw
    ``obs`` key); ``wrist``: also load the wrist image (``wrist_pixels``; CLIP-RT ignores it).
    ``skip_noops``: drop no-op steps with OpenVLA's rule (for original-layout files).
    ``image_size``: crop size (null: the model's). ``augment``: RandomResizedCrop with
    ``crop_scale`` (else resize + center crop). ``val_fraction``: share of each file's demos
    held out. ``cache_mb``: per-worker in-RAM cache of decoded demos (0: off; total RAM =
    cache_mb x workers).
    ``action_units``: units of the actions for discrete labeling (LIBERO: 1.0 = 5 cm / 0.5 rad).
    """

    paths: list[str] = field(default_factory=list)
    camera: str = 'agentview'
    wrist: bool = False
    skip_noops: bool = False
    image_size: int | None = None
    augment: bool = True
    crop_scale: tuple[float, float] = (0.9, 1.0)
    val_fraction: float = 0.0
    split_seed: int = 0
    max_demos_per_file: int | None = None
    num_workers: int = 4
    prefetch_factor: int = 4
    pin_memory: bool = True
    cache_mb: float = 0.0
    action_units: Literal['libero', 'metric'] = 'libero'
