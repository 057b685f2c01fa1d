"""
The training loop: CPU, one GPU, or DDP over N GPUs / nodes with the same code and command.

One optimizer step consumes one global batch (``train.global_batch_size`` samples over all
ranks), split into ``accumulation`` micro-batches per rank; losses are normalised over the
global batch (cliprt_core.heads.LossStep). CLIP-RT+'s masked L1 does not depend on the split;
the discrete contrastive loss takes its in-batch negatives from one accumulation round (``ranks x
micro_batch`` samples), so accumulation changes it (the authors: 4 GPUs x 32, no accumulation).
Everything that depends on the kind of output (targets, loss, metrics) is the model's head's.
"""
from __future__ import annotations

from contextlib import nullcontext
import logging
import math
from pathlib import Path
import time
from typing import Any

from cliprt_core.checkpoint.loading import load_payload
from cliprt_core.checkpoint.native import make_payload
from cliprt_core.config import ConfigError, from_dict, to_dict
from cliprt_core.data import build_datasets, EpochBatchSampler, make_loader, ShardedEvalSampler
from cliprt_core.data.loader import worker_deaths_ignored
from cliprt_core.heads import Head, head_for, LossStep
from cliprt_core.model import CLIPRTConfig, create_model
from cliprt_core.model.preprocessing import normalize
from cliprt_core.signals import StopRequest
from cliprt_core.train.config import model_config_of, TrainConfig
import cliprt_core.train.distributed as D
from cliprt_core.train.evaluation import validate
from cliprt_core.train.init import initialise
from cliprt_core.train.optim import build_optimizer, build_scheduler, restore_optimization
from cliprt_core.train.plots import plot_training_curve
from cliprt_core.train.run_dir import RunDir
from cliprt_core.train.state import capture_rng, restore_rng
import torch
from torch import nn

log = logging.getLogger('cliprt.train')


class TrainingForward(nn.Module):
    """
    One micro-batch through the model and its head (the module DDP wraps).

    Prompts are encoded once per distinct string in the micro-batch, then indexed per sample;
    ``head_inputs`` are the head's ``training_inputs``.
    """

    def __init__(self, model: nn.Module, head: Head) -> None:
        super().__init__()
        self.model = model
        self.head = head

    def forward(self, pixels, prompt_tokens, prompt_index, *head_inputs):
        image = self.model.encode_image(pixels)
        prompt = self.model.encode_text(prompt_tokens)[prompt_index]
        return self.head.training_output(self.model, image, prompt, *head_inputs)


def micro_batch_geometry(global_batch: int, world: int, micro_max: int | None) -> tuple[int, int]:
    """(micro batch per rank, accumulation steps) for a global batch on ``world`` ranks."""
    if global_batch % world:
        raise ConfigError(f'train.global_batch_size={global_batch} is not divisible by the '
                          f'{world} ranks')
    per_rank = global_batch // world
    limit = micro_max or per_rank
    for accumulation in range(1, per_rank + 1):
        if per_rank % accumulation == 0 and per_rank // accumulation <= limit:
            return per_rank // accumulation, accumulation
    raise AssertionError('unreachable')


class Trainer:
    """Build everything from a TrainConfig; ``train()`` runs (or resumes) the loop."""

    def __init__(self, config: TrainConfig, run_dir: str | Path | None = None,
                 resume: bool = False) -> None:
        self.config = config
        self.dist = D.init_distributed(config.train.device)
        self.device = self.dist.device
        if config.train.num_threads:
            torch.set_num_threads(config.train.num_threads)
        torch.manual_seed(config.seed)  # identical initial weights on every rank
        self.model_config: CLIPRTConfig = model_config_of(config)
        self.head = head_for(self.model_config)
        self.model = create_model(self.model_config)
        self.run = RunDir(run_dir or Path(config.log.output_dir) / (config.log.run_name or 'run'),
                          is_main=self.dist.is_main, tensorboard=config.log.tensorboard)
        if resume and not self.run.has_checkpoint():
            raise FileNotFoundError(f'--resume: no checkpoint at {self.run.last}')
        if not resume and self.run.has_checkpoint():
            raise FileExistsError(f'{self.run.path} already holds a run; resume it with --resume '
                                  f'or choose another log.run_name / --run-dir')
        if config.init_checkpoint and not resume:
            self._log(initialise(self.model, config.init_checkpoint, config.init_mode))
        # only a contrastive head uses the temperature
        self.model.clip.logit_scale.requires_grad_(self.head.trains_logit_scale)
        if config.train.grad_checkpointing:
            self.model.clip.set_grad_checkpointing(True)
            if self.model.decoder is not None:
                self.model.decoder.transformer.grad_checkpointing = True
        self.model.to(self.device)
        self.autocast_dtype = self._precision()

        # data
        self.train_set, self.val_set = build_datasets(
            config.data, image_size=self.model.image_size, head=self.head.name,
            chunk_size=self.model_config.chunk_size, vocabulary=self.head.vocabulary,
            seed=config.seed)
        if config.data.wrist:
            log.warning('data.wrist=true: wrist images are loaded but CLIP-RT uses one camera '
                        '(data.camera); they are not used by this trainer')
        self.micro_batch, self.accumulation = micro_batch_geometry(
            config.train.global_batch_size, self.dist.world_size, config.train.micro_batch_size)
        self.sampler = EpochBatchSampler(len(self.train_set), config.train.global_batch_size,
                                         self.micro_batch, self.dist.world_size, self.dist.rank,
                                         seed=config.seed)
        pin = config.data.pin_memory and self.device.type == 'cuda'
        self.loader = make_loader(self.train_set, self.sampler, config.data.num_workers, pin,
                                  config.data.prefetch_factor)
        self.val_loader = None
        if self.val_set is not None:
            val_sampler = ShardedEvalSampler(len(self.val_set), self.micro_batch,
                                             self.dist.world_size, self.dist.rank,
                                             config.log.val_max_batches or None)
            self.val_loader = make_loader(self.val_set, val_sampler, config.data.num_workers,
                                          pin, config.data.prefetch_factor, persistent=False)
        self.prompt_tokens = self.model.tokenize_prompts(
            self.train_set.instructions).to(self.device)

        # optimisation
        self.optimizer = build_optimizer(self.model, config.optim, self.device)
        self.scheduler = build_scheduler(self.optimizer, config.optim, config.train.max_steps)
        self.forward_module = TrainingForward(self.model, self.head)
        self.ddp = None
        if self.dist.distributed:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.forward_module,
                device_ids=[self.device.index] if self.device.type == 'cuda' else None,
                gradient_as_bucket_view=True)
        self.step, self.epoch, self.step_in_epoch = 0, 0, 0
        self.best_val = math.inf
        self._iterator = None
        self._stop = StopRequest('saving checkpoints/last.pt at the end of this step, then '
                                 'stopping', log)
        self._grad_window = torch.zeros((), device=self.device)  # sum of grad norms since a save
        self._last_saved = -1  # step of the newest last.pt
        if resume:
            self._restore()
        # the resolved config (rewritten on resume: overrides count); a fresh run moves the
        # files of an earlier run that saved no checkpoint aside
        self.run.create(config, fresh=not resume)
        self._log(f'{self.model_config.name}: {sum(p.numel() for p in self.model.parameters()):,} '
                  f'parameters; {len(self.train_set):,} samples from {self.train_set.num_demos} '
                  f'demos; global batch {config.train.global_batch_size} = {self.dist.world_size} '
                  f'rank(s) x {self.accumulation} x {self.micro_batch}; device {self.device}; '
                  f'precision {self.autocast_dtype or torch.float32}; run dir {self.run.path}')

    # --- setup helpers -----------------------------------------------------------------------
    def _precision(self) -> torch.dtype | None:
        precision = self.config.train.precision
        if precision == 'auto':
            precision = 'bf16' if self.device.type == 'cuda' else 'fp32'
        return torch.bfloat16 if precision == 'bf16' else None

    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _log(self, message: str) -> None:
        if self.dist.is_main:
            log.info(message)

    # --- the loop ----------------------------------------------------------------------------
    def train(self, until_step: int | None = None) -> dict[str, Any]:
        """Train to ``until_step`` (default ``train.max_steps``); always leaves ``last.pt``."""
        cfg = self.config
        until = min(until_step or cfg.train.max_steps, cfg.train.max_steps)
        self._stop.__enter__()  # SIGTERM / SIGINT: save last.pt at the step boundary, stop
        progress = None
        if self.dist.is_main and cfg.log.progress:
            from tqdm.auto import tqdm
            progress = tqdm(total=until, initial=self.step, desc='train', unit='step',
                            dynamic_ncols=True)
        window_loss = torch.zeros((), device=self.device)
        window_steps, data_time, window_start = 0, 0.0, time.perf_counter()
        last, stopped_by = {}, None
        try:
            while self.step < until:
                fetch = time.perf_counter()
                batches = [self._next_batch() for _ in range(self.accumulation)]
                data_time += time.perf_counter() - fetch
                loss, grad_norm = self._optimizer_step(batches)
                self._grad_window += grad_norm  # checked before each save
                window_loss += loss
                window_steps += 1
                self._advance()
                log_step = self.step % cfg.log.log_every == 0 or self.step == until
                stop = self._stop_requested(log_step)
                if log_step or stop:
                    elapsed = time.perf_counter() - window_start
                    last = self._log_window(window_loss, window_steps, grad_norm, elapsed,
                                            data_time)
                    if progress is not None:
                        progress.set_postfix(loss=f"{last['loss']:.4f}",
                                             samples_s=f"{last['samples_per_s']:.1f}")
                    window_loss.zero_()
                    window_steps, data_time, window_start = 0, 0.0, time.perf_counter()
                if progress is not None:
                    progress.update(1)
                if self.val_loader is not None and cfg.log.eval_every and \
                        self.step % cfg.log.eval_every == 0:
                    self.validate()
                if cfg.log.save_every and self.step % cfg.log.save_every == 0:
                    self.save(periodic=True)
                if stop:
                    stopped_by = self._stop.name or 'SIGTERM'  # or another rank's signal
                    self._log(f'{stopped_by}: saving at step {self.step} and stopping')
                    break
            if self._last_saved != self.step:
                with worker_deaths_ignored():  # a dead worker must not cost the progress
                    self.save()
            if self.dist.is_main:
                plot_training_curve(self.run.metrics_file, self.run.path / 'curve.png')
        finally:
            if progress is not None:
                progress.close()
            self._stop.__exit__(None, None, None)
        return {'step': self.step, 'run_dir': str(self.run.path), 'stopped_by': stopped_by, **last}

    def _next_batch(self) -> dict[str, torch.Tensor]:
        if self._iterator is None:
            self.sampler.set_position(self.epoch, self.step_in_epoch)
            self._iterator = iter(self.loader)
        return next(self._iterator)

    def _advance(self) -> None:
        self.step += 1
        self.step_in_epoch += 1
        if self.step_in_epoch == self.sampler.steps_per_epoch:
            self.epoch, self.step_in_epoch, self._iterator = self.epoch + 1, 0, None

    def inputs(self, batch: dict[str, torch.Tensor]) -> tuple:
        """Model inputs of a micro-batch on the device (pixels normalised here, not in workers)."""
        pixels = batch['pixels'].to(self.device, non_blocking=True).float().div_(255.0)
        unique, inverse = torch.unique(batch['instruction_id'], return_inverse=True)
        head_inputs = self.head.training_inputs(self.model, batch, self.device)
        return (normalize(pixels), self.prompt_tokens[unique.to(self.device)],
                inverse.to(self.device), *head_inputs)

    def _optimizer_step(self, batches: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        weight = self.head.loss_weight(batches)
        normalizer = None if weight is None else D.all_reduce_sum(
            weight.to(self.device, torch.float32))
        step = LossStep(self.dist.world_size, self.accumulation, normalizer)
        module = self.ddp or self.forward_module
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for i, batch in enumerate(batches):
            sync = self.ddp is None or i == len(batches) - 1
            with nullcontext() if sync else self.ddp.no_sync():
                with self._autocast():
                    output = module(*self.inputs(batch))
                loss = self.head.loss(output, batch, step)
                loss.backward()
            total += loss.detach()
        params = [p for p in self.model.parameters() if p.requires_grad]
        clip = self.config.optim.grad_clip
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip if clip else float('inf'))
        self.optimizer.step()
        self.scheduler.step()
        self.model.clamp_logit_scale()
        return total, grad_norm

    def _log_window(self, window_loss, steps, grad_norm, elapsed, data_time) -> dict[str, Any]:
        loss = D.all_reduce_sum(window_loss.detach().clone()).item() / self.dist.world_size / steps
        if not math.isfinite(loss):
            raise FloatingPointError(f'non-finite training loss at step {self.step}')
        record = {'step': self.step, 'epoch': self.epoch, 'loss': loss,
                  'lr': self.scheduler.get_last_lr()[0], 'grad_norm': float(grad_norm),
                  'samples_per_s': steps * self.config.train.global_batch_size
                  / max(elapsed, 1e-9),
                  'data_wait': data_time / max(elapsed, 1e-9)}
        record.update(self.head.log_values(self.model))
        self.run.log_metrics(record)
        return record

    # --- validation and checkpoints ----------------------------------------------------------
    def validate(self) -> dict[str, Any]:
        """One pass over the validation split; saves ``best.pt`` on a new lowest loss."""
        metrics = validate(self.head, self.model, self.val_loader,
                           lambda batch: self.forward_module(*self.inputs(batch)),
                           self._autocast, self.device)
        record = {'step': self.step, **metrics}
        self.run.log_metrics(record, prefix='val')
        self._log(f'step {self.step}: ' + ', '.join(f'{k}={v:.5g}' for k, v in metrics.items()))
        if metrics['val_loss'] < self.best_val:
            self.best_val = metrics['val_loss']
            self.save(name='best.pt')
        return record

    def _metadata(self) -> dict[str, Any]:
        return {'step': self.step, 'epoch': self.epoch, 'run': str(self.run.path),
                'train_config': to_dict(self.config), 'instructions': self.train_set.instructions}

    def save(self, periodic: bool = False, name: str | None = None) -> None:
        """
        ``last.pt`` (resumable), plus ``step_N.pt`` when periodic; ``name``: model only.

        Rank 0 writes; the others wait (their state is identical). Non-finite weights are
        never saved: a non-finite gradient since the last save raises FloatingPointError (the
        gradients are all-reduced, so every rank agrees).
        """
        if not bool(torch.isfinite(self._grad_window)):
            raise FloatingPointError(f'non-finite gradients before step {self.step}: the weights '
                                     f'are not saved')
        self._grad_window.zero_()
        if not self.dist.is_main:
            if name is None:
                self._last_saved = self.step
            D.barrier()
            return
        if name is not None or periodic:
            target = name or f'step_{self.step:06d}.pt'
            self.run.save(make_payload(self.model, self._metadata()), target)
        if name is None:
            trainer_state = {'step': self.step, 'epoch': self.epoch,
                             'step_in_epoch': self.step_in_epoch, 'best_val': self.best_val,
                             'num_samples': len(self.train_set), 'rng': capture_rng(),
                             'global_batch_size': self.config.train.global_batch_size}
            self.run.save(make_payload(self.model, self._metadata(),
                                       optimizer=self.optimizer.state_dict(),
                                       scheduler=self.scheduler.state_dict(),
                                       trainer=trainer_state), 'last.pt')
            self._last_saved = self.step
        D.barrier()

    def _restore(self) -> None:
        payload = load_payload(self.run.last).payload  # CRC-checked
        saved = from_dict(CLIPRTConfig, payload['model_config'])
        if saved != self.model_config:
            raise ConfigError(f"{self.run.last}: the checkpoint's model ({saved.name}) differs "
                              f'from the configured model ({self.model_config.name})')
        self.model.load_state_dict(payload['state_dict'], strict=True)
        if restore_optimization(self.optimizer, self.scheduler, payload):
            self._log('the optimizer settings (optim.*, train.max_steps) differ from the '
                      "checkpoint's: the configured ones apply from here on")
        state = payload['trainer']
        self.step, self.epoch = int(state['step']), int(state['epoch'])
        self.step_in_epoch, self.best_val = int(state['step_in_epoch']), float(state['best_val'])
        if (state['num_samples'], state['global_batch_size']) != \
                (len(self.train_set), self.config.train.global_batch_size):
            self._log('the data set or global batch size changed since the checkpoint: '
                      'continuing from the start of the next epoch')
            self.epoch, self.step_in_epoch = self.epoch + 1, 0
        restore_rng(state['rng'])
        self.run.truncate_after(self.step)
        self._last_saved = self.step
        self._log(f'resumed {self.run.last} at step {self.step} (epoch {self.epoch})')

    # --- stopping on SIGTERM / Ctrl-C --------------------------------------------------------
    def _stop_requested(self, log_step: bool) -> bool:
        """
        Tell whether to stop; all ranks agree.

        All ranks agree (a signal may reach them at different steps): checked at log steps,
        where the loss is synchronised anyway.
        """
        if not self.dist.distributed:
            return self._stop.requested
        if not log_step:
            return False
        flag = torch.tensor(float(self._stop.requested), device=self.device)
        return bool(D.all_reduce_max(flag).item())

    def close(self) -> None:
        """Close the run directory and stop the data loader workers."""
        self.run.close()
        self._iterator = None
        for loader in (self.loader, self.val_loader):
            if loader is not None:
                loader.shutdown_workers()
