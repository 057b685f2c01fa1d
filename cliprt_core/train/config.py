"""The training configuration (one YAML file per experiment, ``config/train/*.yaml``).

Sections: ``model`` (a model config name or path), ``init_checkpoint`` / ``init_mode``,
``seed``, ``data`` (:class:`cliprt_core.data.DataConfig`), ``optim``, ``train`` and ``log``.
Unknown keys are errors (cliprt_core.config); ``key.sub=value`` overrides apply on top.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal, Sequence

from cliprt_core.config import ConfigError, load_config
from cliprt_core.data.config import DataConfig
from cliprt_core.paths import resolve_config_file


@dataclass
class OptimConfig:
    """AdamW + cosine schedule with linear warmup (CLIP-RT's open_clip recipe)."""

    lr: float = 5e-6
    weight_decay: float = 0.1  # not applied to biases, norms, logit_scale, ndim < 2 tensors
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    warmup_steps: int = 1000
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = 0.0  # cosine floor, as a fraction of lr
    grad_clip: float | None = 1.0  # max global grad norm; null disables clipping
    fused: bool | None = None  # fused AdamW kernel; null: on CUDA and CPU


@dataclass
class TrainSection:
    """Steps, batch geometry and numerics."""

    max_steps: int = 10000
    global_batch_size: int = 128  # samples per optimizer step, over all ranks
    micro_batch_size: int | None = None  # max samples per forward per rank; null: global / ranks
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int | None = None  # torch intra-op threads of each training process (CPU)
    grad_checkpointing: bool = False  # recompute transformer activations in backward (memory)


@dataclass
class LogConfig:
    """The run directory and what goes into it."""

    output_dir: str = "runs"
    run_name: str | None = None  # null: the config file's name
    log_every: int = 10  # steps per metrics.jsonl / TensorBoard record
    save_every: int = 1000  # steps per numbered checkpoint (0: only last / best)
    eval_every: int = 1000  # steps per validation pass (needs data.val_fraction > 0)
    val_max_batches: int = 50  # per rank and pass (0: the whole validation set)
    progress: bool = True
    tensorboard: bool = True


@dataclass
class TrainConfig:
    """A whole experiment."""

    model: str = "cliprt-tiny"
    init_checkpoint: str | None = None  # cliprt / official checkpoint, hub id, or open_clip:<tag>
    init_mode: Literal["full", "backbone"] = "full"  # backbone: copy only the CLIP towers
    seed: int = 7
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainSection = field(default_factory=TrainSection)
    log: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self) -> None:
        checks = [
            (self.train.max_steps >= 1, "train.max_steps must be >= 1"),
            (self.train.global_batch_size >= 1, "train.global_batch_size must be >= 1"),
            (self.train.micro_batch_size is None or self.train.micro_batch_size >= 1,
             "train.micro_batch_size must be >= 1"),
            (self.optim.lr > 0, "optim.lr must be > 0"),
            (self.optim.warmup_steps >= 0, "optim.warmup_steps must be >= 0"),
            (0.0 <= self.optim.min_lr_ratio <= 1.0, "optim.min_lr_ratio must be in [0, 1]"),
            (self.optim.grad_clip is None or self.optim.grad_clip > 0,
             "optim.grad_clip must be > 0"),
            (self.log.log_every >= 1, "log.log_every must be >= 1"),
            (self.log.save_every >= 0 and self.log.eval_every >= 0,
             "log.save_every and log.eval_every must be >= 0"),
            (0.0 <= self.data.val_fraction < 1.0, "data.val_fraction must be in [0, 1)"),
            (self.data.num_workers >= 0, "data.num_workers must be >= 0"),
            (0 < self.data.crop_scale[0] <= self.data.crop_scale[1] <= 1.0,
             "data.crop_scale must satisfy 0 < low <= high <= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


def load_train_config(name_or_path: str | os.PathLike | None,
                      overrides: Sequence[str] = ()) -> TrainConfig:
    """Load ``config/train/<name>.yaml`` (or a path), apply overrides; run_name defaults to the
    file's name."""
    if name_or_path is None:
        return load_config(TrainConfig, None, overrides)
    path = resolve_config_file("train", name_or_path)
    config = load_config(TrainConfig, path, overrides)
    if config.log.run_name is None:
        config.log.run_name = path.stem
    return config
