"""
Executing action chunks on an arm in real time (ROS-free; the ``action_executor`` node wraps it).

* :mod:`~cliprt_core.executor.config` - the executor's settings (timing, aggregation, outputs).
* :mod:`~cliprt_core.executor.scheduler` - timed chunks, latest-wins / temporal ensembling,
  latency compensation, when to ask for the next chunk.
* :mod:`~cliprt_core.executor.runtime` - enable / e-stop, one command per control period,
  delta -> velocity twist with per-axis limits.
"""
from cliprt_core.executor.config import ExecutorConfig, TwistConfig
from cliprt_core.executor.runtime import ActionExecutor, Command, delta_to_twist
from cliprt_core.executor.scheduler import ChunkScheduler, ensemble, ExecutorCounters, TimedChunk

__all__ = ['ActionExecutor', 'ChunkScheduler', 'Command', 'ExecutorConfig', 'ExecutorCounters',
           'TimedChunk', 'TwistConfig', 'delta_to_twist', 'ensemble']
