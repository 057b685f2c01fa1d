"""
Spinning that ends cleanly on SIGINT / SIGTERM.

rclpy turns both signals into a shutdown of the context. The executor then raises
``ExternalShutdownException`` (or ``KeyboardInterrupt``) - or, when the shutdown lands while it
builds its wait set, an ``RCLError`` about an invalid context. All three mean "stop": only an
error raised while the context is still valid is a real one.
"""

import rclpy
from rclpy.executors import ExternalShutdownException


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
