"""
Run the LIBERO evaluation: N env hosts, one policy, resumable results.

- ``workers == 1``: the environment runs in this process (no IPC; simplest to debug).
- ``workers > 1``: N spawned worker processes own the environments; this process owns the policy
  and answers every worker that is waiting for a chunk with ONE ``act_batch`` forward.
- ``executor == 'ray'``: the N env hosts are Ray actors (:mod:`cliprt_core.eval.ray_hosts`),
  scheduled exactly like worker processes; this process still writes every result.

Every episode reseeds from (seed, suite, task, init state) and gets a fresh simulator state, so
its outcome does not depend on which host runs it or what ran before: per-episode results equal
those of ``workers == 1`` (bit-for-bit whenever the policy's output for one image does not depend
on the other images of its batch, which holds for fp32 on CPU). That also makes a retry exact:
an episode whose worker process (or Ray actor / node) dies runs once more on a fresh worker, and
only a second death is recorded as that episode's error (a crash the episode itself causes).
"""
from __future__ import annotations

from collections import deque, OrderedDict
import contextlib
from datetime import datetime, timezone
import multiprocessing as mp
from multiprocessing.connection import wait
import time
from typing import Any, Callable, Sequence
import warnings

from cliprt_core.eval.config import EvalConfig
from cliprt_core.eval.episode import format_error
from cliprt_core.eval.results import record_key, ResultsDir
from cliprt_core.eval.worker import (EnvFactory, EnvSlot, EpisodeHost, EpisodeSpec, failure_record,
                                     worker_main)
import numpy as np

BatchPolicy = Callable[[Sequence[np.ndarray], Sequence[str]], Any]
OnEpisode = Callable[[dict[str, Any]], None]


# --- policy ----------------------------------------------------------------------------------
def _batch_fn(policy: Any) -> BatchPolicy:
    if hasattr(policy, 'act_batch'):
        return policy.act_batch
    if callable(policy):
        return policy
    raise TypeError('policy must have act_batch(images, instructions) or be such a callable')


def query_chunks(act_batch: BatchPolicy, images: list[np.ndarray], instructions: list[str]
                 ) -> tuple[list[np.ndarray | BaseException], float]:
    """
    One batched forward; per item a ``(k, 7)`` chunk or the exception for that item.

    If the batch fails, each item is retried alone so an error (e.g. NaN for one image) is
    charged to the episode that caused it. Returns the results and the seconds spent.
    """
    t = time.perf_counter()
    try:
        outputs = act_batch(images, instructions)
        results: list[np.ndarray | BaseException] = [_as_chunk(o) for o in outputs]
        if len(results) != len(images):
            raise RuntimeError(f'policy returned {len(results)} chunks for {len(images)} images')
    except Exception as exc:
        if len(images) == 1:
            results = [exc]
        else:
            results = []
            for image, text in zip(images, instructions):
                try:
                    results.append(_as_chunk(act_batch([image], [text])[0]))
                except Exception as item_exc:
                    results.append(item_exc)
    return results, time.perf_counter() - t


def _as_chunk(output: Any) -> np.ndarray:
    if hasattr(output, 'phrase') and hasattr(output, 'action'):
        raise TypeError('LIBERO evaluation needs a CLIP-RT+ (chunk head) policy; this one is a '
                        'discrete CLIP-RT model')
    return np.asarray(output)


# --- hosts -----------------------------------------------------------------------------------
class _LocalSlot(EnvSlot):
    """An EpisodeHost in this process: every command completes immediately."""

    def __init__(self, env_factory: EnvFactory, options: dict[str, Any]) -> None:
        super().__init__(0, env_factory, options)
        self.host = EpisodeHost(env_factory, options)
        self._reply = None

    @property
    def busy(self) -> bool:
        return self._reply is not None

    def send(self, command: str, *args) -> None:
        self.note(command, args)
        self._reply = self.host.handle(command, *args)

    def receive(self):
        reply, self._reply = self._reply, None
        return reply

    def close(self) -> None:
        self.host.close()


class _ProcessSlot(EnvSlot):
    """An EpisodeHost in a spawned worker process, driven over a pipe."""

    def __init__(self, index: int, env_factory: EnvFactory, options: dict[str, Any]) -> None:
        super().__init__(index, env_factory, options)
        self.busy = False
        self._start_process()

    def _start_process(self) -> None:
        context = mp.get_context('spawn')
        self.conn, child = context.Pipe()
        self.process = context.Process(target=worker_main, name=f'cliprt-env-{self.index}',
                                       args=(child, self.env_factory, self.options), daemon=True)
        self.process.start()
        child.close()  # so a dead worker shows up as EOF on our end
        self.task_key = None

    def send(self, command: str, *args) -> None:
        self.note(command, args)
        try:
            self.conn.send((command, *args))
        except (BrokenPipeError, OSError):
            pass  # the receive() that follows reports the dead worker
        self.busy = True

    def receive(self):
        self.busy = False
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            self.process.join(timeout=5)
            code = self.process.exitcode
            self._restart()
            return ('died', self.spec, f'env worker process died (exit code {code})')

    def _restart(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self._start_process()

    def close(self) -> None:
        try:
            self.conn.send(('close',))
        except (BrokenPipeError, OSError):
            pass
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self.conn.close()


# --- scheduling ------------------------------------------------------------------------------
class _Queue:
    """Episodes grouped by task; a host keeps its task while it lasts (env creation is slow)."""

    def __init__(self, specs: Sequence[EpisodeSpec]) -> None:
        self.groups: OrderedDict[tuple[str, int], deque] = OrderedDict()
        for spec in specs:
            self.groups.setdefault(spec[:2], deque()).append(spec)

    def __len__(self) -> int:
        return sum(len(g) for g in self.groups.values())

    def next_for(self, current: tuple[str, int] | None, held: set) -> EpisodeSpec | None:
        if current in self.groups and self.groups[current]:
            return self._pop(current)
        free = [key for key, group in self.groups.items() if group and key not in held]
        if free:
            return self._pop(free[0])
        busiest = max(self.groups, key=lambda k: len(self.groups[k]), default=None)
        return self._pop(busiest) if busiest is not None and self.groups[busiest] else None

    def put_back(self, spec: EpisodeSpec) -> None:
        """Return an episode that was handed out but never ran (it goes next)."""
        self.groups.setdefault(spec[:2], deque()).appendleft(spec)
        self.groups.move_to_end(spec[:2], last=False)

    def _pop(self, key) -> EpisodeSpec:
        spec = self.groups[key].popleft()
        if not self.groups[key]:
            del self.groups[key]
        return spec


# --- the evaluation --------------------------------------------------------------------------
class EvaluationStopped(Exception):
    """The evaluation stopped on request before its end (finished episodes are kept)."""


class WorkersLost(EvaluationStopped):
    """Every env worker was lost and none could be replaced (finished episodes are kept)."""


def run_evaluation(config: EvalConfig, policy: Any, *, env_factory: EnvFactory | None = None,
                   results_dir: str | None = None, on_episode: OnEpisode | None = None,
                   stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """
    Evaluate ``policy`` (``act_batch(images, instructions) -> (B, k, 7)``); the summary.

    Resumes: episodes already in ``<results_dir>/episodes.jsonl`` are skipped. ``env_factory``
    ``(suite, task_id) -> env`` replaces the default LIBERO factory (it must be picklable when
    ``workers > 1``); the runner closes every env it gets. ``on_episode(record)`` is called after
    each finished episode has been written.
    """
    results = ResultsDir(results_dir or config.default_results_dir())
    results.check_run(config.protocol_settings())
    wanted = config.episode_keys()
    wanted_set = set(wanted)
    previous = [r for r in results.records() if record_key(r) in wanted_set]
    done = {record_key(r) for r in previous}
    todo = [key for key in wanted if key not in done]
    factory = env_factory or config.env_factory()
    started = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat(timespec='seconds')
    finished_now: list[dict[str, Any]] = []
    progress = _Progress(config.progress, total=len(wanted), previous=previous)
    slots: list = []
    session = contextlib.nullcontext()
    if todo and config.executor == 'ray':
        from cliprt_core.eval.ray_hosts import RaySession

        session = RaySession(config.ray_address)
    try:
        with session:
            try:
                if todo:
                    slots = _make_slots(config, factory, min(config.workers, len(todo)))
                    _drive(slots, _Queue(todo), _batch_fn(policy), results, config, progress,
                           finished_now, on_episode, stop or (lambda: False))
            finally:
                for slot in slots:
                    slot.close()
    finally:
        progress.close()
        wall = time.perf_counter() - started
        run = {**config.run_settings(), 'workers': config.workers, 'executor': config.executor,
               'started_at': started_at, 'wall_s': round(wall, 3),
               'episodes_this_run': len(finished_now),
               'policy_steps_this_run': sum(r['steps'] for r in finished_now)}
        summary = results.write_summary(expected=wanted, run=run)
    return summary


def _make_slots(config: EvalConfig, factory: EnvFactory, n_hosts: int) -> list:
    options = config.episode_options()
    if config.executor == 'ray':
        from cliprt_core.eval.ray_hosts import RaySlot

        return [RaySlot(i, factory, options, config.ray_worker_timeout) for i in range(n_hosts)]
    if config.workers == 1:
        return [_LocalSlot(factory, options)]
    return [_ProcessSlot(i, factory, options) for i in range(n_hosts)]


def _drive(slots, queue: _Queue, act_batch: BatchPolicy, results: ResultsDir,
           config: EvalConfig, progress: '_Progress', finished: list, on_episode,
           stop: Callable[[], bool]) -> None:
    idle = list(slots)
    retried: set[EpisodeSpec] = set()
    while True:
        if stop():  # between chunks: episodes in flight are not recorded and rerun on resume
            raise EvaluationStopped('stopped on request')
        for slot in list(idle):
            held = {s.task_key for s in slots if s is not slot and s.task_key is not None}
            spec = queue.next_for(slot.task_key, held)
            if spec is None:
                break
            video = str(results.video_path(*spec)) if config.video else None
            idle.remove(slot)
            slot.send('start', spec, video)
        busy = [s for s in slots if s.busy]
        if not busy:
            return
        ready = _ready(busy, stop)
        waiting: list[tuple[Any, np.ndarray, str]] = []
        for slot in ready:
            reply = slot.receive()
            if reply[0] == 'died':  # the worker (or its node) died: run the episode once more
                spec, reason = reply[1], reply[2]
                if spec not in retried:
                    retried.add(spec)
                    queue.put_back(spec)
                    idle.append(slot)  # a fresh worker replaced the dead one
                    warnings.warn(f'{reason} during {spec[0]} task {spec[1]} episode {spec[2]}; '
                                  'running the episode again')
                    continue
                reply = ('done', failure_record(spec, f'{reason} during the episode, twice'))
            if reply[0] == 'lost':  # a Ray actor never placed: its episode goes to the others
                queue.put_back(reply[1])
                slots.remove(slot)
                if not slots:
                    raise WorkersLost('no env worker left: the Ray cluster had no free CPU for '
                                      f'a replacement actor within {config.ray_worker_timeout:g} '
                                      's (ray_worker_timeout)')
                continue
            if reply[0] == 'done':
                record = results.append(reply[1])
                finished.append(record)
                progress.update(record)
                idle.append(slot)
                if on_episode is not None:
                    on_episode(record)
            else:
                waiting.append((slot, reply[1], reply[2]))
        if waiting:
            chunks, seconds = query_chunks(act_batch, [w[1] for w in waiting],
                                           [w[2] for w in waiting])
            share = seconds / len(waiting)
            for (slot, _, _), chunk in zip(waiting, chunks):
                if isinstance(chunk, BaseException):
                    slot.send('abort', format_error(chunk), share)
                else:
                    slot.send('chunk', chunk, share)


def _ready(busy: list, stop: Callable[[], bool]) -> list:
    local = [s for s in busy if isinstance(s, _LocalSlot)]
    if local:
        return local
    if not isinstance(busy[0], _ProcessSlot):  # Ray actors: poll, so a stop request is heard
        from cliprt_core.eval.ray_hosts import ready_slots

        while True:
            ready = ready_slots(busy, timeout=1.0)
            if ready:
                return ready
            if stop():
                raise EvaluationStopped('stopped on request')
    by_conn = {s.conn: s for s in busy}
    ready = wait(list(by_conn))
    ready += list(wait([c for c in by_conn if c not in ready], timeout=0))
    return [by_conn[c] for c in ready]


class _Progress:
    """tqdm bar with the running success rate (previous runs' episodes included)."""

    def __init__(self, enabled: bool, total: int, previous: list[dict[str, Any]]) -> None:
        self.successes = sum(1 for r in previous if r.get('success'))
        self.count = len(previous)
        self.errors = sum(1 for r in previous if r.get('error'))
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=self.count, unit='ep', dynamic_ncols=True,
                            desc='LIBERO eval')
            self._postfix()

    def update(self, record: dict[str, Any]) -> None:
        self.count += 1
        self.successes += bool(record.get('success'))
        self.errors += bool(record.get('error'))
        if self.bar is not None:
            self._postfix(refresh=False)
            self.bar.update(1)

    def _postfix(self, refresh: bool = True) -> None:
        rate = 100.0 * self.successes / self.count if self.count else 0.0
        postfix = {'success': f'{self.successes}/{self.count} ({rate:.1f}%)'}
        if self.errors:
            postfix['errors'] = self.errors
        self.bar.set_postfix(postfix, refresh=refresh)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
