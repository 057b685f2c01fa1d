"""
The training configuration (one YAML file per experiment, ``config/train/*.yaml``).

Sections: ``model`` (a model config name or path, or a whole model config), ``init_checkpoint``
/ ``init_mode``, ``seed``, ``data`` (:class:`cliprt_core.data.DataConfig`), ``optim``, ``train``
and ``log``. Unknown keys are errors (cliprt_core.config); ``key.sub=value`` overrides apply on
top, also inside the architecture (``model.decoder.layers=2`` expands the named model config
first). Configs are frozen once loaded.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
import os
from typing import Any, Literal, Sequence

from cliprt_core.config import ConfigError, load_config, read_yaml, to_dict
from cliprt_core.data.config import DataConfig
from cliprt_core.model.configuration import CLIPRTConfig, load_model_config
from cliprt_core.paths import resolve_config_file


@dataclass(frozen=True)
class OptimConfig:
    """AdamW + cosine schedule with linear warmup (CLIP-RT's open_clip recipe)."""

    lr: float = 5e-6
    weight_decay: float = 0.1  # not applied to biases, norms, logit_scale, ndim < 2 tensors
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    warmup_steps: int = 1000
    schedule: Literal['cosine', 'constant'] = 'cosine'
    min_lr_ratio: float = 0.0  # cosine floor, as a fraction of lr
    grad_clip: float | None = 1.0  # max global grad norm; null disables clipping
    fused: bool | None = None  # fused AdamW kernel; null: on CUDA and CPU


@dataclass(frozen=True)
class TrainSection:
    """Steps, batch geometry and numerics."""

    max_steps: int = 10000
    global_batch_size: int = 128  # samples per optimizer step, over all ranks
    micro_batch_size: int | None = None  # max samples per forward per rank; null: global / ranks
    precision: Literal['auto', 'bf16', 'fp32'] = 'auto'  # auto: bf16 autocast on CUDA, fp32 on CPU
    device: Literal['auto', 'cpu', 'cuda'] = 'auto'
    num_threads: int | None = None  # torch intra-op threads of each training process (CPU)
    grad_checkpointing: bool = False  # recompute transformer activations in backward (memory)


@dataclass(frozen=True)
class LogConfig:
    """The run directory and what goes into it."""

    output_dir: str = 'runs'
    run_name: str | None = None  # null: the config file's name
    log_every: int = 10  # steps per metrics.jsonl / TensorBoard record
    save_every: int = 1000  # steps per numbered checkpoint (0: only last / best)
    eval_every: int = 1000  # steps per validation pass (needs data.val_fraction > 0)
    val_max_batches: int = 50  # per rank and pass (0: the whole validation set)
    progress: bool = True
    tensorboard: bool = True


@dataclass(frozen=True)
class TrainConfig:
    """A whole experiment."""

    model: str | CLIPRTConfig = 'cliprt-tiny'  # a model config name/path, or the config itself
    init_checkpoint: str | None = None  # cliprt / official checkpoint, hub id, or open_clip:<tag>
    init_mode: Literal['full', 'backbone'] = 'full'  # backbone: copy only the CLIP towers
    seed: int = 7
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainSection = field(default_factory=TrainSection)
    log: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self) -> None:
        t, o, d, g = self.train, self.optim, self.data, self.log
        checks = [  # (valid, setting, value, rule)
            (t.max_steps >= 1, 'train.max_steps', t.max_steps, '>= 1'),
            (t.global_batch_size >= 1, 'train.global_batch_size', t.global_batch_size, '>= 1'),
            (t.micro_batch_size is None or t.micro_batch_size >= 1, 'train.micro_batch_size',
             t.micro_batch_size, '>= 1 or null'),
            (t.num_threads is None or t.num_threads >= 1, 'train.num_threads', t.num_threads,
             '>= 1 or null'),
            (o.lr > 0, 'optim.lr', o.lr, '> 0'),
            (o.weight_decay >= 0, 'optim.weight_decay', o.weight_decay, '>= 0'),
            (all(0 <= b < 1 for b in o.betas), 'optim.betas', list(o.betas), 'in [0, 1)'),
            (o.eps > 0, 'optim.eps', o.eps, '> 0'),
            (o.warmup_steps >= 0, 'optim.warmup_steps', o.warmup_steps, '>= 0'),
            (0.0 <= o.min_lr_ratio <= 1.0, 'optim.min_lr_ratio', o.min_lr_ratio, 'in [0, 1]'),
            (o.grad_clip is None or o.grad_clip > 0, 'optim.grad_clip', o.grad_clip,
             '> 0 or null'),
            (g.log_every >= 1, 'log.log_every', g.log_every, '>= 1'),
            (g.save_every >= 0, 'log.save_every', g.save_every, '>= 0'),
            (g.eval_every >= 0, 'log.eval_every', g.eval_every, '>= 0'),
            (g.val_max_batches >= 0, 'log.val_max_batches', g.val_max_batches, '>= 0'),
            (0.0 <= d.val_fraction < 1.0, 'data.val_fraction', d.val_fraction, 'in [0, 1)'),
            (d.num_workers >= 0, 'data.num_workers', d.num_workers, '>= 0'),
            (d.prefetch_factor >= 1, 'data.prefetch_factor', d.prefetch_factor, '>= 1'),
            (d.cache_mb >= 0, 'data.cache_mb', d.cache_mb, '>= 0'),
            (d.image_size is None or d.image_size >= 1, 'data.image_size', d.image_size,
             '>= 1 or null'),
            (d.max_demos_per_file is None or d.max_demos_per_file >= 1,
             'data.max_demos_per_file', d.max_demos_per_file, '>= 1 or null'),
            (0 < d.crop_scale[0] <= d.crop_scale[1] <= 1.0, 'data.crop_scale',
             list(d.crop_scale), '0 < low <= high <= 1'),
        ]
        for ok, name, value, rule in checks:
            if not ok:
                raise ConfigError(f'{name}={value}: must be {rule}')


def load_train_config(name_or_path: str | os.PathLike | None,
                      overrides: Sequence[str] = ()) -> TrainConfig:
    """
    Load a training config.

    Load ``config/train/<name>.yaml`` (or a path), apply overrides; run_name defaults to the
    file's name.
    """
    path = None if name_or_path is None else resolve_config_file('train', name_or_path)
    data: dict[str, Any] = {} if path is None else read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: top level must be a mapping')
    if any(o.partition('=')[0].strip().startswith('model.') for o in overrides):
        data['model'] = _expanded_model(data.get('model', TrainConfig.model))
    try:
        config = load_config(TrainConfig, data, overrides)
    except ConfigError as exc:
        raise ConfigError(f'{path}: {exc}' if path else str(exc)) from None
    if path is not None and config.log.run_name is None:
        config = replace(config, log=replace(config.log, run_name=path.stem))
    return config


def model_config_of(config: TrainConfig) -> CLIPRTConfig:
    """Return the architecture of a training config (a name is loaded; a config is itself)."""
    if isinstance(config.model, CLIPRTConfig):
        return config.model
    return load_model_config(config.model)


def _expanded_model(model: Any) -> dict[str, Any]:
    """Return a model config name as the nested dict its settings can be overridden in."""
    if isinstance(model, dict):
        return model
    if not isinstance(model, str):
        raise ConfigError(f'model: expected a model config name or mapping, got {model!r}')
    return to_dict(load_model_config(model))
