"""
A torch Dataset over LIBERO demonstration HDF5 files, with the targets of a model's head.

A sample is one step ``t`` of one demo. Sample keys are ``(index, epoch)`` pairs (from
:class:`cliprt_core.data.loader.EpochBatchSampler`) or plain ints; the random crop of a sample is
seeded by ``(seed, epoch, index)``, so augmentation does not depend on the worker count, the rank
that loads it, or on resuming.

Each sample is a dict of tensors:

* ``pixels``: uint8 ``[3, S, S]``, upright, cropped and resized (bicubic, like the authors' PIL
  pipeline, whose output is uint8 too); the training step normalises on the device.
* ``instruction_id``: int64 index into :attr:`DemoDataset.instructions`.
* the head's targets (:class:`cliprt_core.heads.SampleTargets`). CLIP-RT+ (``head='chunk'``):
  ``actions`` float32 ``[chunk, 7]`` = ``actions[t:t+chunk]``, steps past the episode end filled
  with 1.1, and ``action_mask`` bool ``[chunk]``. Discrete: ``label`` (primitive class of step t)
  and ``phrase_id`` (the phrase to embed); steps without a label (too small a motion) are not in
  the index. Demos with recorded phrases (teleoperation, :mod:`cliprt_core.data.phrases`) are
  labelled by them instead: one sample per command.
* ``wrist_pixels`` when ``wrist=True`` (for custom models; CLIP-RT itself uses one camera).

HDF5 handles are opened lazily in the process that reads (one per file per DataLoader worker)
and never pickled; nothing here touches CUDA.
"""
from __future__ import annotations

from dataclasses import dataclass
import os
from typing import Sequence

from cliprt_core.actions import LabelingConfig, Vocabulary, VocabularyError
from cliprt_core.data.libero_hdf5 import (camera_key, CAMERA_KEYS, DataError, LiberoFile,
                                          noop_mask, open_hdf5, read_actions)
from cliprt_core.data.phrases import read_phrases
from cliprt_core.heads import CHUNK_PAD_VALUE, head_class
from cliprt_core.lru import LRUCache
from cliprt_core.model.preprocessing import center_crop, preprocess_train, resize_shortest_side
from cliprt_core.orientation import libero_to_upright
import numpy as np
import torch
from torch.utils.data import Dataset

# CHUNK_PAD_VALUE belongs to the chunk head; cliprt_core.data exports it from here.
__all__ = ['CHUNK_PAD_VALUE', 'DemoDataset', 'DemoSteps', 'demo_cache']


@dataclass(frozen=True)
class DemoSteps:
    """One demo as used for training: its file, name and the raw step index of each kept step."""

    file_index: int
    demo: str
    steps: np.ndarray  # int64 raw step indices (all steps, or the non-no-op ones)
    action_offset: int  # first row of this episode in DemoDataset.actions


def demo_cache(max_bytes: int) -> LRUCache[tuple, np.ndarray]:
    """Return a bounded LRU of whole-demo image arrays (per process: each worker has its own)."""
    return LRUCache(max(int(max_bytes), 0), cost=lambda images: images.nbytes)


class DemoDataset(Dataset):
    """
    Training samples from validated LIBERO files (see module docstring).

    ``head`` names the model's head (``cliprt_core.heads.HEADS``); ``chunk_size`` (chunk heads),
    ``vocabulary`` and ``labeling`` (discrete head; LIBERO units by default) parametrise its
    targets.
    """

    def __init__(self, files: Sequence[LiberoFile], *, image_size: int, head: str = 'chunk',
                 chunk_size: int = 8, camera: str = 'agentview', wrist: bool = False,
                 augment: bool = True, crop_scale: tuple[float, float] = (0.9, 1.0),
                 seed: int = 0, skip_noops: bool = False, vocabulary: Vocabulary | None = None,
                 labeling: LabelingConfig | None = None, cache_mb: float = 0,
                 demos: Sequence[tuple[int, str]] | None = None) -> None:
        self.targets = head_class(head).sample_targets(
            chunk_size=chunk_size, vocabulary=vocabulary, labeling=labeling)
        self.files = list(files)
        self.image_size = int(image_size)
        self.head = head
        self.camera_key = camera_key(camera)
        self.wrist = bool(wrist)
        self.augment = bool(augment)
        self.crop_scale = tuple(float(s) for s in crop_scale)
        self.seed = int(seed)
        self.cache_bytes = int(cache_mb * 2**20)
        self.instructions = sorted({f.instruction for f in self.files})
        instruction_ids = {text: i for i, text in enumerate(self.instructions)}
        self._file_instruction = np.array([instruction_ids[f.instruction] for f in self.files])
        selected = demos if demos is not None else [
            (i, d.name) for i, f in enumerate(self.files) for d in f.demos]
        by_file: dict[int, list[str]] = {}
        for file_index, name in selected:
            by_file.setdefault(file_index, []).append(name)

        episodes, action_rows, index_rows, labels = [], [], [], []
        offset = 0
        for file_index in sorted(by_file):
            path = self.files[file_index].path
            loaded = read_actions(path, by_file[file_index])
            recorded = read_phrases(path, by_file[file_index])
            for name in by_file[file_index]:
                raw = loaded[name]
                steps = np.arange(len(raw), dtype=np.int64)
                if skip_noops:
                    steps = steps[~noop_mask(raw)]
                if len(steps) == 0:
                    continue
                kept = raw[steps]
                episode = DemoSteps(file_index, name, steps, offset)
                positions = np.arange(len(steps), dtype=np.int64)
                step_labels = self._labels(path, name, kept, steps, recorded.get(name))
                if step_labels is not None:
                    positions = positions[step_labels >= 0]
                    labels.append(step_labels[positions])
                ep_id = len(episodes)
                episodes.append(episode)
                action_rows.append(kept)
                index_rows.append(np.stack([np.full_like(positions, ep_id), positions], axis=1))
                offset += len(kept)
        if not index_rows or sum(len(r) for r in index_rows) == 0:
            raise DataError(f'no training {self.targets.description} in {len(self.files)} file(s) '
                            f"({', '.join(str(f.path) for f in self.files[:3])}...)")
        self.episodes = episodes
        self.actions = np.concatenate(action_rows).astype(np.float32)
        self.index = np.concatenate(index_rows)  # [N, 2]: (episode, position within episode)
        self.labels = np.concatenate(labels) if labels else None
        self._handles: dict[int, object] = {}
        self._datasets: dict[tuple[int, str, str], object] = {}
        self._pid: int | None = None
        self._cache: LRUCache[tuple, np.ndarray] | None = None

    def _labels(self, path, name: str, kept: np.ndarray, steps: np.ndarray,
                recorded: tuple[list[str], np.ndarray] | None) -> np.ndarray | None:
        """Labels of a demo's kept steps: from its recorded phrases if it has them."""
        if recorded is not None:
            phrases, primitive_steps = recorded
            try:
                labels = self.targets.phrase_labels(phrases, primitive_steps)
            except VocabularyError as exc:
                raise DataError(f"{path}: 'data/{name}': recorded {exc}") from None
            if labels is not None:
                return labels[steps]
        return self.targets.step_labels(kept)

    # --- pickling: handles and caches never travel to workers --------------------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state['_handles'], state['_datasets'], state['_pid'], state['_cache'] = {}, {}, None, None
        return state

    def __len__(self) -> int:
        return len(self.index)

    @property
    def num_demos(self) -> int:
        return len(self.episodes)

    def close(self) -> None:
        """Close this process's HDF5 handles (they reopen on the next access)."""
        self._datasets.clear()
        for handle in self._handles.values():
            try:
                handle.close()
            except Exception:  # noqa: BLE001 - closing a broken handle must not raise
                pass
        self._handles.clear()

    # --- reading -----------------------------------------------------------------------------
    def _dataset(self, episode: DemoSteps, key: str):
        """
        Return the h5py dataset of a demo's camera.

        The h5py dataset of a demo's camera, looked up once per process (a lookup by name
        costs ~0.1 ms, more than reading one frame).
        """
        pid = os.getpid()
        if self._pid != pid:  # first access in this process (or a fork inherited stale handles)
            self._handles, self._datasets, self._pid = {}, {}, pid
            self._cache = demo_cache(self.cache_bytes) if self.cache_bytes > 0 else None
        dataset_key = (episode.file_index, episode.demo, key)
        dataset = self._datasets.get(dataset_key)
        if dataset is None:
            handle = self._handles.get(episode.file_index)
            if handle is None:
                path = self.files[episode.file_index].path
                handle = self._handles[episode.file_index] = open_hdf5(path)
            dataset = self._datasets[dataset_key] = handle['data'][episode.demo]['obs'][key]
        return dataset

    def _frame(self, episode: DemoSteps, key: str, raw_step: int) -> np.ndarray:
        info = self.files[episode.file_index]
        try:
            dataset = self._dataset(episode, key)
            if self._cache is not None:
                cache_key = (episode.file_index, episode.demo, key)
                frames = self._cache.get(cache_key)
                if frames is None:
                    frames = dataset[()]
                    self._cache.put(cache_key, frames)
                frame = frames[raw_step]
            else:
                frame = dataset[raw_step]
        except (OSError, RuntimeError, KeyError) as exc:
            raise DataError(f"{info.path}: cannot read 'data/{episode.demo}/obs/{key}'"
                            f'[{raw_step}] (corrupted file?): {exc}') from exc
        return libero_to_upright(frame) if info.upside_down else np.ascontiguousarray(frame)

    def _pixels(self, frame: np.ndarray, generator: torch.Generator | None) -> torch.Tensor:
        image = torch.from_numpy(frame)
        if self.augment:
            pixels = preprocess_train(image, self.image_size, generator, scale=self.crop_scale)
        else:
            height, width = frame.shape[:2]
            if height == width == self.image_size:
                return image.permute(2, 0, 1).contiguous()
            pixels = image.permute(2, 0, 1)[None].float().div_(255.0)
            pixels = center_crop(resize_shortest_side(pixels, self.image_size), self.image_size)[0]
        return pixels.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)

    def sample_seed(self, index: int, epoch: int) -> int:
        """Return the augmentation seed of sample ``index`` in ``epoch`` (pure function)."""
        return int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0])

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        index, epoch = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (int(key), 0)
        if not 0 <= index < len(self.index):
            raise IndexError(f'sample {index} out of range ({len(self.index)})')
        ep_id, position = self.index[index]
        episode = self.episodes[ep_id]
        raw_step = int(episode.steps[position])
        generator = None
        if self.augment:
            generator = torch.Generator().manual_seed(self.sample_seed(index, epoch))
        sample = {
            'pixels': self._pixels(self._frame(episode, self.camera_key, raw_step), generator),
            'instruction_id': torch.tensor(self._file_instruction[episode.file_index]),
            'index': torch.tensor(index),
        }
        if self.wrist:
            wrist = self._frame(episode, CAMERA_KEYS['wrist'], raw_step)
            sample['wrist_pixels'] = self._pixels(wrist, generator)
        label = int(self.labels[index]) if self.labels is not None else -1
        sample.update(self.targets(self.episode_actions(episode), int(position), label))
        return sample

    def episode_actions(self, episode: DemoSteps) -> np.ndarray:
        """Return the kept actions ``[T, A]`` of an episode (a view, float32)."""
        start = episode.action_offset
        return self.actions[start:start + len(episode.steps)]
