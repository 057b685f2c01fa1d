"""
The run directory of an experiment, written by rank 0 only, every file atomically.

::

    runs/<run_name>/
      config.yaml          the resolved TrainConfig (what --resume reloads)
      metrics.jsonl        one JSON object per log step: step, loss, lr, samples_per_s, ...
      val_metrics.jsonl    one per validation pass: step, val_loss, ...
      tb/                  TensorBoard events (train/*, val/*)
      checkpoints/
        last.pt            model + optimizer + scheduler + step + RNG + data position (resume)
        step_000500.pt     every log.save_every steps (model + metadata, for evaluation)
        best.pt            lowest validation loss so far (model + metadata)

Every checkpoint is a cliprt checkpoint: ``cliprt_core.checkpoint.load_model`` and
``Policy.from_checkpoint`` load any of them.

One folder holds one consistent history. A run that starts fresh in a folder holding files of
an earlier run that never saved ``last.pt`` (it crashed early) moves them into
``previous-<UTC time>/`` first; a folder with ``last.pt`` is refused unless resumed
(the trainer). A resumed run drops metrics newer than the checkpoint it resumes from.
Temporary files of writes killed mid-way are removed when a run starts or resumes.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
from pathlib import Path
from typing import Any

from cliprt_core.atomic import (append_jsonl, atomic_write_text, clean_stale_temp_files,
                                repair_jsonl)
from cliprt_core.checkpoint.torch_files import atomic_torch_save
from cliprt_core.config import to_dict
import yaml

log = logging.getLogger(__name__)


class RunDir:
    """Paths and writers of one run (a no-op writer on ranks other than 0)."""

    def __init__(self, path: str | Path, is_main: bool = True, tensorboard: bool = True) -> None:
        self.path = Path(path)
        self.is_main = is_main
        self.checkpoints = self.path / 'checkpoints'
        self.metrics_file = self.path / 'metrics.jsonl'
        self.val_file = self.path / 'val_metrics.jsonl'
        self.config_file = self.path / 'config.yaml'
        self.last = self.checkpoints / 'last.pt'
        self.best = self.checkpoints / 'best.pt'
        self._tensorboard = tensorboard
        self._writer = None

    def has_checkpoint(self) -> bool:
        return self.last.is_file()

    def create(self, config: Any, fresh: bool = True) -> None:
        """
        Make the folders and write the resolved config.

        Make the folders and write the resolved config (after removing stale temporary files
        and, for a ``fresh`` run, moving an earlier run's leftovers aside).
        """
        if not self.is_main:
            return
        for folder in (self.path, self.checkpoints):
            clean_stale_temp_files(folder)
        if fresh:
            self.archive_leftovers()
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_file, yaml.safe_dump(to_dict(config), sort_keys=False))

    def _own_files(self) -> list[Path]:
        """List what the trainer writes into the run folder (it never touches other files)."""
        names = [self.config_file, self.metrics_file, self.val_file, self.checkpoints,
                 self.path / 'tb', self.metrics_file.with_suffix('.corrupt.jsonl'),
                 self.val_file.with_suffix('.corrupt.jsonl')]
        return [p for p in names if p.exists()]

    def archive_leftovers(self) -> Path | None:
        """
        Move the files of an earlier run without ``last.pt`` into ``previous-<UTC time>/``.

        A folder holding only its config.yaml (a run that failed before its first step) is just
        reused. Returns the archive folder, if one was made.
        """
        if self.has_checkpoint():
            return None
        own = self._own_files()
        if all(p == self.config_file or (p.is_dir() and not any(p.iterdir())) for p in own):
            return None
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
        archive, number = self.path / f'previous-{stamp}', 1
        while archive.exists():
            number += 1
            archive = self.path / f'previous-{stamp}-{number}'
        archive.mkdir()
        for item in own:
            item.rename(archive / item.name)
        log.warning('%s held files of an earlier run that saved no checkpoint; moved them to %s '
                    'and starting afresh', self.path, archive)
        return archive

    def writer(self):
        if not (self.is_main and self._tensorboard):
            return None
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: metrics.jsonl still has everything
                log.warning('tensorboard is not installed; writing metrics.jsonl only')
                self._tensorboard = False
                return None
            self._writer = SummaryWriter(log_dir=str(self.path / 'tb'))
        return self._writer

    def log_metrics(self, record: dict[str, Any], prefix: str = 'train') -> None:
        """Append to metrics.jsonl (or val_metrics.jsonl) and TensorBoard."""
        if not self.is_main:
            return
        append_jsonl(self.metrics_file if prefix == 'train' else self.val_file, record)
        writer = self.writer()
        if writer is not None:
            for key, value in record.items():
                if key != 'step' and isinstance(value, (int, float)):
                    writer.add_scalar(f'{prefix}/{key}', value, record['step'])
            writer.flush()

    def truncate_after(self, step: int) -> None:
        """
        Drop records newer than ``step``.

        Drop records newer than ``step`` (written after the checkpoint a resume starts from);
        torn or corrupted lines move to ``<name>.corrupt.jsonl``.
        """
        if not self.is_main:
            return
        for file in (self.metrics_file, self.val_file):
            if not file.exists():
                continue
            records, bad = repair_jsonl(file, file.with_suffix('.corrupt.jsonl'),
                                        valid=lambda r: isinstance(r.get('step'), int))
            if bad:
                log.warning('%s: moved %d torn or corrupted line(s) to %s', file, len(bad),
                            file.with_suffix('.corrupt.jsonl').name)
            kept = [r for r in records if r['step'] <= step]
            if len(kept) != len(records):
                atomic_write_text(file, ''.join(json.dumps(r) + '\n' for r in kept))

    def save(self, payload: dict[str, Any], name: str) -> Path | None:
        """Atomically write ``checkpoints/<name>``."""
        if not self.is_main:
            return None
        path = self.checkpoints / name
        atomic_torch_save(payload, path)
        return path

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
