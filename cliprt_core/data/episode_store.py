"""
Crash-safe storage of recorded episodes as LIBERO task files (one file per instruction).

``EpisodeStore(folder).save(instruction, arrays, attrs)`` writes the episode as its own part
file (``folder/.parts/{stem}/episode_<n>.hdf5``, temporary file + fsync + rename), then rebuilds
``folder/{instruction}_demo.hdf5`` from its previous demos plus the new part and atomically
replaces it, then removes the part. A kill at any moment leaves the task file valid (the
previous or the new version) and the finished episode in a part that the next
:class:`EpisodeStore` on the folder assembles. Each save rewrites the task file (linear in its
size: fine for the tens of episodes of a teleoperation session).

The task files are read by ``cliprt-data inspect`` and ``cliprt-train`` as they are: the file
name is LIBERO's (``{instruction with _}_demo.hdf5``), ``data`` carries ``problem_info`` (the
instruction), and every demo may add the per-step language of
:data:`PHRASES_KEY` / :data:`PRIMITIVE_STEPS_KEY` (see :mod:`cliprt_core.data.phrases`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import re
from typing import Any

from cliprt_core.atomic import clean_stale_temp_files
from cliprt_core.data.libero_hdf5 import DataError, demo_names, instruction_from_filename
from cliprt_core.data.recording import assemble, DemoSource, PART_GROUP, write_part
from cliprt_core.data.staging import fsync_folder, STAGING_FOLDER
import h5py
import numpy as np

__all__ = ['EpisodeStore', 'task_file_name']

_UNSAFE = re.compile(r'[^A-Za-z0-9,.\'-]+')


def task_file_name(instruction: str) -> str:
    """Return ``{instruction}_demo.hdf5`` with spaces as ``_`` (LIBERO's naming)."""
    words = [_UNSAFE.sub('-', w) for w in instruction.split()]
    name = '_'.join(w for w in words if w.strip('-')) or 'episodes'
    return f'{name[:180]}_demo.hdf5'


class EpisodeStore:
    """Save finished episodes into ``folder`` (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike,
                 data_attrs: dict[str, Any] | None = None) -> None:
        """Create ``folder``; assemble episodes a previous process saved only as parts."""
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.data_attrs = dict(data_attrs or {})
        self.recovered = 0
        clean_stale_temp_files(self.folder)
        staging = self.folder / STAGING_FOLDER
        if staging.is_dir():
            for task in sorted(p for p in staging.iterdir() if p.is_dir()):
                clean_stale_temp_files(task)
                if any(task.glob('episode_*.hdf5')):
                    self.recovered += self._assemble(self.folder / f'{task.name}.hdf5', task)

    def file_for(self, instruction: str) -> Path:
        return self.folder / task_file_name(instruction)

    def save(self, instruction: str, arrays: dict[str, np.ndarray],
             attrs: dict[str, Any]) -> tuple[Path, str]:
        """Store one episode of ``instruction``; return (task file, demo name)."""
        final = self.file_for(instruction)
        parts = self.folder / STAGING_FOLDER / final.stem
        parts.mkdir(parents=True, exist_ok=True)
        existing = self._demo_numbers(final)
        pending = [int(p.stem.split('_')[1]) for p in parts.glob('episode_*.hdf5')]
        number = max(existing + pending, default=-1) + 1
        file_attrs = {**self.data_attrs, 'problem_info': json.dumps(
            {'problem_name': 'teleoperation', 'language_instruction': instruction}),
            'macros_image_convention': 'opengl'}
        write_part(parts / f'episode_{number:06d}.hdf5', arrays, attrs,
                   meta={'instruction': instruction}, file_attrs=file_attrs)
        self._assemble(final, parts)
        return final, f'demo_{number}'

    # --- internals -----------------------------------------------------------------------------
    @staticmethod
    def _demo_numbers(final: Path) -> list[int]:
        if not final.exists():
            return []
        try:
            with h5py.File(final, 'r') as handle:
                return [int(n.split('_')[1]) for n in demo_names(handle['data'])]
        except (OSError, KeyError) as exc:
            raise DataError(f'{final}: cannot read the existing task file: {exc}') from None

    def _assemble(self, final: Path, parts: Path) -> int:
        """Rebuild ``final`` from its demos and the parts in ``parts``; return the parts used."""
        files = sorted(parts.glob('episode_*.hdf5'))
        sources = [DemoSource(final, f'data/demo_{n}', f'demo_{n}')
                   for n in self._demo_numbers(final)]
        sources += [DemoSource(p, PART_GROUP, f'demo_{int(p.stem.split("_")[1])}')
                    for p in files]
        with h5py.File(files[-1], 'r') as handle:
            data_attrs = json.loads(handle.attrs['file_attrs'])
        if not instruction_from_filename(final):
            raise DataError(f'{final}: no instruction in the file name')
        assemble(final, sources, data_attrs)
        fsync_folder(self.folder)  # the rename is durable before the parts go
        for path in files:
            path.unlink(missing_ok=True)
        return len(files)
