"""
A LIBERO bridge node in a process of its own, driven from the parent (``run_eval --num-envs``).

One simulator per process, as ``libero_eval.launch.py num_envs:=N`` starts them: robosuite and
LIBERO keep process-global state (the NumPy and Python RNGs reseeded at every reset, the OpenGL
context of the rendering thread), and two simulators on two threads of one process do not
reproduce the single-simulator rollouts (nor do they run in parallel under the GIL). The parent
keeps the policy node; images and chunks cross processes over DDS like in the launch.

:class:`BridgeProcess` is the parent's view of such a bridge: it reports when the node is up (or
why it could not start: the same exception, re-raised in the parent) and, at the end, the
records it appended, its stop reason and exit code.
"""

from __future__ import annotations

import multiprocessing
import pickle
from typing import Any

from cliprt_core.eval.results import ResultsDir

#: Seconds a bridge gets to exit after the run (or after SIGTERM) before it is killed.
EXIT_TIMEOUT_S = 30.0


class BridgeProcess:
    """A ``LiberoBridgeNode`` running in a spawned process (one simulator)."""

    def __init__(self, namespace: str, cli_args: list[str], parameters: dict[str, Any],
                 env_factory=None) -> None:
        """Start the process; ``parameters`` override the parameter file (name -> value)."""
        context = multiprocessing.get_context('spawn')
        self._conn, child = context.Pipe(duplex=False)
        self.namespace = namespace
        self._process = context.Process(
            target=_serve, args=(namespace, cli_args, parameters, env_factory, child),
            name=f'libero_bridge:{namespace}', daemon=True)
        self._process.start()
        child.close()
        self.wanted: list = []
        self.run_settings: dict[str, Any] = {}
        self.results: ResultsDir | None = None
        self.finished_now: list[dict[str, Any]] = []
        self.stop_reason: str | None = None
        self.exit_code = 0
        self.summary = None
        self._finished = False

    def wait_ready(self, timeout: float = 600.0) -> None:
        """Block until the node is up; re-raise its startup error (ConfigError, ...) here."""
        if not self._conn.poll(timeout):
            raise RuntimeError(f'the bridge {self.namespace} did not start within {timeout:.0f} s')
        kind, payload = self._receive()
        if kind == 'error':
            self._finished = True  # the child exits by itself
            raise payload
        self.wanted = payload['wanted']
        self.run_settings = payload['run_settings']
        self.results = ResultsDir(payload['results'])

    @property
    def finished(self) -> bool:
        """Return True once the bridge ended its run (its episodes done, a stop, or death)."""
        if self._finished:
            return True
        if self._conn.poll():  # its report, or EOF if it died without one
            kind, payload = self._receive()
            if kind == 'done':
                self.finished_now = payload['finished_now']
                self.stop_reason = payload['stop_reason']
                self.exit_code = payload['exit_code']
            else:
                self.stop_reason, self.exit_code = str(payload), 1
            self._finished = True
        elif not self._process.is_alive():
            self.stop_reason = f'the bridge {self.namespace} exited ({self._process.exitcode})'
            self.exit_code = 1
            self._finished = True
        return self._finished

    def _receive(self):
        try:
            return self._conn.recv()
        except EOFError:  # the process died before it said anything
            self._process.join(EXIT_TIMEOUT_S)
            return 'error', RuntimeError(f'the bridge {self.namespace} exited '
                                         f'({self._process.exitcode}) before it reported')

    def destroy_node(self) -> None:
        """Let the process exit (SIGTERM if it still runs: clean node shutdown), then reap it."""
        if self._process.is_alive() and not self._finished:
            self._process.terminate()
        self._process.join(EXIT_TIMEOUT_S)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()


def _serve(namespace, cli_args, parameters, env_factory, conn) -> None:
    """Build the bridge in this child process, report, spin it to the end, report the run."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from cliprt_ros.libero_bridge_node import LiberoBridgeNode, spin_until_finished
    from cliprt_ros.spin import ignore_stop_signals, init

    init()
    node = None
    try:
        try:
            node = LiberoBridgeNode(
                env_factory=env_factory, log_report=False, namespace=namespace,
                cli_args=cli_args,
                parameter_overrides=[Parameter(k, value=v) for k, v in parameters.items()])
        except Exception as exc:  # noqa: B902 - re-raised in the parent
            ignore_stop_signals()  # exiting anyway: a late SIGTERM must not interrupt that
            conn.send(('error', _picklable(exc)))
            return
        conn.send(('ready', {'wanted': node.wanted, 'results': str(node.results.path),
                             'run_settings': node.config.run_settings()}))
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            spin_until_finished(executor, node)
        finally:
            executor.shutdown()
    except KeyboardInterrupt:
        pass  # SIGINT / SIGTERM: report what finished
    finally:
        ignore_stop_signals()
        if node is not None:
            conn.send(('done', {'finished_now': node.finished_now,
                                'stop_reason': node.stop_reason or (
                                    None if node.finished else 'interrupted'),
                                'exit_code': node.exit_code}))
            node.destroy_node()
        conn.close()
        rclpy.try_shutdown()


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: B902 - any exception type may refuse pickling
        return RuntimeError(f'{type(exc).__name__}: {exc}')
