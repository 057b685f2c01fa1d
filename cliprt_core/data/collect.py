"""
Collecting LIBERO demonstrations with the scripted experts (``cliprt-data collect``).

For each task and fixed initial state the task's expert runs in a ``LiberoTaskEnv`` (both cameras)
from ``env.reset(i)`` until success or the horizon; successful episodes become demos of
``DIR/{task.name}_demo.hdf5`` (``demo_<i>``, attribute ``init_state_index`` = i), failed ones are
reported and logged. Crash safety and resuming are the staging folder's
(:mod:`cliprt_core.data.staging`): each finished demo is its own atomically written part file, a
task's final file is assembled as soon as its last episode ends (and when the run stops), and a
rerun of the same command skips what is finished.

With ``workers > 1`` the episodes run in spawned worker processes, one env each; a worker keeps
its task while the task has episodes left (building an env takes seconds).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
import time
from typing import Any, Callable, Sequence

from cliprt_core.data.collect_worker import (EpisodeRunner, Job, RunnerOptions, WorkerSlot)
from cliprt_core.data.libero_hdf5 import DataError
from cliprt_core.data.libero_tasks import task_ref
from cliprt_core.data.recording import LAYOUTS
from cliprt_core.data.staging import TaskStaging
from cliprt_core.sim import protocol


class CollectionStopped(Exception):
    """The collection stopped on request; finished demos are kept and assembled."""

    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__('stopped on request')
        self.summary = summary


@dataclass(frozen=True)
class CollectSettings:
    """One ``cliprt-data collect`` run."""

    suite: str
    tasks: tuple[int, ...]
    init_states: tuple[int, ...]
    output: Path
    workers: int = 1
    layout: str = 'no_noops'
    camera_size: int = protocol.CAMERA_SIZE
    max_steps: int | None = None
    retry_failed: bool = False
    progress: bool = True

    def check(self) -> None:
        """Raise DataError for settings that cannot work (before anything is started)."""
        if self.layout not in LAYOUTS:
            raise DataError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.workers < 1:
            raise DataError(f'workers must be >= 1, got {self.workers}')
        if self.camera_size < 8:
            raise DataError(f'camera size must be >= 8 pixels, got {self.camera_size}')
        if self.max_steps is not None and self.max_steps < 1:
            raise DataError(f'max steps must be >= 1, got {self.max_steps}')
        if not self.tasks or not self.init_states:
            raise DataError('nothing to collect: no tasks or no init states')

    def recorded_with(self, task_id: int) -> dict[str, Any]:
        """Return what a task's demos depend on (kept in its staging folder, checked on rerun)."""
        horizon = protocol.HORIZONS[self.suite]
        return {'suite': self.suite, 'task_id': int(task_id), 'layout': self.layout,
                'camera_size': int(self.camera_size),
                'horizon': min(self.max_steps, horizon) if self.max_steps else horizon,
                'cameras': ['agentview', 'robot0_eye_in_hand'], 'seed': protocol.GLOBAL_SEED}

    def runner_options(self) -> RunnerOptions:
        return RunnerOptions(suite=self.suite, output=str(self.output), layout=self.layout,
                             camera_size=self.camera_size, max_steps=self.max_steps)


@dataclass
class TaskProgress:
    """Per-task counts of this run, for the summary."""

    staging: TaskStaging
    todo: int
    skipped: int
    attempts: int = 0
    successes: int = 0
    steps: int = 0  # recorded: the steps of the successful episodes
    simulated_steps: int = 0  # of every attempt
    seconds: float = 0.0  # of every attempt (reset and steps; env creation excluded)
    failed: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    demos_in_file: int | None = None

    def to_dict(self) -> dict[str, Any]:
        task = self.staging.task
        return {'suite': task.suite, 'task_id': task.task_id, 'task': task.language,
                'file': str(self.staging.final), 'skipped': self.skipped,
                'attempts': self.attempts, 'successes': self.successes,
                'failed_init_states': sorted(self.failed),
                'errors': {str(k): v for k, v in sorted(self.errors.items())},
                'steps': self.steps, 'simulated_steps': self.simulated_steps,
                'seconds': round(self.seconds, 2),
                'steps_per_s': (round(self.simulated_steps / self.seconds, 3) if self.seconds
                                else None),
                'seconds_per_demo': (round(self.seconds / self.successes, 2) if self.successes
                                     else None),
                'demos_in_file': self.demos_in_file}


def plan(settings: CollectSettings) -> tuple[dict[int, TaskProgress], list[Job]]:
    """Check experts and staging folders; return per-task progress and the jobs left to run."""
    from cliprt_core.sim.experts import expert_for

    settings.check()
    for task_id in settings.tasks:
        expert_for(settings.suite, task_id)  # UnsupportedTaskError before anything is written
    progress, jobs = {}, []
    for task_id in settings.tasks:
        staging = TaskStaging(settings.output, task_ref(settings.suite, task_id))
        staging.prepare(settings.recorded_with(task_id))
        finished = staging.finished(settings.retry_failed)
        todo = [i for i in settings.init_states if i not in finished]
        progress[task_id] = TaskProgress(staging, todo=len(todo),
                                         skipped=len(settings.init_states) - len(todo))
        jobs += [(task_id, i) for i in todo]
    return progress, jobs


def run_collection(settings: CollectSettings, stop: Callable[[], bool] | None = None
                   ) -> dict[str, Any]:
    """
    Run the collection; return its summary (``tasks``: :meth:`TaskProgress.to_dict` each).

    ``stop()`` is checked between simulator steps: when it turns true the episodes in flight
    are abandoned, every finished demo is assembled and :class:`CollectionStopped` is raised.
    """
    stop = stop or (lambda: False)
    started = time.perf_counter()
    tasks, jobs = plan(settings)
    bar = _bar(settings.progress, len(jobs))
    stopped = False
    try:
        finish = _Finisher(tasks, bar)
        if settings.workers == 1 or len(jobs) <= 1:
            stopped = _run_here(settings, jobs, finish, stop)
        else:
            stopped = _run_workers(settings, jobs, finish, stop)
    finally:
        if bar is not None:
            bar.close()
        for task in tasks.values():  # also after an error: keep what is finished
            count = task.staging.assemble()
            if count is not None:
                task.demos_in_file = count
    wall = time.perf_counter() - started
    steps = sum(t.steps for t in tasks.values())
    summary = {'suite': settings.suite, 'layout': settings.layout,
               'camera_size': settings.camera_size, 'workers': settings.workers,
               'output': str(settings.output), 'wall_s': round(wall, 2),
               'successful_steps': steps, 'steps_per_s': round(steps / wall, 3),
               'tasks': [t.to_dict() for t in tasks.values()]}
    if stopped:
        raise CollectionStopped(summary)
    return summary


class _Finisher:
    """Logs each finished attempt and assembles a task's file when its last episode ends."""

    def __init__(self, tasks: dict[int, TaskProgress], bar) -> None:
        self.tasks = tasks
        self.bar = bar
        self.successes = 0
        self.done = 0

    def __call__(self, record: dict[str, Any]) -> None:
        task = self.tasks[record['task_id']]
        task.staging.log_attempt(record)
        task.attempts += 1
        task.todo -= 1
        index = record['init_state']
        task.simulated_steps += record['steps']
        task.seconds += record['seconds']
        if record.get('error'):
            task.errors[index] = record['error']
        elif record['success']:
            task.successes += 1
            task.steps += record['steps']
            self.successes += 1
        else:
            task.failed.append(index)
        if task.todo == 0:
            count = task.staging.assemble()
            if count is not None:
                task.demos_in_file = count
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix({'success': f'{self.successes}/{self.done}'}, refresh=False)
            self.bar.update(1)


def _bar(enabled: bool, total: int):
    if not enabled or not total:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit='demo', desc='collect', dynamic_ncols=True)


def _run_here(settings: CollectSettings, jobs: Sequence[Job], finish: _Finisher,
              stop: Callable[[], bool]) -> bool:
    """Run every job in this process; True if stopped early."""
    runner = EpisodeRunner(settings.runner_options())
    try:
        for job in jobs:
            if stop():
                return True
            record = runner.run(job, stop)
            if record is None:
                return True
            finish(record)
    finally:
        runner.close()
    return False


def _run_workers(settings: CollectSettings, jobs: Sequence[Job], finish: _Finisher,
                 stop: Callable[[], bool]) -> bool:
    """Run the jobs in spawned workers; True if stopped early."""
    from cliprt_core.atomic import DiskFullError

    queues: dict[int, deque] = {}
    for job in jobs:
        queues.setdefault(job[0], deque()).append(job)
    slots = [WorkerSlot(i, settings.runner_options())
             for i in range(min(settings.workers, len(jobs)))]
    stopping = False
    try:
        while True:
            if not stopping and stop():
                stopping = True
                for slot in slots:
                    if slot.busy:
                        slot.stop()
            if not stopping:
                for slot in slots:
                    if not slot.busy:
                        job = _next_job(queues, slot, slots)
                        if job is not None:
                            slot.run(job)
            busy = {slot.conn: slot for slot in slots if slot.busy}
            if not busy:
                return stopping
            for conn in wait(list(busy), timeout=0.5):
                reply = busy[conn].receive()
                if reply[0] == 'done':
                    finish(reply[2])
                elif reply[0] == 'fatal':
                    raise DiskFullError(reply[2])
    finally:
        for slot in slots:
            slot.close()


def _next_job(queues: dict[int, deque], slot: WorkerSlot, slots: list[WorkerSlot]) -> Job | None:
    """Return the next job for ``slot``: its own task first, then a task nobody runs."""
    if queues.get(slot.task_id):
        return _pop(queues, slot.task_id)
    held = {s.task_id for s in slots if s is not slot}
    free = [t for t, q in queues.items() if q and t not in held]
    if free:
        return _pop(queues, free[0])
    longest = max(queues, key=lambda t: len(queues[t]), default=None)
    return _pop(queues, longest) if longest is not None else None


def _pop(queues: dict[int, deque], task_id: int) -> Job:
    job = queues[task_id].popleft()
    if not queues[task_id]:
        del queues[task_id]
    return job
