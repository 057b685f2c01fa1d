"""
Which LIBERO task a demonstration file belongs to (for replaying and regenerating it).

A file names its task in one of these ways, tried in this order:

1. ``data`` attributes ``suite`` and ``task_id`` (original-layout files of ``cliprt-data
   collect``);
2. ``data.attrs['bddl_file_name']`` (LIBERO's own files: a path on the authors' machine, matched
   by its last two parts ``{suite folder}/{task}.bddl``, then by the file name alone);
3. the file name ``{task.name}_demo.hdf5`` (LIBERO's and OpenVLA's naming; no_noops files carry
   no attributes at all).

Only the five evaluation suites are searched; LIBERO task names are unique across them.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
import functools
import io
import os
from pathlib import Path, PurePosixPath

from cliprt_core.data.libero_hdf5 import DataError, open_hdf5
from cliprt_core.sim import protocol

DEMO_SUFFIX = '_demo.hdf5'


@dataclass(frozen=True)
class TaskRef:
    """One LIBERO task: where it is in the benchmark and its files' names."""

    suite: str
    task_id: int
    name: str  # task.name, e.g. KITCHEN_SCENE3_turn_on_the_stove
    language: str  # task.language: the instruction policies are given
    bddl: str  # {problem folder}/{bddl file}, e.g. libero_goal/put_the_bowl_on_the_plate.bddl

    @property
    def file_name(self) -> str:
        """Return LIBERO's demonstration file name, ``{task.name}_demo.hdf5``."""
        return f'{self.name}{DEMO_SUFFIX}'

    @property
    def label(self) -> str:
        return f'{self.suite} task {self.task_id}'


def attr_text(value) -> str:
    """Return an HDF5 string attribute as ``str`` (h5py gives ``bytes`` or ``str``)."""
    return value.decode('utf-8') if isinstance(value, bytes) else str(value)


@functools.lru_cache(maxsize=1)
def all_tasks() -> tuple[TaskRef, ...]:
    """Every task of the evaluation suites (imports LIBERO; ImportError without it)."""
    from cliprt_core.sim.libero_setup import import_libero

    benchmarks = import_libero().benchmark.get_benchmark_dict()
    refs = []
    for suite in protocol.SUITES:
        with contextlib.redirect_stdout(io.StringIO()):  # LIBERO prints a task-order banner
            bench = benchmarks[suite]()
        for task_id in range(bench.n_tasks):
            task = bench.get_task(task_id)
            refs.append(TaskRef(suite, task_id, task.name, task.language,
                                f'{task.problem_folder}/{task.bddl_file}'))
    return tuple(refs)


def task_ref(suite: str, task_id: int) -> TaskRef:
    """Return the task ``task_id`` of ``suite``; DataError if there is none."""
    if suite not in protocol.SUITES:
        raise DataError(f'unknown LIBERO suite {suite!r}; expected one of '
                        f"{', '.join(protocol.SUITES)}")
    n_tasks = protocol.NUM_TASKS[suite]
    if not 0 <= int(task_id) < n_tasks:
        raise DataError(f'task {task_id} out of range for {suite} (0..{n_tasks - 1})')
    return next(t for t in all_tasks() if t.suite == suite and t.task_id == int(task_id))


def task_by_bddl(bddl_file_name: str) -> TaskRef | None:
    """Return the task whose BDDL file ``bddl_file_name`` names, or None."""
    parts = PurePosixPath(bddl_file_name.replace('\\', '/')).parts
    if not parts:
        return None
    tail = '/'.join(parts[-2:])
    exact = [t for t in all_tasks() if t.bddl == tail]
    if len(exact) == 1:
        return exact[0]
    by_name = [t for t in all_tasks() if PurePosixPath(t.bddl).name == parts[-1]]
    return by_name[0] if len(by_name) == 1 else None


def task_by_file_name(path: str | os.PathLike) -> TaskRef | None:
    """Return the task of a file named ``{task.name}_demo.hdf5``, or None."""
    name = Path(path).name
    if not name.endswith(DEMO_SUFFIX):
        return None
    stem = name[:-len(DEMO_SUFFIX)]
    matches = [t for t in all_tasks() if t.name == stem]
    return matches[0] if len(matches) == 1 else None


def find_task(path: str | os.PathLike) -> TaskRef:
    """Return the task of a demonstration file (see the module docstring); DataError if unknown."""
    with open_hdf5(path) as handle:
        attrs = dict(handle['data'].attrs) if 'data' in handle else {}
    if 'suite' in attrs and 'task_id' in attrs:
        return task_ref(attr_text(attrs['suite']), int(attrs['task_id']))
    if 'bddl_file_name' in attrs:
        ref = task_by_bddl(attr_text(attrs['bddl_file_name']))
        if ref is not None:
            return ref
    ref = task_by_file_name(path)
    if ref is not None:
        return ref
    raise DataError(f'{path}: cannot tell which LIBERO task it holds (no suite/task_id or known '
                    f'bddl_file_name attribute, and the name is not {{task}}_demo.hdf5 of a '
                    f'task of {", ".join(protocol.SUITES)}); pass --suite and --task')
