"""
Environment hosting for the evaluation runner: in-process, or in a worker process.

A worker process owns its environments and runs :class:`~cliprt_core.eval.episode.Episode`s; it
never runs the policy (and never imports torch). The main process sends commands over a pipe:

    ("start", (suite, task_id, init_index), video_path | None)
    ("chunk", chunk (k, 7), policy_seconds)
    ("abort", error_text, policy_seconds)       # the policy failed for this episode
    ("close",)

and gets back ``("obs", agentview_upright, instruction)`` or ``("done", record)``.
"""
from __future__ import annotations

from dataclasses import dataclass
import os
import signal
from typing import Any, Callable

from cliprt_core.eval.episode import Episode, EpisodeResult, EpisodeTiming, format_error
from cliprt_core.sim import protocol

EpisodeSpec = tuple[str, int, int]  # (suite, task_id, init state index)
EnvFactory = Callable[[str, int], Any]  # (suite, task_id) -> a TaskEnv (e.g. LiberoTaskEnv)
Reply = tuple


@dataclass(frozen=True)
class LiberoEnvFactory:
    """
    Picklable factory of :class:`~cliprt_core.sim.LiberoTaskEnv` (for worker processes).

    ``render_threads``: threads of Mesa's software renderer (llvmpipe, ``LP_NUM_THREADS``) in
    the process that builds the env; None = Mesa's default (one per core). It takes effect only
    before the process's first render context and never overrides the user's variable.
    """

    camera_size: int = protocol.CAMERA_SIZE
    seed: int = protocol.GLOBAL_SEED
    wrist_camera: bool = False
    num_dummy_steps: int = protocol.NUM_DUMMY_STEPS
    render_threads: int | None = None
    cache_model: bool = True

    def __call__(self, suite: str, task_id: int):
        from cliprt_core.sim import LiberoTaskEnv

        if self.render_threads is not None:
            os.environ.setdefault('LP_NUM_THREADS', str(self.render_threads))
        return LiberoTaskEnv(suite, task_id, camera_size=self.camera_size, seed=self.seed,
                             wrist_camera=self.wrist_camera,
                             num_dummy_steps=self.num_dummy_steps,
                             cache_model=self.cache_model)


def failure_record(spec: EpisodeSpec, error: BaseException | str, task: str = '') -> dict:
    """Return the record of an episode that could not even start (no env, dead worker, ...)."""
    suite, task_id, episode = spec
    return EpisodeResult(suite=suite, task_id=int(task_id), task=task, episode=int(episode),
                         success=False, steps=0, queries=0, error=format_error(error),
                         time=EpisodeTiming()).to_record()


class EpisodeHost:
    """
    Runs one episode at a time on an env it owns (kept alive while the task stays the same).

    Used by the in-process runner, the worker processes and the ROS LIBERO bridge alike. After
    an ``("obs", ...)`` reply, :attr:`observation` holds the whole observation (cameras and
    joint states) for hosts that publish more than the agentview image.
    """

    def __init__(self, env_factory: EnvFactory, episode_options: dict[str, Any]) -> None:
        self.env_factory = env_factory
        self.episode_options = dict(episode_options)
        self._env = None
        self._env_key: tuple[str, int] | None = None
        self._episode: Episode | None = None
        self._spec: EpisodeSpec | None = None
        self.observation = None

    def start(self, spec: EpisodeSpec, video: str | None = None) -> Reply:
        self._spec = spec
        suite, task_id, init_index = spec
        try:
            env = self._env_for(suite, int(task_id))
        except Exception as exc:  # the env could not be built: this episode fails, eval goes on
            return ('done', failure_record(spec, exc))
        self._episode = Episode(env, init_index, video=video, **self.episode_options)
        return self._reply(self._episode.start())

    def chunk(self, chunk, policy_s: float = 0.0, query: bool = True) -> Reply:
        return self._reply(self._current().apply_chunk(chunk, policy_s=policy_s, query=query))

    def abort(self, error: str, policy_s: float = 0.0) -> Reply:
        episode = self._current()
        episode.fail(error, policy_s=policy_s)
        return self._reply(None)

    def handle(self, command: str, *args) -> Reply:
        """Run one command; an unexpected error becomes this episode's failure record."""
        try:
            return getattr(self, command)(*args)
        except Exception as exc:
            spec = self._spec or ('unknown', -1, -1)
            self._episode = None
            return ('done', failure_record(spec, exc))

    def close(self) -> None:
        self._drop_env()

    def _current(self) -> Episode:
        if self._episode is None:
            raise RuntimeError('no episode in progress')
        return self._episode

    def _reply(self, observation) -> Reply:
        episode = self._current()
        self.observation = observation
        if observation is None:
            self._episode = None
            return ('done', episode.result().to_record())
        return ('obs', observation.agentview, episode.instruction)

    def _env_for(self, suite: str, task_id: int):
        if self._env_key != (suite, task_id):
            self._drop_env()
            self._env = self.env_factory(suite, task_id)
            self._env_key = (suite, task_id)
        return self._env

    def _drop_env(self) -> None:
        env, self._env, self._env_key = self._env, None, None
        if env is not None:
            try:
                env.close()
            except Exception:  # closing must never stop the run
                pass


class EnvSlot:
    """The episode and task one env host runs (in-process, a spawned process, a Ray actor)."""

    def __init__(self, index: int, env_factory: EnvFactory, options: dict[str, Any]) -> None:
        self.index = index
        self.env_factory = env_factory
        self.options = options
        self.spec: EpisodeSpec | None = None
        self.task_key: tuple[str, int] | None = None

    def note(self, command: str, args: tuple) -> None:
        """Remember the episode a ``start`` command begins."""
        if command == 'start':
            self.spec = args[0]
            self.task_key = args[0][:2]


def worker_main(conn, env_factory: EnvFactory, episode_options: dict[str, Any]) -> None:
    """Entry point of an env worker process (spawned by the runner)."""
    # Ctrl-C and SIGTERM to the process group are the main process's to handle: it stops at a
    # safe point and closes this worker over the pipe (or kills it if it does not answer).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    host = EpisodeHost(env_factory, episode_options)
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break  # the main process is gone
            command, args = message[0], message[1:]
            if command == 'close':
                break
            reply = host.handle(command, *args)
            try:
                conn.send(reply)
            except (BrokenPipeError, OSError):
                break  # the main process is gone (killed): finished episodes are on disk
    finally:
        host.close()
        conn.close()
