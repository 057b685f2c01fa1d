"""
Node programs that start, spin and stop cleanly, also under repeated SIGINT / SIGTERM.

A terminal's Ctrl-C reaches a node twice (from the terminal's process group and forwarded by
``ros2 launch``). :func:`init` therefore replaces rclpy's signal handling with one handler: the
first SIGINT / SIGTERM shuts the context down and raises ``KeyboardInterrupt`` in the main thread
(so a model that is still loading is abandoned); every later one is ignored, so the clean
shutdown (model thread, simulator thread, node destruction) is never interrupted.

When a shutdown lands while an executor builds its wait set, rclpy may raise ``RCLError`` about
an invalid context instead of ``ExternalShutdownException``: both mean "stop".
"""

import contextlib
import signal
import threading

import rclpy
from rclpy.executors import (ExternalShutdownException, MultiThreadedExecutor,
                             SingleThreadedExecutor)
from rclpy.logging import get_logger
from rclpy.signals import SignalHandlerOptions

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_stopping = threading.Event()  # set once the process is stopping: later stop signals do nothing
#: Executor kinds: ``events`` = rclpy.experimental.EventsExecutor (C++ event queue; experimental
#: in Jazzy, the fastest here), ``single`` = SingleThreadedExecutor, ``multi`` =
#: MultiThreadedExecutor (4 threads; slow tail in rclpy 7.1, ros2/rclpy#1452).
EXECUTORS = ('events', 'single', 'multi')


def make_executor(kind='single', context=None):
    """Return a new rclpy executor of ``kind`` (one of :data:`EXECUTORS`)."""
    if kind == 'events':
        from rclpy.experimental import EventsExecutor

        return EventsExecutor(context=context)
    if kind == 'single':
        return SingleThreadedExecutor(context=context)
    if kind == 'multi':
        return MultiThreadedExecutor(num_threads=4, context=context)
    raise ValueError(f'unknown executor {kind!r}; expected one of {", ".join(EXECUTORS)}')


def shutdown_executor(executor):
    """Shut an executor down, including a MultiThreadedExecutor's thread pool (rclpy 7.x)."""
    pool = getattr(executor, '_executor', None)
    if pool is not None:
        pool.shutdown(wait=True)
    executor.shutdown()


def init(args=None):
    """Initialise rclpy with the stop-once signal handling described above."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)

    _stopping.clear()

    def stop(signum, frame):
        if _stopping.is_set():
            return  # already stopping
        ignore_stop_signals()
        rclpy.try_shutdown()
        raise KeyboardInterrupt

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)


def ignore_stop_signals():
    """From now on SIGINT / SIGTERM are ignored (the process is already stopping)."""
    _stopping.set()  # first: a handler that still runs (signal already pending) does nothing
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def spin_until(executor, done=None, period=0.1):
    """
    Spin ``executor`` until ``done()`` is true or ROS is shut down (e.g. by a signal).

    Returns True if ``done()`` became true, False on shutdown.
    """
    context = executor.context
    try:
        while rclpy.ok(context=context):
            if done is not None and done():
                return True
            executor.spin_once(timeout_sec=period)
    except (KeyboardInterrupt, ExternalShutdownException):
        return False
    except Exception:  # noqa: B902 - see the module docstring
        if rclpy.ok(context=context):
            raise
    return bool(done is not None and done())


def run_node(create_node, name, spin=None, args=None, executor_kind=None):
    """
    Run one node as a program: init rclpy, build it, spin it, destroy it; return the exit code.

    A node that cannot start logs one fatal line: exit code 2 for a user error (bad parameter,
    checkpoint, results folder: a ``ValueError``), 1 otherwise. SIGINT / SIGTERM give 0.
    ``spin(executor, node)`` returns the exit code; by default the node spins until ROS shuts
    down. ``executor_kind(node)`` names the node's executor (:data:`EXECUTORS`; default
    single).
    """
    init(args)
    node = None
    try:
        try:
            node = create_node()
        except (KeyboardInterrupt, ExternalShutdownException):
            return 0
        except Exception as exc:  # noqa: B902 - a startup error is a message, not a traceback
            user_error = isinstance(exc, ValueError)
            reason = str(exc) if user_error else f'{type(exc).__name__}: {exc}'
            get_logger(name).fatal(f'cannot start: {reason}')
            return 2 if user_error else 1
        executor = make_executor(executor_kind(node) if executor_kind else 'single')
        executor.add_node(node)
        if spin is None:
            spin_until(executor)
            return 0
        return spin(executor, node)
    except KeyboardInterrupt:
        return 0
    finally:
        ignore_stop_signals()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


@contextlib.contextmanager
def spinning(nodes, context=None):
    """
    Spin each of ``nodes`` on its own ``SingleThreadedExecutor`` thread while the block runs.

    One executor per node keeps one node's slow callback (a model query, a simulator step) from
    delaying the others; on exit the threads stop and the executors shut down.
    """
    stop = threading.Event()
    executors, threads = [], []
    try:
        for node in nodes:
            executor = SingleThreadedExecutor(context=context or node.context)
            executor.add_node(node)
            executors.append(executor)
            threads.append(threading.Thread(
                target=spin_until, args=(executor, stop.is_set), daemon=True,
                name=f'spin_{node.get_namespace()}_{node.get_name()}'))
            threads[-1].start()
        yield executors
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for executor in executors:
            executor.shutdown()
