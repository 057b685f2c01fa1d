"""Inference benchmarks behind ``cliprt-bench``: the instruction-embedding cache against naive
re-encoding, and the inference backends against eager torch, measured side by side in one run."""
from cliprt_core.bench.backend_bench import run_backend_benchmark
from cliprt_core.bench.cache_bench import run_cache_benchmark
from cliprt_core.bench.timing import interleaved_timings, summarize

__all__ = ["interleaved_timings", "run_backend_benchmark", "run_cache_benchmark", "summarize"]
