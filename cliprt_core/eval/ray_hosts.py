"""
Env hosts and the policy as Ray actors (``cliprt-eval --executor ray [--ray-address ...]``).

Each env worker is a Ray actor (1 CPU) that owns an :class:`~cliprt_core.eval.worker.EpisodeHost`
and answers the same commands as a worker process; the runner in the driver schedules them, asks
the policy for ONE batched forward per round, and is the only writer of the results directory
(so resume works exactly as with worker processes: a killed driver loses only the episodes in
flight). The policy runs in the driver, or, with ``ray_policy_gpus > 0``, in a Ray actor that
holds that many GPUs (a GPU node of the cluster serves every env worker's queries in batches).

Ray is imported only here, and only when this executor is chosen: the default path never pays
for it. Every machine of the cluster needs cliprt installed (the same version) and LIBERO.
"""
from __future__ import annotations

import time
from typing import Any

from cliprt_core.eval.worker import EnvFactory, EnvSlot, EpisodeHost
from cliprt_core.signals import stop_handlers_restored


class RayUnavailableError(ValueError):
    """Ray is not installed but the ray executor was asked for."""


def import_ray():
    """Import Ray, or explain how to get it (a user error: exit code 2 in the CLI)."""
    try:
        import ray
    except ImportError:
        raise RayUnavailableError('executor ray needs Ray: pip install "ray==2.60.0" (or the '
                                  'cliprt_ros [ray] extra)') from None
    return ray


class RaySession:
    """``ray.init`` on entry unless Ray already runs here; ``ray.shutdown`` if we started it."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address or None
        self.started = False

    def __enter__(self) -> 'RaySession':
        ray = import_ray()
        if not ray.is_initialized():
            options = {} if self.address else {'include_dashboard': False}  # local: no dashboard
            with stop_handlers_restored():  # Ray's handlers would end the driver at once
                ray.init(address=self.address, log_to_driver=False, configure_logging=False,
                         **options)
            self.started = True
        return self

    def __exit__(self, *exc) -> None:
        if self.started:
            import_ray().shutdown()


class _EnvHostActor:
    """The actor body: one EpisodeHost (its env stays alive while the task stays the same)."""

    def __init__(self, env_factory: EnvFactory, options: dict[str, Any]) -> None:
        self.host = EpisodeHost(env_factory, options)
        self.node = import_ray().get_runtime_context().get_node_id()[:12]

    def handle(self, command: str, *args):
        reply = self.host.handle(command, *args)
        if reply[0] == 'done':
            reply[1]['ray_node'] = self.node  # which machine of the cluster ran the episode
        return reply

    def close(self) -> None:
        self.host.close()


class RaySlot(EnvSlot):
    """An EpisodeHost in a Ray actor; the runner's slot interface (``send`` / ``receive``)."""

    def __init__(self, index: int, env_factory: EnvFactory, options: dict[str, Any],
                 start_timeout: float = 300.0) -> None:
        super().__init__(index, env_factory, options)
        self.start_timeout = start_timeout
        self.ref = None
        self._start_actor()

    @property
    def busy(self) -> bool:
        return self.ref is not None

    def _start_actor(self) -> None:
        ray = import_ray()
        actor_class = ray.remote(num_cpus=1, max_restarts=0)(_EnvHostActor)
        self.actor = actor_class.options(name=None).remote(self.env_factory, self.options)
        self._placed = self.actor.__ray_ready__.remote()  # resolves once the actor runs
        self._created = time.monotonic()
        self.task_key = None

    @property
    def stranded(self) -> bool:
        """Return True when the actor got no free CPU on the cluster within ``start_timeout``."""
        if self._placed is None or time.monotonic() - self._created < self.start_timeout:
            return False
        ready, _ = import_ray().wait([self._placed], timeout=0)
        if ready:
            self._placed = None  # placed: never stranded again
        return not ready

    def send(self, command: str, *args) -> None:
        self.note(command, args)
        self.ref = self.actor.handle.remote(command, *args)

    def receive(self):
        ray = import_ray()
        ref, self.ref = self.ref, None
        if self.stranded:  # the command never ran: the episode goes back to the queue
            self.close()
            return ('lost', self.spec)
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:  # the actor (or its node) died mid-episode
            self._restart()
            return ('died', self.spec, f'env worker actor died ({type(exc).__name__})')

    def _restart(self) -> None:
        import_ray().kill(self.actor, no_restart=True)
        self._start_actor()

    def close(self) -> None:
        ray = import_ray()
        if self._placed is None or ray.wait([self._placed], timeout=0)[0]:
            try:
                ray.get(self.actor.close.remote(), timeout=30)
            except Exception:  # closing must never stop the run  # noqa: B902
                pass
        ray.kill(self.actor, no_restart=True)


def ready_slots(busy: list[RaySlot], timeout: float | None = None) -> list[RaySlot]:
    """
    Wait until at least one busy slot has its reply (at most ``timeout`` s); those that do.

    A stranded slot (its replacement actor was never placed) counts as ready: its
    ``receive()`` hands the episode back.
    """
    ray = import_ray()
    by_ref = {slot.ref: slot for slot in busy}
    ready, rest = ray.wait(list(by_ref), num_returns=1, timeout=timeout)
    if rest and ready:
        more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
        ready += more
    return [by_ref[ref] for ref in ready] or [slot for slot in busy if slot.stranded]


class _PolicyActor:
    """The actor body: the evaluation's policy, loaded on the actor's (GPU) node."""

    def __init__(self, settings) -> None:
        from cliprt_core.inference.factory import load_policy

        self.policy = load_policy(settings)

    def act_batch(self, images, instructions):
        return list(self.policy.act_batch(images, instructions))


class RayPolicy:
    """``act_batch`` served by a Ray actor holding ``num_gpus`` GPUs (one forward per call)."""

    def __init__(self, settings, num_gpus: float) -> None:
        ray = import_ray()
        self.actor = ray.remote(num_gpus=num_gpus, num_cpus=1)(_PolicyActor).remote(settings)

    def act_batch(self, images, instructions):
        ray = import_ray()
        return ray.get(self.actor.act_batch.remote(list(images), list(instructions)))
