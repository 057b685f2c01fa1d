"""cliprt-bench: fair interleaved timing, statistics, the cache-vs-naive and backend benchmarks,
the data-loader and simulator benchmarks, and the ROS round trip (python -m cliprt_ros.bench);
tiny model, a few iterations: correctness of the records, never timing assertions."""
import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
import torch

from cliprt_core.bench import interleaved_timings, run_backend_benchmark, run_cache_benchmark
from cliprt_core.bench.common import is_published_architecture, published_reference
from cliprt_core.bench.report import backend_table, cache_table, sim_table
from cliprt_core.bench.sim_bench import throughput_row
from cliprt_core.cli import bench as bench_cli
from cliprt_core.data.synthetic import libero_file_name, write_libero_hdf5
from cliprt_core.model.configuration import load_model_config
from cliprt_core.sim import libero_available


def test_interleaved_timings_alternate_and_skip_warmup():
    calls = []
    variants = {name: (lambda n=name: calls.append(n)) for name in ("a", "b", "c")}
    timings = interleaved_timings(variants, iters=4, warmup=2)
    assert {k: len(v) for k, v in timings.items()} == {"a": 4, "b": 4, "c": 4}
    rounds = [calls[i:i + 3] for i in range(0, len(calls), 3)]
    assert len(rounds) == 6 and all(sorted(r) == ["a", "b", "c"] for r in rounds)
    assert [r[0] for r in rounds] == ["a", "b", "c", "a", "b", "c"]  # who goes first rotates
    with pytest.raises(ValueError):
        interleaved_timings(variants, iters=0, warmup=0)


def test_latency_stats_percentiles():
    from cliprt_core.bench import latency_stats

    stats = latency_stats(np.arange(1, 101) / 1000.0)  # 1..100 ms
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


def test_cli_inference_subcommand_equals_the_default_and_user_errors_exit_2(capsys):
    assert bench_cli.main(["inference", "--model", "cliprt-tiny", "--iters", "1",
                           "--warmup", "0"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["bench"] == "cache" and record["cached"]["n"] == 1
    assert bench_cli.main(["--model", "no-such-model", "--iters", "1"]) == 2
    err = capsys.readouterr().err
    assert "cliprt-bench inference: error: no model config 'no-such-model'" in err
    assert "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        bench_cli.main(["--help"])
    assert exc.value.code == 0 and "{inference,data,sim,experts}" in capsys.readouterr().out


@pytest.mark.slow
def test_expert_benchmark_measures_success_and_refuses_tasks_without_an_expert(tmp_path, capsys):
    if not libero_available():
        pytest.skip("LIBERO is not installed")
    out = tmp_path / "experts.json"
    assert bench_cli.main(["experts", "--suite", "libero_goal", "--tasks", "8",
                           "--init-states", "0", "--json", str(out)]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (record["task"], record["init_state"], record["success"]) == (8, 0, True)
    (row,) = json.loads(out.read_text())
    assert (row["successes"], row["episodes"], row["failed_init_states"]) == (1, 1, [])
    assert bench_cli.main(["experts", "--suite", "libero_goal", "--tasks", "3"]) == 2
    err = capsys.readouterr().err
    assert "no scripted expert for libero_goal task(s) [3]" in err and "Traceback" not in err


DATA_ARGS = ["--workers", "0", "--crops", "32", "--batch", "4", "--batches", "2",
             "--tiny-batch", "4", "--threads", "1"]


def test_data_benchmark_on_synthetic_files(tmp_path, capsys):
    out = tmp_path / "data.json"
    assert bench_cli.main(["data", *DATA_ARGS, "--image-size", "48", "--json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("data: 2 files, 8 demos, images (48, 48, 3); batch 4")
    assert any(line.startswith("loader  crop  32  workers  0:") for line in lines)
    results = json.loads(out.read_text())
    assert results["images"] == [48, 48, 3] and results["threads"] == 1
    (row,) = results["loader"]
    assert row["crop"] == 32 and row["workers"] == 0 and row["samples_per_s"] > 0
    tiny = results["tiny_step"]
    assert tiny["model"] == "cliprt-tiny" and tiny["batch"] == 4 and tiny["device"] == "cpu"
    assert tiny["samples_per_s"] == pytest.approx(4 / tiny["step_s"])
    if not torch.cuda.is_available():
        assert results["gpu_step"] is None and "skipped (no CUDA device)" in lines[-1]


def test_data_benchmark_on_given_files_and_a_bad_path(tmp_path, capsys):
    task = "open the top drawer"
    write_libero_hdf5(tmp_path / libero_file_name(task), num_demos=3, length=12,
                      image_size=40, layout="original", instruction=task)
    assert bench_cli.main(["data", *DATA_ARGS, "--data", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("data: 1 files, 3 demos, images (40, 40, 3)")
    assert bench_cli.main(["data", *DATA_ARGS, "--data", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cliprt-bench data: error:") and "missing" in err


def test_sim_throughput_row_and_table():
    summary = {"overall": {"episodes": 2, "errors": 0},
               "timing": {"policy_steps": 60, "reset_s": 4.0, "sim_s": 5.0, "policy_s": 1.0}}
    row = throughput_row(summary, wall_s=10.0, workers=1)
    assert row["env_steps_per_s"] == 8.0  # (60 policy + 2 x 10 settle steps) / 10 s
    assert row["policy_steps_per_s"] == 6.0 and row["sim_only_steps_per_s"] == 12.0
    assert row["per_episode_s"] == {"reset_s": 2.0, "sim_s": 2.5, "policy_s": 0.5}
    assert row["share"] == {"reset": 0.4, "sim": 0.5, "policy": 0.1}
    faster = throughput_row(summary, wall_s=5.0, workers=2)
    row["render"], faster["render"] = "every_step", "consumed"
    faster.update(speedup=2.0, same_results=True)
    lines = sim_table([row, faster]).splitlines()
    assert lines[0].split() == ["executor", "render", "workers", "episodes", "wall", "s", "env", "st/s",
                                "pol", "st/s", "vs", "1st", "speedup", "same", "reset", "sim",
                                "policy"]
    assert lines[2].split() == ["process", "every_step", "1", "2", "10.0", "8.00", "6.00", "1.00",
                                "40.0%", "50.0%", "10.0%"]
    assert lines[3].split()[:10] == ["process", "consumed", "2", "2", "5.0", "16.00", "12.00", "1.00",
                                    "2.00x", "True"]


@pytest.mark.slow
def test_sim_benchmark_runs_the_real_evaluation(capsys):
    from cliprt_core.sim import libero_available

    if not libero_available():
        pytest.skip("LIBERO is not installed")
    assert bench_cli.main(["sim", "--workers", "1", "--episodes", "1", "--max-steps", "2",
                           "--camera-size", "64"]) == 0
    out, err = capsys.readouterr()
    old, new = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert (old["render"], new["render"]) == ("every_step", "consumed")
    for row in (old, new):
        assert row["workers"] == 1 and row["episodes"] == 1 and row["errors"] == 0
        assert 0 < row["policy_steps"] <= 2 and row["env_steps_per_s"] > 0
        assert sum(row["share"].values()) == pytest.approx(1.0, abs=0.01)
    assert new["same_results"] is True and new["speedup"] > 0  # both paths, same episodes
    assert "env st/s" in err
    with pytest.raises(SystemExit) as exc:
        bench_cli.main(["sim", "--render", "sometimes"])
    assert exc.value.code == 2


@pytest.mark.slow
def test_ros_round_trip_benchmark_module(tmp_path):
    from ros_utils import REPO, rclpy_available

    if not rclpy_available():
        pytest.skip("rclpy is not installed")
    out = tmp_path / "ros.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "cliprt_ros.bench", "--queries", "3",
                           "--size", "64", "--modes", "in-process", "ros-1proc-events",
                           "--json", str(out)], cwd=Path(out).parent, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["size"] == 64 and results["model"] == "cliprt-tiny"
    assert results["in-process"]["n"] == 3 and "ros-1proc-mte" not in results
    ros = results["ros-1proc-events"]  # both nodes on rclpy's EventsExecutor
    assert ros["n"] == 3 and ros["p99_ms"] >= ros["p50_ms"] > 0
    assert ros["overhead_ms"] == pytest.approx(ros["p50_ms"] - ros["in_process_p50_ms"],
                                               abs=1e-3)
    assert ros["overhead_p99_ms"] >= ros["overhead_p50_ms"]
    assert "ros-1proc-events" in proc.stdout and "overhead p99" in proc.stdout


@pytest.mark.slow
def test_multi_robot_benchmark_serves_every_client_with_the_shipped_dds_profile(tmp_path):
    """One policy node process serving 2 robots, every DDS participant on the shipped Fast DDS
    profile (its own transports, builtin ones off): discovery and large images still work."""
    from ros_utils import REPO, rclpy_available

    if not rclpy_available():
        pytest.skip("rclpy is not installed")
    out = tmp_path / "multi.json"
    profile = REPO / "config" / "dds" / "fastdds_large_images.xml"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "cliprt_ros.multi_bench", "--clients", "2",
                           "--seconds", "1", "--size", "256", "--setups", "one-node",
                           "--dds-profile", str(profile), "--json", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    run = results["runs"]["one-node/2"]
    assert results["dds_profile"] == str(profile)
    assert len(run["per_client"]) == 2 and min(run["per_client"]) > 0
    assert run["p99_ms"] >= run["p50_ms"] > 0
