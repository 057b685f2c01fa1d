"""
Spinning that ends cleanly on SIGINT / SIGTERM.

rclpy turns both signals into a shutdown of the context. The executor then raises
``ExternalShutdownException`` (or ``KeyboardInterrupt``) - or, when the shutdown lands while it
builds its wait set, an ``RCLError`` about an invalid context. All three mean "stop": only an
error raised while the context is still valid is a real one.
"""

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.logging import get_logger


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


def run_node(create_node, name, spin=None, args=None):
    """
    Run one node as a program: init rclpy, build it, spin it, destroy it; return the exit code.

    A node that cannot start (bad parameters, checkpoint, results folder) logs one fatal line
    and gives 1; SIGINT / SIGTERM give 0. ``spin(executor, node)`` returns the exit code; by
    default the node spins until ROS shuts down.
    """
    rclpy.init(args=args)
    try:
        node = create_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        rclpy.try_shutdown()
        return 0
    except Exception as exc:  # noqa: B902 - a startup error is a message, not a traceback
        reason = str(exc) if isinstance(exc, ValueError) else f'{type(exc).__name__}: {exc}'
        get_logger(name).fatal(f'cannot start: {reason}')
        rclpy.try_shutdown()
        return 1
    try:
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        if spin is None:
            spin_until(executor)
            return 0
        return spin(executor, node)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
