"""The run directory of an experiment, written by rank 0 only, every file atomically.

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
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

from cliprt_core.atomic import append_jsonl, atomic_write_text, read_jsonl
from cliprt_core.checkpoint.io import atomic_torch_save
from cliprt_core.config import to_dict

log = logging.getLogger(__name__)


class RunDir:
    """Paths and writers of one run (a no-op writer on ranks other than 0)."""

    def __init__(self, path: str | Path, is_main: bool = True, tensorboard: bool = True) -> None:
        self.path = Path(path)
        self.is_main = is_main
        self.checkpoints = self.path / "checkpoints"
        self.metrics_file = self.path / "metrics.jsonl"
        self.val_file = self.path / "val_metrics.jsonl"
        self.config_file = self.path / "config.yaml"
        self.last = self.checkpoints / "last.pt"
        self.best = self.checkpoints / "best.pt"
        self._tensorboard = tensorboard
        self._writer = None

    def has_checkpoint(self) -> bool:
        return self.last.is_file()

    def create(self, config: Any) -> None:
        """Make the folders and write the resolved config."""
        if not self.is_main:
            return
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_file, yaml.safe_dump(to_dict(config), sort_keys=False))

    def writer(self):
        if not (self.is_main and self._tensorboard):
            return None
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: metrics.jsonl still has everything
                log.warning("tensorboard is not installed; writing metrics.jsonl only")
                self._tensorboard = False
                return None
            self._writer = SummaryWriter(log_dir=str(self.path / "tb"))
        return self._writer

    def log_metrics(self, record: dict[str, Any], prefix: str = "train") -> None:
        """Append to metrics.jsonl (or val_metrics.jsonl) and TensorBoard."""
        if not self.is_main:
            return
        append_jsonl(self.metrics_file if prefix == "train" else self.val_file, record)
        writer = self.writer()
        if writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    writer.add_scalar(f"{prefix}/{key}", value, record["step"])
            writer.flush()

    def truncate_after(self, step: int) -> None:
        """Drop records newer than ``step`` (written after the checkpoint a resume starts from)."""
        if not self.is_main:
            return
        for file in (self.metrics_file, self.val_file):
            if not file.exists():
                continue
            records = read_jsonl(file)
            kept = [r for r in records if r.get("step", 0) <= step]
            if len(kept) != len(records):
                atomic_write_text(file, "".join(json.dumps(r) + "\n" for r in kept))

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
