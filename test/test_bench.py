"""cliprt-bench: fair interleaved timing, statistics, the cache-vs-naive and backend benchmarks
(tiny model, a few iterations: correctness of the records, never timing assertions)."""
import json

import numpy as np
import pytest

from cliprt_core.bench import interleaved_timings, run_backend_benchmark, run_cache_benchmark
from cliprt_core.bench.common import is_published_architecture, published_reference
from cliprt_core.bench.report import backend_table, cache_table
from cliprt_core.cli import bench as bench_cli
from cliprt_core.model.configuration import load_model_config


def test_interleaved_timings_alternate_and_skip_warmup():
    calls = []
    variants = {name: (lambda n=name: calls.append(n)) for name in ("a", "b", "c")}
    timings = interleaved_timings(variants, iters=4, warmup=2)
    assert {k: len(v) for k, v in timings.items()} == {"a": 4, "b": 4, "c": 4}
    rounds = [calls[i:i + 3] for i in range(0, len(calls), 3)]
    assert len(rounds) == 6 and all(sorted(r) == ["a", "b", "c"] for r in rounds)
    assert [r[0] for r in rounds] == ["a", "b", "c", "a", "b", "c"]  # who goes first rotates
    assert all((v >= 0).all() for v in timings.values())
    with pytest.raises(ValueError):
        interleaved_timings(variants, iters=0, warmup=0)


def test_summarize_percentiles():
    from cliprt_core.bench import summarize

    stats = summarize(np.arange(1, 101) / 1000.0)  # 1..100 ms
    assert stats["p50_ms"] == pytest.approx(50.5) and stats["p90_ms"] == pytest.approx(90.1)
    assert stats["p99_ms"] == pytest.approx(99.01) and stats["n"] == 100


def test_cache_benchmark_record():
    record = run_cache_benchmark("cliprt-tiny", iters=3, warmup=1)
    assert record["bench"] == "cache" and record["model"] == "cliprt-tiny"
    for variant in ("cached", "naive"):
        assert record[variant]["n"] == 3 and record[variant]["p50_ms"] > 0
        assert record[variant]["p90_ms"] >= record[variant]["p50_ms"]
    assert record["ratio_p50"] == pytest.approx(
        record["naive"]["p50_ms"] / record["cached"]["p50_ms"], rel=1e-2)
    # the cached policy encoded the instruction once; the naive one at reset + every query
    assert record["text_encodes"] == {"cached": 1, "naive": 1 + 1 + 3}
    assert "naive/cached" in cache_table([record])


def test_backend_benchmark_records_torch_onnx_and_skips_tensorrt(tmp_path):
    records = run_backend_benchmark(
        "cliprt-tiny", ["onnx", "tensorrt"], [1, 2], iters=2, warmup=1,
        options={"onnx": {"cache_dir": tmp_path}})
    timed = [r for r in records if "batch" in r]
    assert sorted((r["backend"], r["batch"]) for r in timed) == [
        ("onnx", 1), ("onnx", 2), ("torch", 1), ("torch", 2)]
    for r in timed:
        assert r["max_abs_diff_vs_torch"] < 1e-4
        assert r["actions_per_s"] == pytest.approx(r["queries_per_s"] * 8, rel=1e-2)
        assert r["p99_ms"] >= r["p50_ms"] > 0
    assert all(r["speedup_vs_torch"] == 1.0 for r in timed if r["backend"] == "torch")
    skipped = [r for r in records if r["backend"] == "tensorrt"]
    assert len(skipped) == 1 and "CUDA" in skipped[0]["skipped"]
    assert "published_hz" not in timed[0]  # tiny is not the published architecture
    assert "tensorrt: skipped" in backend_table(records)


def test_published_reference_only_for_the_real_clip_rt_plus():
    assert is_published_architecture(load_model_config("cliprt-plus-vit-h-14-378"))
    assert not is_published_architecture(load_model_config("cliprt-vit-h-14-378"))  # discrete
    assert not is_published_architecture(load_model_config("cliprt-plus-vit-b-32"))
    ref = published_reference()
    assert ref["published_hz"] == 163.8 and ref["published_ms_per_chunk"] == pytest.approx(48.84)
    assert ref["target_ms_per_chunk"] == 5.0


def test_cli_prints_json_lines_and_a_table(capsys, tmp_path):
    assert bench_cli.main(["--model", "cliprt-tiny", "--iters", "2", "--warmup", "1"]) == 0
    out, err = capsys.readouterr()
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert record["bench"] == "cache" and {"cached", "naive", "ratio_p50"} <= set(record)
    assert "naive/cached" in err
    options = json.dumps({"onnx": {"cache_dir": str(tmp_path)}})
    assert bench_cli.main(["--model", "cliprt-tiny-discrete", "--backends", "torch,onnx",
                           "--batch", "1,2", "--iters", "2", "--warmup", "0",
                           "--backend-options", options]) == 0
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert {(r["backend"], r["batch"]) for r in records} == {
        ("torch", 1), ("torch", 2), ("onnx", 1), ("onnx", 2)}
    assert all(r["actions_per_s"] == pytest.approx(r["queries_per_s"], rel=1e-2) for r in records)
    assert "actions/s" in err
    with pytest.raises(SystemExit):
        bench_cli.main(["--batch", "0"])
