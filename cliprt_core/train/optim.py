"""AdamW with CLIP-RT's parameter groups and a cosine schedule with linear warmup."""
from __future__ import annotations

import math
from typing import Any

from cliprt_core.train.config import OptimConfig
import torch
from torch import nn

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)


def no_decay(name: str, param: torch.Tensor, norm_params: set[int]) -> bool:
    """open_clip's rule: no weight decay on biases, norms, logit_scale, tensors with ndim < 2."""
    return (param.ndim < 2 or name.endswith('bias') or 'logit_scale' in name
            or id(param) in norm_params)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups (decay / no decay) of the trainable parameters, in a stable order."""
    norm_params = {id(p) for m in model.modules() if isinstance(m, _NORMS) for p in m.parameters()}
    decay, plain = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (plain if no_decay(name, param, norm_params) else decay).append(param)
    return [{'params': decay, 'weight_decay': weight_decay, 'name': 'decay'},
            {'params': plain, 'weight_decay': 0.0, 'name': 'no_decay'}]


def build_optimizer(model: nn.Module, config: OptimConfig, device: torch.device
                    ) -> torch.optim.AdamW:
    """
    Build AdamW with the fused kernel unless ``config.fused`` is false.

    AdamW(betas, eps) with the fused kernel (CUDA and CPU; ~9x faster than the per-tensor
    loop on CPU) unless ``config.fused`` is false.
    """
    fused = device.type in ('cuda', 'cpu') if config.fused is None else config.fused
    kwargs = {'fused': True} if fused else {}
    return torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr,
                             betas=tuple(config.betas), eps=config.eps, **kwargs)


class WarmupCosine:
    """
    Compute the LR multiplier: linear warmup, then cosine.

    LR multiplier: linear warmup ``(s + 1) / warmup`` then cosine to ``min_ratio`` at
    ``total_steps`` (open_clip's ``cosine_lr``). ``schedule='constant'`` keeps 1 after warmup.

    A plain-attribute callable, so LambdaLR's state_dict records (and checks) it.
    """

    def __init__(self, warmup_steps: int, total_steps: int, schedule: str = 'cosine',
                 min_ratio: float = 0.0) -> None:
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.schedule = schedule
        self.min_ratio = float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.schedule == 'constant':
            return 1.0
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    rule = WarmupCosine(config.warmup_steps, total_steps, config.schedule, config.min_lr_ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, rule)


def restore_optimization(optimizer: torch.optim.Optimizer,
                         scheduler: torch.optim.lr_scheduler.LambdaLR,
                         payload: dict[str, Any]) -> bool:
    """
    Restore optimizer and scheduler state, keeping the configured settings.

    Load the optimizer and scheduler state of a checkpoint, keeping the configured
    hyperparameters (lr, weight decay, betas, eps, the schedule incl. its total steps): a resumed
    run with changed ``optim.*`` / ``train.max_steps`` uses them from here on. True if changed.
    """
    rule, keys = scheduler.lr_lambdas[0], ('weight_decay', 'betas', 'eps')

    def settings():
        return (dict(vars(rule)), list(scheduler.base_lrs),
                [{k: tuple(g[k]) if k == 'betas' else g[k] for k in keys}
                 for g in optimizer.param_groups])

    wanted = settings()
    optimizer.load_state_dict(payload['optimizer'])
    scheduler.load_state_dict(payload['scheduler'])
    if settings() == wanted:
        return False
    vars(rule).update(wanted[0])
    scheduler.base_lrs = wanted[1]
    for group, base, hyper in zip(optimizer.param_groups, wanted[1], wanted[2]):
        group.update(hyper, initial_lr=base, lr=base * rule(scheduler.last_epoch))
    scheduler._last_lr = [group['lr'] for group in optimizer.param_groups]
    return True
