"""
Data-loader benchmark (``cliprt-bench data``).

Data-loader benchmark (``cliprt-bench data``): can the HDF5 pipeline feed the trainer?

Measures, on the same machine and run:

1. loader samples/s (decode + upright flip + RandomResizedCrop + collate) for 0, 1, 2, ...
   DataLoader workers, at the tiny model's crop size (64) and at CLIP-RT+'s (378), from 256x256
   LIBERO images (OpenVLA no_noops layout), optionally with the in-RAM demo cache;
2. the tiny model's training step (forward + backward + AdamW, the trainer's own code) in
   samples/s on this machine, the number the loader must beat;
3. on CUDA only: ViT-H-14-378 CLIP-RT+ training step (bf16 autocast, fused AdamW) samples/s and
   peak GPU memory, at micro batch 32 (the authors' per-GPU batch); skipped (and said so) on CPU.

Synthetic files in the exact LIBERO layout (:mod:`cliprt_core.data.synthetic`) are written to a
temporary folder unless real ones are given.
"""
from __future__ import annotations

import os
from pathlib import Path
import tempfile
import time
from typing import Any, Callable, Sequence

from cliprt_core.data import (build_datasets, DataConfig, EpochBatchSampler, LiberoFile,
                              make_loader, scan_files)
from cliprt_core.data.synthetic import libero_file_name, write_libero_hdf5
import torch

TINY_MODEL = 'cliprt-tiny'
GPU_MODEL = 'cliprt-plus-vit-h-14-378'
STEPS = 10  # timed optimizer steps per model


def write_synthetic(folder: Path, files: int, demos: int, length: int, size: int) -> list[str]:
    """``files`` no_noops-layout task files of ``demos`` demos each; returns their paths."""
    paths = []
    for i in range(files):
        task = f'benchmark task number {i}'
        info = write_libero_hdf5(folder / libero_file_name(task), num_demos=demos, length=length,
                                 image_size=size, layout='no_noops', instruction=task, seed=i)
        paths.append(str(info.path))
    return paths


def loader_throughput(files: Sequence[LiberoFile], crop: int, workers: int, batch: int,
                      batches: int, cache_mb: float, augment: bool = True) -> float:
    """Training-loader samples/s over ``batches`` batches (worker start-up excluded)."""
    cfg = DataConfig(paths=[str(f.path) for f in files], augment=augment, cache_mb=cache_mb)
    dataset, _ = build_datasets(cfg, image_size=crop, head='chunk', files=list(files))
    sampler = EpochBatchSampler(len(dataset), batch, batch, seed=0)
    loader = make_loader(dataset, sampler, num_workers=workers, prefetch_factor=4,
                         persistent=False)
    iterator = iter(loader)
    next(iterator)  # worker start-up and first handle opens are not throughput
    count, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            count += len(next(iterator)['pixels'])
        except StopIteration:
            sampler.set_position(sampler.epoch + 1)
            iterator = iter(loader)
    elapsed = time.perf_counter() - start
    del iterator, loader
    return count / elapsed


def train_step_throughput(model_name: str, data_paths: list[str], batch: int, steps: int,
                          device: str, out_dir: str) -> dict[str, Any]:
    """Return the trainer's optimizer step (data excluded) on preloaded batches."""
    from cliprt_core.train import Trainer, load_train_config

    overrides = [f'model={model_name}', f"data.paths=[{','.join(data_paths)}]",
                 f'log.output_dir={out_dir}', f'log.run_name=bench-{model_name}',
                 'log.progress=false', 'log.tensorboard=false', f'train.global_batch_size={batch}',
                 f'train.device={device}', 'data.num_workers=0', 'optim.warmup_steps=1']
    trainer = Trainer(load_train_config('tiny', overrides))
    batches = [trainer._next_batch() for _ in range(min(4, trainer.sampler.steps_per_epoch))]
    sync = torch.cuda.synchronize if trainer.device.type == 'cuda' else (lambda: None)
    trainer._optimizer_step([batches[0]])  # warm-up (allocations, kernels)
    sync()
    if trainer.device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for i in range(steps):
        trainer._optimizer_step([batches[i % len(batches)]])
    sync()
    elapsed = time.perf_counter() - start
    result = {'model': model_name, 'batch': batch, 'device': str(trainer.device),
              'precision': str(trainer.autocast_dtype or torch.float32),
              'step_s': elapsed / steps, 'samples_per_s': batch * steps / elapsed}
    if trainer.device.type == 'cuda':
        result['peak_memory_gib'] = torch.cuda.max_memory_allocated() / 2**30
    trainer.close()
    return result


def run_data_benchmark(data: Sequence[str] | None = None, *, workers: Sequence[int] = (0, 1, 2),
                       crops: Sequence[int] = (64, 378), batch: int = 32, batches: int = 12,
                       cache_mb: float = 0.0, image_size: int = 256, tiny_batch: int = 32,
                       gpu_batch: int = 32, echo: Callable[[str], None] = print
                       ) -> dict[str, Any]:
    """
    Run the whole benchmark; ``echo`` gets one human-readable line per measurement.

    ``data``: real LIBERO files / folders / globs (default: two synthetic files of 4 demos).
    Returns the JSON-able results (``loader`` rows, ``tiny_step``, ``gpu_step`` or None).
    """
    results: dict[str, Any] = {'cpu_count': os.cpu_count(), 'threads': torch.get_num_threads(),
                               'torch': torch.__version__, 'loader': []}
    with tempfile.TemporaryDirectory() as tmp:
        paths = list(data) if data else write_synthetic(Path(tmp) / 'data', files=2, demos=4,
                                                        length=60, size=image_size)
        files = scan_files(DataConfig(paths=paths))
        results['images'] = list(files[0].image_shape)
        echo(f'data: {len(files)} files, {sum(len(f.demos) for f in files)} demos, images '
             f'{files[0].image_shape}; batch {batch}; {os.cpu_count()} CPU cores, '
             f'{torch.get_num_threads()} torch threads')
        for crop in crops:
            for count in workers:
                rate = loader_throughput(files, crop, count, batch, batches, cache_mb)
                results['loader'].append({'crop': crop, 'workers': count, 'samples_per_s': rate})
                echo(f'loader  crop {crop:3d}  workers {count:2d}: {rate:8.1f} samples/s')
        tiny = train_step_throughput(TINY_MODEL, paths, tiny_batch, STEPS, 'cpu', tmp)
        results['tiny_step'] = tiny
        echo(f"tiny CLIP-RT+ train step (CPU, batch {tiny['batch']}): "
             f"{tiny['step_s'] * 1e3:.1f} ms = {tiny['samples_per_s']:.1f} samples/s")
        if torch.cuda.is_available():
            big = train_step_throughput(GPU_MODEL, paths, gpu_batch, STEPS, 'cuda', tmp)
            results['gpu_step'] = big
            echo(f'ViT-H-14-378 CLIP-RT+ train step ({torch.cuda.get_device_name()}, '
                 f"{big['precision']}, batch {big['batch']}): {big['step_s'] * 1e3:.1f} ms = "
                 f"{big['samples_per_s']:.1f} samples/s, peak {big['peak_memory_gib']:.1f} GiB")
        else:
            results['gpu_step'] = None
            echo('ViT-H-14-378 CLIP-RT+ GPU step: skipped (no CUDA device)')
    return results
