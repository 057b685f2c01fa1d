"""
Running a scripted expert for one episode and keeping the demo if it succeeds.

:class:`EpisodeRunner` owns one :class:`~cliprt_core.sim.LiberoTaskEnv` (kept while the task
stays the same) and writes each successful demo as a part file (:mod:`cliprt_core.data.staging`).
It runs in the main process (one worker) or in spawned worker processes, driven over a pipe:

    main -> worker: ("run", (task_id, init_index)) | ("stop",) | ("close",)
    worker -> main: ("done", job, record) | ("stopped", job) | ("fatal", job, message)

A worker checks for ``("stop",)`` between simulator steps and abandons its episode (it reruns on
resume). Workers ignore SIGINT / SIGTERM: stopping is the main process's decision.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
import multiprocessing as mp
import signal
import time
from typing import Any, Callable

from cliprt_core.atomic import DiskFullError
from cliprt_core.data.libero_tasks import task_ref
from cliprt_core.data.recording import demo_attrs, DemoRecorder, original_file_attrs, write_part
from cliprt_core.data.staging import TaskStaging
import numpy as np

Job = tuple[int, int]  # (task_id, init state index)


@dataclass(frozen=True)
class RunnerOptions:
    """What a runner needs (picklable: it travels to spawned workers)."""

    suite: str
    output: str
    layout: str = 'no_noops'
    camera_size: int = 256
    max_steps: int | None = None


def attempt_record(job: Job, success: bool, steps: int, seconds: float,
                   error: str | None = None) -> dict[str, Any]:
    """Return the attempt log line of one episode."""
    record = {'task_id': int(job[0]), 'init_state': int(job[1]), 'success': bool(success),
              'steps': int(steps), 'seconds': round(float(seconds), 3),
              'finished_at': datetime.now(timezone.utc).isoformat(timespec='seconds')}
    if error:
        record['error'] = error
    return record


class EpisodeRunner:
    """Runs expert episodes of one suite; a successful one becomes a part file."""

    def __init__(self, options: RunnerOptions) -> None:
        self.options = options
        self._env = None
        self._expert = None
        self._task_id: int | None = None

    def _task(self, task_id: int):
        if task_id != self._task_id:
            self.close()
            from cliprt_core.sim import LiberoTaskEnv
            from cliprt_core.sim.experts import expert_for

            o = self.options
            self._expert = expert_for(o.suite, task_id)
            self._env = LiberoTaskEnv(o.suite, task_id, camera_size=o.camera_size,
                                      wrist_camera=True, horizon=o.max_steps)
            self._task_id = task_id
        return self._env, self._expert

    def run(self, job: Job, should_stop: Callable[[], bool]) -> dict[str, Any] | None:
        """Run one episode; its attempt record, or None when stopped before it ended."""
        task_id, index = job
        started = time.perf_counter()
        steps = 0
        try:
            env, expert = self._task(task_id)
            started = time.perf_counter()  # an episode's time: reset and steps, not env creation
            observation = env.reset(index)
            expert.reset(env)
            recorder = DemoRecorder()
            while True:
                if should_stop():
                    return None
                action = np.asarray(expert.act(observation), dtype=np.float64)
                recorder.add(observation, env.raw_env.get_sim_state(), action)
                result = env.step(action)
                observation, steps = result.observation, result.steps
                if result.done:
                    break
            seconds = time.perf_counter() - started
            if result.success:
                self._write(job, env, recorder, seconds)
        except DiskFullError:
            raise
        except Exception as exc:  # a simulator or expert error fails this episode only
            return attempt_record(job, False, steps, time.perf_counter() - started,
                                  error=f'{type(exc).__name__}: {exc}')
        return attempt_record(job, result.success, steps, seconds)

    def _write(self, job: Job, env, recorder: DemoRecorder, seconds: float) -> None:
        o = self.options
        task = task_ref(o.suite, job[0])
        arrays = recorder.arrays()
        original = o.layout == 'original'
        model = env.raw_env.sim.model.get_xml() if original else None
        file_attrs = original_file_attrs(env, o.suite, job[0], task.bddl) if original else None
        meta = {'suite': o.suite, 'task_id': job[0], 'init_state': job[1],
                'steps': len(recorder), 'seconds': round(seconds, 3), 'expert': task.language}
        write_part(TaskStaging(o.output, task).part(job[1]), arrays,
                   demo_attrs(arrays, o.layout, job[1], model), meta, file_attrs)

    def close(self) -> None:
        env, self._env, self._expert, self._task_id = self._env, None, None, None
        if env is not None:
            try:
                env.close()
            except Exception:  # closing must never stop the collection
                pass


def worker_main(conn, options: RunnerOptions) -> None:
    """Entry point of a collection worker process."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    runner = EpisodeRunner(options)
    stop_seen = False

    def should_stop() -> bool:
        nonlocal stop_seen
        try:
            while not stop_seen and conn.poll():
                stop_seen = conn.recv()[0] in ('stop', 'close')
        except (EOFError, OSError):
            stop_seen = True  # the main process is gone
        return stop_seen

    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            if message[0] == 'close':
                break
            if message[0] != 'run':
                continue  # a stop that came after the episode ended
            job, stop_seen = message[1], False
            try:
                record = runner.run(job, should_stop)
                reply = ('stopped', job) if record is None else ('done', job, record)
            except DiskFullError as exc:
                reply = ('fatal', job, str(exc))
            try:
                conn.send(reply)
            except (BrokenPipeError, OSError):
                break  # the main process is gone; the part file, if any, is on disk
    finally:
        runner.close()
        conn.close()


class WorkerSlot:
    """A spawned worker process and the job it runs."""

    def __init__(self, index: int, options: RunnerOptions) -> None:
        self.index = index
        self.options = options
        self.job: Job | None = None
        self.task_id: int | None = None
        self._start()

    def _start(self) -> None:
        context = mp.get_context('spawn')
        self.conn, child = context.Pipe()
        self.process = context.Process(target=worker_main, args=(child, self.options),
                                       name=f'cliprt-collect-{self.index}', daemon=True)
        self.process.start()
        child.close()  # a dead worker shows up as EOF on our end
        self.task_id = None

    @property
    def busy(self) -> bool:
        return self.job is not None

    def run(self, job: Job) -> None:
        self.job, self.task_id = job, job[0]
        self._send(('run', job))

    def stop(self) -> None:
        self._send(('stop',))

    def _send(self, message: tuple) -> None:
        try:
            self.conn.send(message)
        except (BrokenPipeError, OSError):
            pass  # the receive() that follows reports the dead worker

    def receive(self) -> tuple:
        """Return the worker's reply; a dead worker becomes an error record (and restarts)."""
        job, self.job = self.job, None
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            self.process.join(timeout=5)
            code = self.process.exitcode
            self._restart()
            return ('done', job, attempt_record(
                job, False, 0, 0.0, error=f'worker process died (exit code {code})'))

    def _restart(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self._start()

    def close(self) -> None:
        self._send(('close',))
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self.conn.close()
