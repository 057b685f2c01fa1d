"""
Samplers, the train/val split by demo, and DataLoader construction.

Data order is a pure function of ``(seed, epoch)``: epoch ``e`` is the permutation
``numpy.random.default_rng([seed, e]).permutation(N)``, cut into global batches (the incomplete
last one is dropped). Optimizer step ``s`` of an epoch consumes global batch ``s``; with ``W``
ranks and ``A`` accumulation micro-batches of ``m`` samples (``G = W * A * m``), rank ``r``'s
micro-batch ``a`` is ``batch[(a * W + r) * m : (a * W + r + 1) * m]``, so the ``W`` micro-batches
of one accumulation round together are a contiguous slice of the global batch. Resuming at
(epoch, step) therefore skips exactly the consumed batches, and one process with ``A = W``
sees the same samples as ``W`` processes.
"""
from __future__ import annotations

from contextlib import contextmanager
import os
import random
import signal
import threading
from typing import Iterator, Sequence

from cliprt_core.data.libero_hdf5 import LiberoFile
from cliprt_core.signals import STOP_SIGNALS
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields this rank's micro-batches of ``(index, epoch)`` keys, from a settable position."""

    def __init__(self, num_samples: int, global_batch_size: int, micro_batch_size: int,
                 world_size: int = 1, rank: int = 0, seed: int = 0) -> None:
        if global_batch_size % (micro_batch_size * world_size):
            raise ValueError(f'global batch {global_batch_size} is not a multiple of '
                             f'micro batch {micro_batch_size} x {world_size} ranks')
        if num_samples < global_batch_size:
            raise ValueError(f'the training set has {num_samples} samples, fewer than one global '
                             f'batch ({global_batch_size}); lower train.global_batch_size')
        self.num_samples = num_samples
        self.global_batch_size = global_batch_size
        self.micro_batch_size = micro_batch_size
        self.world_size = world_size
        self.rank = rank
        self.seed = seed
        self.accumulation = global_batch_size // (micro_batch_size * world_size)
        self.steps_per_epoch = num_samples // global_batch_size
        self.epoch = 0
        self.start_step = 0

    def set_position(self, epoch: int, step_in_epoch: int = 0) -> None:
        """Start the next iteration at optimizer step ``step_in_epoch`` of ``epoch``."""
        if not 0 <= step_in_epoch < self.steps_per_epoch:
            raise ValueError(f'step {step_in_epoch} outside the epoch '
                             f'({self.steps_per_epoch} steps)')
        self.epoch, self.start_step = int(epoch), int(step_in_epoch)

    def permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.accumulation

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, perm = self.epoch, self.permutation(self.epoch)
        m, w = self.micro_batch_size, self.world_size
        for step in range(self.start_step, self.steps_per_epoch):
            batch = perm[step * self.global_batch_size:(step + 1) * self.global_batch_size]
            for a in range(self.accumulation):
                start = (a * w + self.rank) * m
                yield [(int(i), epoch) for i in batch[start:start + m]]


class ShardedEvalSampler(Sampler[list[int]]):
    """Sequential evaluation batches of this rank's shard (``rank::world_size``)."""

    def __init__(self, num_samples: int, batch_size: int, world_size: int = 1, rank: int = 0,
                 max_batches: int | None = None) -> None:
        self.indices = list(range(rank, num_samples, world_size))
        self.batch_size = batch_size
        self.max_batches = max_batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = [self.indices[i:i + self.batch_size]
                   for i in range(0, len(self.indices), self.batch_size)]
        return iter(batches[: self.max_batches] if self.max_batches else batches)

    def __len__(self) -> int:
        count = -(-len(self.indices) // self.batch_size)
        return min(count, self.max_batches) if self.max_batches else count


def split_demos(files: Sequence[LiberoFile], val_fraction: float, seed: int = 0,
                max_demos_per_file: int | None = None
                ) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """
    Return a train / validation split by demo, per file (every task keeps training demos).

    Each file contributes ``round(val_fraction * n)`` validation demos (at least one when
    ``val_fraction > 0`` and the file has two or more), drawn with ``seed``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f'val_fraction must be in [0, 1), got {val_fraction}')
    train, val = [], []
    for file_index, info in enumerate(files):
        names = [d.name for d in info.demos][: max_demos_per_file or None]
        count = 0
        if val_fraction > 0 and len(names) >= 2:
            count = min(max(1, round(val_fraction * len(names))), len(names) - 1)
        order = np.random.default_rng([seed, file_index]).permutation(len(names))
        chosen = {names[i] for i in order[:count]}
        for name in names:
            (val if name in chosen else train).append((file_index, name))
    return train, val


def ignore_stop_signals() -> None:
    """
    Ignore stop signals sent to the process group (in a worker).

    In a worker: ignore SIGTERM / SIGINT sent to the process group (systemd, SLURM,
    ``kill -- -PGID``, Ctrl-C). They are the main process's to handle: it stops at a step
    boundary and shuts the workers down; a worker killed by them would make it fail instead.

    SIGINT is ignored. SIGTERM stays blocked and one thread takes it: from the parent process
    (multiprocessing's ``terminate()`` of daemonic workers at exit) it ends the worker, as
    torch's own worker handler does; from anyone else it is dropped.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    threading.Thread(target=_end_on_parent_sigterm, name='cliprt-sigterm', daemon=True).start()


def _end_on_parent_sigterm() -> None:
    while True:
        info = signal.sigwaitinfo({signal.SIGTERM})
        if info.si_pid == os.getppid():
            os._exit(0)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """
    Block SIGTERM / SIGINT in this thread meanwhile.

    Workers forked here inherit the block, so none can die of a signal before
    :func:`ignore_stop_signals` runs in it; a signal for this process is delivered when the block
    is lifted (or at once to another thread).
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def worker_deaths_ignored() -> Iterator[None]:
    """
    Suspend torch's SIGCHLD check (it raises in the main process when a worker died), e.g.

    while saving progress; the next fetch from the loader still reports a dead worker.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGCHLD, previous)


class _Loader(DataLoader):
    """A DataLoader whose worker processes start with the stop signals deferred."""

    def __iter__(self):
        with signals_deferred():
            return super().__iter__()

    def shutdown_workers(self) -> None:
        """
        Stop the worker processes now; the next iteration starts new ones.

        Otherwise persistent workers stop when the iterator is garbage-collected, and when that
        happens in a collection of reference cycles the index queues may be finalised first:
        the stop message never reaches the workers and torch waits out its 5 s join timeout
        per worker before killing them.
        """
        iterator, self._iterator = self._iterator, None  # DataLoader's persistent iterator
        if iterator is not None and hasattr(iterator, '_shutdown_workers'):
            iterator._shutdown_workers()


def worker_init(worker_id: int) -> None:
    """
    Set up a DataLoader worker.

    DataLoader worker setup: stop signals ignored, one intra-op thread, numpy/python RNGs
    seeded per worker.
    """
    ignore_stop_signals()
    torch.set_num_threads(1)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(dataset, batch_sampler: Sampler, num_workers: int = 0, pin_memory: bool = False,
                prefetch_factor: int = 2, persistent: bool = True) -> DataLoader:
    """Build a DataLoader that decodes and crops in ``num_workers`` processes (0: here)."""
    kwargs = {}
    if num_workers > 0:
        kwargs = {'prefetch_factor': prefetch_factor, 'persistent_workers': persistent,
                  'worker_init_fn': worker_init}
    return _Loader(dataset, batch_sampler=batch_sampler, num_workers=num_workers,
                   pin_memory=pin_memory, **kwargs)
