"""
The staging folder of a collection: one part file per finished demo, an attempt log, assembly.

For a task whose final file is ``DIR/{task}_demo.hdf5`` the staging folder is
``DIR/.parts/{task}_demo/``:

``init_<i>.hdf5``
    one successful demo (init state ``i``), written atomically by the process that ran it;
    removed once the final file holding it has been written.
``attempts.jsonl``
    one fsynced line per finished attempt (success or not), written by the main process. A
    failed attempt (no success within the horizon) is not tried again unless asked.
``settings.json``
    what the demos were recorded with (layout, camera size, horizon); a rerun with other
    settings is refused instead of mixing demos.

An init state is finished when its part file exists, the final file holds a demo of it
(attribute ``init_state_index``) or its last attempt failed. The final file is rebuilt from the
part files and its own previous demos and atomically replaced, so it is always valid.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cliprt_core.atomic import append_jsonl, atomic_write_json, clean_stale_temp_files, scan_jsonl
from cliprt_core.data.libero_hdf5 import DataError, demo_names, open_hdf5
from cliprt_core.data.libero_tasks import TaskRef
from cliprt_core.data.recording import assemble, DemoSource, PART_GROUP
import h5py

STAGING_FOLDER = '.parts'


class TaskStaging:
    """Paths and resume state of one task's collection under an output folder."""

    def __init__(self, output: str | os.PathLike, task: TaskRef) -> None:
        self.task = task
        self.output = Path(output)
        self.final = self.output / task.file_name
        self.folder = self.output / STAGING_FOLDER / Path(task.file_name).stem
        self.log = self.folder / 'attempts.jsonl'
        self.settings_file = self.folder / 'settings.json'

    def part(self, init_index: int) -> Path:
        return self.folder / f'init_{int(init_index)}.hdf5'

    def prepare(self, settings: dict[str, Any]) -> None:
        """Create the folder, or check that it was made with the same ``settings``."""
        if self.settings_file.exists():
            previous = json.loads(self.settings_file.read_text())
            changed = [k for k in sorted(set(previous) | set(settings))
                       if previous.get(k) != settings.get(k)]
            if changed:
                diff = ', '.join(f'{k}={previous.get(k)!r} (now {settings.get(k)!r})'
                                 for k in changed)
                raise DataError(f'{self.final} was collected with other settings: {diff}; '
                                f'rerun with the same settings or choose another --output')
        elif self.final.exists():
            raise DataError(f'{self.final} exists and was not written by cliprt-data collect '
                            f'(no {self.settings_file}); choose another --output')
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.settings_file, settings)
        clean_stale_temp_files(self.folder)
        clean_stale_temp_files(self.output)

    def parts(self) -> dict[int, Path]:
        """Return init index -> part file, for every finished demo not yet assembled."""
        found = {}
        for path in self.folder.glob('init_*.hdf5'):
            try:
                found[int(path.stem.split('_', 1)[1])] = path
            except ValueError:
                continue
        return dict(sorted(found.items()))

    def final_demos(self) -> dict[int, str]:
        """Return init index -> demo name, for the demos already in the final file."""
        if not self.final.exists():
            return {}
        out = {}
        with open_hdf5(self.final) as handle:
            data = handle['data']
            for name in demo_names(data):
                index = int(data[name].attrs.get('init_state_index', -1))
                if index >= 0:
                    out[index] = name
        return out

    def attempts(self) -> list[dict[str, Any]]:
        """Return every attempt of the log (torn or bad lines are skipped)."""
        records, _ = scan_jsonl(self.log, lambda r: isinstance(r, dict) and 'init_state' in r)
        return records

    def failed(self) -> set[int]:
        """Return the init states whose last attempt ran without success (errors excluded)."""
        last: dict[int, dict[str, Any]] = {}
        for record in self.attempts():
            last[int(record['init_state'])] = record
        return {i for i, r in last.items() if not r.get('success') and not r.get('error')}

    def finished(self, retry_failed: bool = False) -> set[int]:
        """Return the init states a rerun skips."""
        done = set(self.parts()) | set(self.final_demos())
        return done if retry_failed else done | self.failed()

    def log_attempt(self, record: dict[str, Any]) -> None:
        append_jsonl(self.log, record)

    def assemble(self) -> int | None:
        """
        Rebuild the final file from the part files and its previous demos; the number of demos.

        Returns None when there is no new part (the final file, if any, is already complete).
        The part files are removed once the new final file is on disk.
        """
        parts = self.parts()
        if not parts:
            return None
        sources = {i: DemoSource(self.final, f'data/{name}', f'demo_{i}')
                   for i, name in self.final_demos().items()}
        sources.update({i: DemoSource(p, PART_GROUP, f'demo_{i}') for i, p in parts.items()})
        with h5py.File(next(iter(parts.values())), 'r') as handle:
            text = handle.attrs.get('file_attrs')
        data_attrs = json.loads(text) if text else None
        assemble(self.final, [sources[i] for i in sorted(sources)], data_attrs)
        fsync_folder(self.output)
        for path in parts.values():
            path.unlink(missing_ok=True)
        return len(sources)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable before the files it replaces are deleted."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
