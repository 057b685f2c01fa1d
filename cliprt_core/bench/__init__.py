"""
The benchmarks behind ``cliprt-bench``.

``inference``: the instruction-embedding cache against naive re-encoding, and the inference
backends against eager torch, measured side by side in one run (exported here).
``data`` (:mod:`cliprt_core.bench.data_bench`): HDF5 loader throughput against the training step.
``sim`` (:mod:`cliprt_core.bench.sim_bench`): LIBERO evaluation env steps/s per worker count.
The ROS round trip is measured by ``python -m cliprt_ros.bench`` (it needs rclpy).
"""
from cliprt_core.bench.backend_bench import run_backend_benchmark
from cliprt_core.bench.cache_bench import run_cache_benchmark
from cliprt_core.bench.timing import interleaved_timings, latency_stats

__all__ = ['interleaved_timings', 'latency_stats', 'run_backend_benchmark',
           'run_cache_benchmark']
