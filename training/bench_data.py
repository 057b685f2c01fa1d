#!/usr/bin/env python3
"""Data-loader benchmark: can the HDF5 pipeline feed the trainer?

Measures, on the same machine and run:

1. loader samples/s (decode + upright flip + RandomResizedCrop + collate) for 0, 1, 2, ...
   DataLoader workers, at the tiny model's crop size (64) and at CLIP-RT+'s (378), from 256x256
   LIBERO images (OpenVLA no_noops layout), optionally with the in-RAM demo cache;
2. the tiny model's training step (forward + backward + AdamW, the trainer's own code) in
   samples/s on this machine, the number the loader must beat;
3. on CUDA only: ViT-H-14-378 CLIP-RT+ training step (bf16 autocast, fused AdamW) samples/s and
   peak GPU memory, at micro batch 32 (the authors' per-GPU batch); skipped (and said so) on CPU.

Synthetic files in the exact LIBERO layout are written to a temporary folder unless ``--data``
names real ones. Examples::

    python training/bench_data.py                       # CPU: workers 0 1 2
    python training/bench_data.py --workers 0 4 8 16 --data 'data/libero_spatial_no_noops/*.hdf5'
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from cliprt_core.data import (DataConfig, EpochBatchSampler, build_datasets,  # noqa: E402
                              make_loader, scan_files)


def write_synthetic(folder: Path, files: int, demos: int, length: int, size: int) -> list[str]:
    sys.path.insert(0, str(ROOT / "test"))
    from libero_hdf5 import libero_file_name, write_libero_hdf5

    paths = []
    for i in range(files):
        task = f"benchmark task number {i}"
        info = write_libero_hdf5(folder / libero_file_name(task), num_demos=demos, length=length,
                                 image_size=size, layout="no_noops", instruction=task, seed=i)
        paths.append(str(info.path))
    return paths


def bench_loader(files, crop: int, workers: int, batch: int, batches: int, cache_mb: float,
                 augment: bool = True) -> float:
    cfg = DataConfig(paths=[str(f.path) for f in files], augment=augment, cache_mb=cache_mb)
    dataset, _ = build_datasets(cfg, image_size=crop, head="chunk", files=files)
    sampler = EpochBatchSampler(len(dataset), batch, batch, seed=0)
    loader = make_loader(dataset, sampler, num_workers=workers, prefetch_factor=4,
                         persistent=False)
    iterator = iter(loader)
    next(iterator)  # worker start-up and first handle opens are not throughput
    count, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            count += len(next(iterator)["pixels"])
        except StopIteration:
            sampler.set_position(sampler.epoch + 1)
            iterator = iter(loader)
    elapsed = time.perf_counter() - start
    del iterator, loader
    return count / elapsed


def bench_step(model_name: str, data_paths: list[str], batch: int, steps: int, device: str,
               out_dir: str) -> dict:
    """The trainer's optimizer step (data excluded) on preloaded batches."""
    from cliprt_core.train import Trainer, load_train_config

    overrides = [f"model={model_name}", f"data.paths=[{','.join(data_paths)}]",
                 f"log.output_dir={out_dir}", f"log.run_name=bench-{model_name}",
                 "log.progress=false", "log.tensorboard=false", f"train.global_batch_size={batch}",
                 f"train.device={device}", "data.num_workers=0", "optim.warmup_steps=1"]
    trainer = Trainer(load_train_config("tiny", overrides))
    batches = [trainer._next_batch() for _ in range(min(4, trainer.sampler.steps_per_epoch))]
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    trainer._optimizer_step([batches[0]])  # warm-up (allocations, kernels)
    sync()
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for i in range(steps):
        trainer._optimizer_step([batches[i % len(batches)]])
    sync()
    elapsed = time.perf_counter() - start
    result = {"model": model_name, "batch": batch, "device": str(trainer.device),
              "precision": str(trainer.autocast_dtype or torch.float32),
              "step_s": elapsed / steps, "samples_per_s": batch * steps / elapsed}
    if trainer.device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    trainer.close()
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="*", help="real LIBERO files / folders / globs")
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--crops", nargs="+", type=int, default=[64, 378])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=12, help="timed batches per setting")
    parser.add_argument("--cache-mb", type=float, default=0.0)
    parser.add_argument("--image-size", type=int, default=256, help="synthetic image size")
    parser.add_argument("--tiny-batch", type=int, default=32)
    parser.add_argument("--gpu-batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of this process (default: torch's; use 1 on a busy "
                             "shared machine, where spinning OpenMP threads distort timings)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    results: dict = {"cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
                     "torch": torch.__version__, "loader": []}
    with tempfile.TemporaryDirectory() as tmp:
        paths = args.data or write_synthetic(Path(tmp) / "data", files=2, demos=4, length=60,
                                             size=args.image_size)
        files = scan_files(DataConfig(paths=paths))
        results["images"] = list(files[0].image_shape)
        print(f"data: {len(files)} files, {sum(len(f.demos) for f in files)} demos, images "
              f"{files[0].image_shape}; batch {args.batch}; {os.cpu_count()} CPU cores, "
              f"{torch.get_num_threads()} torch threads")
        for crop in args.crops:
            for workers in args.workers:
                rate = bench_loader(files, crop, workers, args.batch, args.batches, args.cache_mb)
                results["loader"].append({"crop": crop, "workers": workers, "samples_per_s": rate})
                print(f"loader  crop {crop:3d}  workers {workers:2d}: {rate:8.1f} samples/s")
        tiny = bench_step("cliprt-tiny", paths, args.tiny_batch, 10, "cpu", tmp)
        results["tiny_step"] = tiny
        print(f"tiny CLIP-RT+ train step (CPU, batch {tiny['batch']}): "
              f"{tiny['step_s'] * 1e3:.1f} ms = {tiny['samples_per_s']:.1f} samples/s")
        if torch.cuda.is_available():
            big = bench_step("cliprt-plus-vit-h-14-378", paths, args.gpu_batch, 10, "cuda", tmp)
            results["gpu_step"] = big
            print(f"ViT-H-14-378 CLIP-RT+ train step ({torch.cuda.get_device_name()}, "
                  f"{big['precision']}, batch {big['batch']}): {big['step_s'] * 1e3:.1f} ms = "
                  f"{big['samples_per_s']:.1f} samples/s, peak {big['peak_memory_gib']:.1f} GiB")
        else:
            results["gpu_step"] = None
            print("ViT-H-14-378 CLIP-RT+ GPU step: skipped (no CUDA device)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
