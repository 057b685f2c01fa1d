"""LIBERO evaluation end to end on the real simulator with the tiny policy (CPU, 64 px, short).

One sequential run (interrupted after its first episode, then resumed) is the reference for the
results files, resume and the 2-worker run. Faults are injected by wrapping a real env.
"""
import json
import struct
import time

import numpy as np
import pytest
import torch

from cliprt_core.config import ConfigError, load_config, parse_index_ranges
from cliprt_core.eval import (EvalConfig, ResultsDir, ResultsMismatchError, markdown_table,
                              parse_tasks, query_chunks, run_episode, run_evaluation, summarize,
                              wilson_interval)
from cliprt_core.inference import NonFiniteActionError, Policy
from cliprt_core.sim import libero_available
from sim_helpers import CrashingFactory, SharedEnv

SIZE = LIBERO_CAMERA = 64
MAX_STEPS = 10  # one full chunk of 8, then 2 actions of the next: the horizon cuts mid-chunk
needs_libero = pytest.mark.skipif(not libero_available(), reason="LIBERO is not installed")


class FaultyEnv(SharedEnv):
    """Real env with injected events: episode 0 fails to reset, episode 2 fails at its second
    step, and in episode 3 the bowl is put on the plate (the task's goal) after 2 steps."""

    def reset(self, init_state_index):
        self.index = init_state_index
        if init_state_index == 0:
            raise RuntimeError("MuJoCo: simulated failure while loading the model")
        return self._env.reset(init_state_index)

    def step(self, action, render=True):
        self.renders = getattr(self, "renders", 0) + bool(render)
        if self.index == 2 and self._env.steps == 1:
            raise FloatingPointError("simulated physics instability: QACC is NaN")
        if self.index == 3 and self._env.steps == 2:
            put_bowl_on_plate(self._env)
        return self._env.step(action, render=render)


def put_bowl_on_plate(env):
    import mujoco

    sim = env.raw_env.sim
    model, data = sim.model._model, sim.data._data
    objects = env.raw_env.env.objects_dict
    plate = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, objects["plate_1"].root_body)
    bowl = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY,
                             objects["akita_black_bowl_1"].root_body)
    address = int(model.jnt_qposadr[model.body_jntadr[bowl]])
    data.qpos[address:address + 3] = data.xpos[plate] + np.array([0.0, 0.0, 0.03])
    data.qvel[:] = 0.0
    sim.forward()


class SwitchPolicy:
    """The tiny policy, except for the queries numbered in ``bad_calls`` (NaN weights)."""

    def __init__(self, good, bad, bad_calls):
        self.good, self.bad, self.bad_calls, self.calls = good, bad, set(bad_calls), 0

    def act_batch(self, images, instructions):
        self.calls += 1
        policy = self.bad if self.calls in self.bad_calls else self.good
        return policy.act_batch(images, instructions)


def config(results_dir, **overrides):
    values = {"suite": "libero_spatial", "tasks": "0", "episodes": 2, "max_steps": MAX_STEPS,
              "camera_size": SIZE, "progress": False, "results_dir": str(results_dir)}
    values.update(overrides)
    return EvalConfig(**values)


@pytest.fixture(scope="module")
def policy(tiny_policy):  # the shared one (conftest)
    return tiny_policy


@pytest.fixture(scope="module")
def nan_policy():
    bad = Policy.from_config("cliprt-tiny", device="cpu", seed=0)
    with torch.no_grad():
        bad.model.action_head.fc2.bias[3] = float("nan")
    return bad


@pytest.fixture(scope="module")
def reference(tmp_path_factory, libero_env, policy):
    """Sequential run, killed (Ctrl-C) after episode 0 and a torn write, then resumed."""
    folder = tmp_path_factory.mktemp("sequential")
    cfg = config(folder, video=True)
    factory = lambda suite, task: SharedEnv(libero_env)  # noqa: E731

    def interrupt(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_evaluation(cfg, policy, env_factory=factory, on_episode=interrupt)
    results = ResultsDir(folder)
    after_interrupt = [json.loads(line) for line in results.episodes_path.read_text().splitlines()]
    partial_summary = json.loads(results.summary_path.read_text())
    with open(results.episodes_path, "a") as handle:  # a kill in the middle of a write
        handle.write('{"suite": "libero_spatial", "task_id": 0, "epis')
    summary = run_evaluation(cfg, policy, env_factory=factory)
    return {"folder": folder, "results": results, "summary": summary,
            "after_interrupt": after_interrupt, "partial_summary": partial_summary,
            "records": {r["episode"]: r for r in results.records()}}


@needs_libero
@pytest.mark.slow
def test_episode_writes_results_files(reference):
    results, summary = reference["results"], reference["summary"]
    records = reference["records"]
    assert sorted(records) == [0, 1]
    for record in records.values():
        assert record["success"] is False and record["error"] is None
        assert record["steps"] == MAX_STEPS
        assert record["queries"] == 2  # all 8 actions of chunk 1, then 2 of chunk 2
        assert record["task"].startswith("pick up the black bowl between the plate")
        assert record["seed"] is not None and len(record["state_hash"]) == 16
        assert set(record["time"]) == {"reset_s", "sim_s", "policy_s", "total_s"}
        video = results.path / record["video"]
        assert video.name == f"task00_ep{record['episode']:03d}_failure.mp4"
        import imageio.v2 as imageio

        reader = imageio.get_reader(video)
        frames = [frame for frame in reader]  # noqa: C416 (list() asks len(), inf for ffmpeg)
        reader.close()
        assert len(frames) == 1 + MAX_STEPS and frames[0].shape == (SIZE, SIZE, 3)
    assert records[0]["state_hash"] != records[1]["state_hash"]
    assert summary["overall"]["episodes"] == 2 and summary["overall"]["successes"] == 0
    assert summary["complete"] and summary["missing_episodes"] == 0
    assert summary["overall"]["ci95"] == [0.0, pytest.approx(0.6576, abs=1e-4)]
    assert json.loads(results.summary_path.read_text())["tasks"][0]["episodes"] == 2
    table = results.table_path.read_text()
    assert "| libero_spatial | 0 | pick up the black bowl" in table
    assert "0/2 | 0.0% [0.0, 65.8]" in table and "**overall**" in table
    png = results.plot_path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width > 200 and height > 100
    assert json.loads(results.run_path.read_text())["max_steps"] == MAX_STEPS


@needs_libero
@pytest.mark.slow
def test_interrupted_run_resumes_each_episode_exactly_once(reference):
    assert [r["episode"] for r in reference["after_interrupt"]] == [0]
    assert reference["partial_summary"]["missing_episodes"] == 1  # written on the way out
    lines = reference["results"].episodes_path.read_text().splitlines()
    assert len(lines) == 2  # the torn line is gone, nothing was redone
    assert sorted(json.loads(line)["episode"] for line in lines) == [0, 1]
    assert json.loads(lines[0]) == reference["after_interrupt"][0]  # kept, not rewritten
    # a resume with different protocol settings is refused instead of mixing results
    with pytest.raises(ResultsMismatchError, match="max_steps"):
        run_evaluation(config(reference["folder"], max_steps=12), None)


@needs_libero
@pytest.mark.slow
def test_two_workers_give_the_same_episodes_as_one_even_when_a_worker_dies(reference, policy,
                                                                          tmp_path):
    """Worker processes; the one running episode 1 dies mid-episode (os._exit): the episode runs
    again on a fresh worker, exactly as it would have; dying twice records it as an error."""
    cfg = config(tmp_path / "once", workers=2)
    crash_once = CrashingFactory(cfg.env_factory(), str(tmp_path), episode=1)
    with pytest.warns(UserWarning, match="process died .* episode 1; running the episode again"):
        summary = run_evaluation(cfg, policy, env_factory=crash_once)
    assert len(list(tmp_path.glob("crash_*"))) == 1
    parallel = {r["episode"]: r for r in ResultsDir(cfg.results_dir).records()}
    keys = ("suite", "task_id", "episode", "success", "steps", "queries", "error", "seed",
            "state_hash")
    for episode, record in reference["records"].items():
        assert {k: parallel[episode][k] for k in keys} == {k: record[k] for k in keys}
    assert summary["run"]["workers"] == 2 and summary["complete"]

    cfg = config(tmp_path / "twice", workers=2)
    crash_twice = CrashingFactory(cfg.env_factory(), str(tmp_path), episode=1, times=3)
    with pytest.warns(UserWarning, match="running the episode again"):
        run_evaluation(cfg, policy, env_factory=crash_twice)
    records = {r["episode"]: r for r in ResultsDir(cfg.results_dir).records()}
    assert records[0]["state_hash"] == reference["records"][0]["state_hash"]
    assert records[1]["error"] == "env worker process died (exit code 3) during the episode, twice"
    assert len(list(tmp_path.glob("crash_*"))) == 3


@needs_libero
@pytest.mark.slow
def test_ray_executor_gives_the_same_episodes_and_resumes_exactly_once(reference, policy,
                                                                       tmp_path):
    """Env workers as actors of a local Ray instance; the driver (one writer) is interrupted
    after its first finished episode, then resumed: each episode once, equal to in-process.
    Actors the instance cannot place hand their episodes over (below)."""
    ray = pytest.importorskip("ray")
    from cliprt_core.signals import stop_handlers_restored

    with stop_handlers_restored():  # later tests need the default SIGTERM handling
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        _stranded_actors_hand_their_episodes_over(ray, reference, policy, tmp_path / "lost")
        cfg = config(tmp_path, workers=2, executor="ray")

        def interrupt(record):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            run_evaluation(cfg, policy, on_episode=interrupt)
        first = ResultsDir(tmp_path).episodes_path.read_text().splitlines()
        assert len(first) == 1  # the episode in flight was dropped, not half-written
        summary = run_evaluation(cfg, policy)
        assert ray.is_initialized()  # a Ray instance the caller started is left running
    finally:
        ray.shutdown()
    lines = ResultsDir(tmp_path).episodes_path.read_text().splitlines()
    assert lines[0] == first[0] and len(lines) == 2
    records = {r["episode"]: r for r in map(json.loads, lines)}
    keys = ("suite", "task_id", "episode", "success", "steps", "queries", "error", "seed",
            "state_hash")
    for episode, record in reference["records"].items():
        assert {k: records[episode][k] for k in keys} == {k: record[k] for k in keys}
    assert summary["run"]["executor"] == "ray" and summary["complete"]


def _stranded_actors_hand_their_episodes_over(ray, reference, policy, folder):
    """An env actor the cluster cannot place (a node was lost and no CPU is free) gives its
    episode to the other workers after ray_worker_timeout; with none left the run stops."""
    from cliprt_core.eval.runner import EvaluationStopped, WorkersLost

    @ray.remote(num_cpus=1)
    class CpuHolder:
        def ready(self):
            return True

    holders = [CpuHolder.remote()]  # 1 of the 2 CPUs: the second env actor is never placed
    ray.get(holders[0].ready.remote())
    run_evaluation(config(folder, workers=2, executor="ray", ray_worker_timeout=2.0), policy)
    records = {r["episode"]: r for r in ResultsDir(folder).records()}
    assert sorted(records) == [0, 1] and len(ResultsDir(folder).records()) == 2
    assert len({r["ray_node"] for r in records.values()}) == 1  # all on the placed actor
    for episode, record in reference["records"].items():
        assert records[episode]["state_hash"] == record["state_hash"]
    holders.append(CpuHolder.remote())  # no CPU left at all
    ray.get(holders[1].ready.remote())
    with pytest.raises(WorkersLost, match="ray_worker_timeout"):
        run_evaluation(config(folder / "none", workers=1, executor="ray",
                              ray_worker_timeout=2.0), policy)
    assert not ResultsDir(folder / "none").records()
    # a stop request (SIGTERM) is heard while the driver waits on the cluster
    asked = time.monotonic() + 1.0
    with pytest.raises(EvaluationStopped) as stopped:
        run_evaluation(config(folder / "stop", workers=1, executor="ray"), policy,
                       stop=lambda: time.monotonic() > asked)
    assert not isinstance(stopped.value, WorkersLost)
    for holder in holders:
        ray.kill(holder)


@needs_libero
@pytest.mark.slow
def test_failures_are_recorded_and_success_stops_the_episode(libero_env, policy, nan_policy,
                                                             tmp_path):
    cfg = config(tmp_path, episodes=4, max_steps=20, video=True)
    # queries: episode 1 -> #1 (NaN), episode 2 -> #2, episode 3 -> #3
    switch = SwitchPolicy(policy, nan_policy, bad_calls={1})
    summary = run_evaluation(cfg, switch, env_factory=lambda s, t: FaultyEnv(libero_env))
    records = {r["episode"]: r for r in ResultsDir(tmp_path).records()}
    assert sorted(records) == [0, 1, 2, 3]  # the evaluation went on after each failure
    assert records[0]["error"].startswith("RuntimeError: MuJoCo: simulated failure")
    assert records[0]["steps"] == 0 and records[0]["state_hash"] is None
    assert records[1]["error"].startswith("NonFiniteActionError:")
    assert records[1]["steps"] == 0 and records[1]["queries"] == 0
    assert records[2]["error"].startswith("FloatingPointError: simulated physics instability")
    assert records[2]["steps"] == 1 and not records[2]["success"]
    # first success ends the episode in the middle of its first chunk
    assert records[3]["success"] and records[3]["error"] is None
    assert 2 < records[3]["steps"] < 8 and records[3]["queries"] == 1
    assert records[3]["video"].endswith("task00_ep003_success.mp4")
    assert summary["overall"]["errors"] == 3 and summary["overall"]["successes"] == 1
    assert "| 1/4 | 25.0% [4.6, 69.9] | 3 |" in ResultsDir(tmp_path).table_path.read_text()


@needs_libero
@pytest.mark.slow
def test_rendering_only_consumed_frames_changes_no_result(libero_env, policy):
    """Same init states and policy: rendering only the query frames (the default) gives the
    same images to the policy, the same MuJoCo state hash and the same success as rendering
    every step (the old path), for a horizon cut (episode 1) and a mid-chunk success (3)."""
    keys = ("success", "steps", "queries", "error", "seed", "state_hash")
    for episode in (1, 3):
        runs = {}
        for render_all in (True, False):
            env, seen = FaultyEnv(libero_env), []

            def chunk_fn(image, text, seen=seen):
                seen.append(image.copy())
                return policy.act_batch([image], [text])[0]

            record = run_episode(env, episode, chunk_fn, max_steps=MAX_STEPS,
                                 render_all_steps=render_all).to_record()
            runs[render_all] = ({k: record[k] for k in keys}, seen, env.renders)
        (old, old_seen, old_renders), (new, new_seen, new_renders) = runs[True], runs[False]
        assert new == old and len(new_seen) == len(old_seen) == new["queries"]
        for a, b in zip(old_seen, new_seen):
            np.testing.assert_array_equal(a, b)
        assert old_renders == new["steps"]
        # episode 1: rendered once (end of chunk 1); the horizon ends chunk 2 with no query
        # episode 3: the success comes mid chunk 1, before its last step: nothing rendered
        assert new_renders == {1: 1, 3: 0}[episode], (episode, new_renders)
    assert new["success"]


def test_query_chunks_charges_an_error_to_its_own_episode(policy, nan_policy):
    images = [np.full((32, 32, 3), v, dtype=np.uint8) for v in (0, 128)]
    chunks, seconds = query_chunks(policy.act_batch, images, ["a", "b"])
    assert [c.shape for c in chunks] == [(8, 7), (8, 7)] and seconds > 0
    # same rows whether batched or not: what makes parallel == sequential on CPU
    np.testing.assert_array_equal(chunks[1], policy.act_batch(images[1:], ["b"])[0])

    def half_broken(imgs, texts):
        if any(img.mean() > 100 for img in imgs):
            return nan_policy.act_batch(imgs, texts)
        return policy.act_batch(imgs, texts)

    chunks, _ = query_chunks(half_broken, images, ["a", "b"])
    assert chunks[0].shape == (8, 7)
    assert isinstance(chunks[1], NonFiniteActionError)


def test_wilson_interval():
    assert wilson_interval(0, 2) == (0.0, pytest.approx(0.6576, abs=1e-4))
    low, high = wilson_interval(50, 50)
    assert low == pytest.approx(0.9287, abs=1e-4) and high == 1.0
    low, high = wilson_interval(47, 50)  # 94%
    assert low == pytest.approx(0.8378, abs=1e-3) and high == pytest.approx(0.9794, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_summary_and_table_per_task_suite_overall():
    records = [{"suite": s, "task_id": t, "task": f"task {t}", "episode": e,
                "success": (e + t) % 2 == 0, "steps": 5, "error": None,
                "time": {"reset_s": 1.0, "sim_s": 2.0, "policy_s": 1.0, "total_s": 4.0}}
               for s in ("libero_spatial", "libero_goal") for t in range(2) for e in range(4)]
    summary = summarize(records)
    assert [(t["suite"], t["task_id"]) for t in summary["tasks"]] == [
        ("libero_goal", 0), ("libero_goal", 1), ("libero_spatial", 0), ("libero_spatial", 1)]
    assert summary["suites"]["libero_goal"]["successes"] == 4
    assert summary["overall"]["success_rate"] == 0.5
    assert summary["timing"]["policy_share"] == 0.25
    table = markdown_table(summary)
    assert table.count("\n") == 2 + 4 + 2 + 1
    assert "| **overall** | | | 8/16 | **50.0% [28.0, 72.0]** | 0 |" in table


def test_results_dir_ignores_torn_and_duplicate_lines(tmp_path):
    results = ResultsDir(tmp_path)
    record = {"suite": "libero_goal", "task_id": 3, "episode": 7, "success": True, "steps": 80}
    results.append(record)
    results.append({**record, "success": False})  # a duplicate never counts twice
    with open(results.episodes_path, "a") as handle:
        handle.write('{"suite": "libero_goal", "ta')
    with pytest.warns(UserWarning, match="duplicate"):
        assert results.done_episodes() == {("libero_goal", 3, 7)}
    results.check_run({"seed": 7, "max_steps": None})
    results.check_run({"seed": 7, "max_steps": None})
    with pytest.raises(ResultsMismatchError, match="seed"):
        results.check_run({"seed": 8, "max_steps": None})


def test_shipped_eval_configs_load():
    from cliprt_core.paths import config_dir

    files = sorted((config_dir() / "eval").glob("*.yaml"))
    assert {f.stem for f in files} >= {"libero_spatial", "libero_object", "libero_goal",
                                       "libero_10", "libero_90", "demo", "smoke"}
    for file in files:
        cfg = load_config(EvalConfig, file)
        assert cfg.episode_keys()
    standard = load_config(EvalConfig, config_dir() / "eval" / "libero_10.yaml")
    assert (standard.episodes, standard.seed, standard.camera_size, standard.max_steps) == (
        50, 7, 256, None)
    assert len(standard.episode_keys()) == 500


def test_eval_config_selection_and_validation():
    cfg = load_config(EvalConfig, {"suite": "libero_spatial,libero_10", "tasks": "0-2,5",
                                   "episodes": 3})
    assert cfg.suites() == ["libero_spatial", "libero_10"]
    assert cfg.task_ids("libero_10") == [0, 1, 2, 5]
    assert len(cfg.episode_keys()) == 2 * 4 * 3
    assert cfg.episode_keys()[:2] == [("libero_spatial", 0, 0), ("libero_spatial", 0, 1)]
    assert cfg.horizon("libero_10") == 520
    assert load_config(EvalConfig, {"max_steps": 16}).horizon("libero_goal") == 16
    assert load_config(EvalConfig, {"suite": "all"}).suites() == [
        "libero_spatial", "libero_object", "libero_goal", "libero_10"]
    assert parse_tasks([3, 1, 3], 10) == [1, 3]
    assert parse_index_ranges("5-7,0,6", "demos") == [0, 5, 6, 7]  # no limit: any ids
    for text, limit, match in (("all", None, "no meaning"), ("3-", 10, "cannot parse"),
                               ("8-12", 10, "10 out of range")):
        with pytest.raises(ConfigError, match=match):
            parse_index_ranges(text, "x", limit)
    held_out = load_config(EvalConfig, {"suite": "libero_goal", "tasks": "8", "episodes": 10,
                                        "first_episode": 40})
    assert held_out.episode_keys() == [("libero_goal", 8, i) for i in range(40, 50)]
    assert held_out.run_settings()["first_episode"] == 40
    for bad in ({"episodes": 51}, {"suite": "libero_100"}, {"tasks": "0-10"},
                {"first_episode": 41, "episodes": 10}, {"first_episode": -1},
                {"tasks": "a-b"}, {"workers": 0}, {"max_stpes": 3}, {"executor": "dask"},
                {"ray_address": "auto"}, {"executor": "ray", "ray_policy_gpus": -1}):
        with pytest.raises(ConfigError):
            load_config(EvalConfig, bad)


def test_cli_config_precedence_and_summary_only(tmp_path, capsys):
    from cliprt_core.cli import eval as eval_cli

    parse = eval_cli.build_parser().parse_args
    cfg = eval_cli.config_from_args(parse(["--config", "libero_10", "--episodes", "3",
                                           "--no-video", "workers=4", "--backend", "onnx"]))
    assert (cfg.suite, cfg.episodes, cfg.video, cfg.workers) == ("libero_10", 3, False, 4)
    assert cfg.policy.backend == "onnx"  # a nested setting, still a flat flag
    cfg = eval_cli.config_from_args(parse(["--config", "smoke", "--episodes", "3",
                                           "episodes=1", "policy.dtype=fp16"]))
    assert (cfg.tasks, cfg.episodes, cfg.max_steps) == ("0-1", 1, 16)  # file < flag < key=value
    assert cfg.policy.dtype == "fp16"
    with pytest.raises(SystemExit):  # choices come from the setting's type
        parse(["--backend", "tensorflow"])
    assert eval_cli.main(["--config", "libero_10", "episodez=3"]) == 2
    assert "episodez" in capsys.readouterr().err
    # re-tabulate a results folder without running anything
    results = ResultsDir(tmp_path)
    for episode in range(2):
        results.append({"suite": "libero_goal", "task_id": 1, "task": "open the drawer",
                        "episode": episode, "success": episode == 0, "steps": 9})
    assert eval_cli.main(["--suite", "libero_goal", "--tasks", "1", "--episodes", "2",
                          "--results-dir", str(tmp_path), "--summary-only"]) == 0
    out = capsys.readouterr().out
    assert "| libero_goal | 1 | open the drawer | 1/2 |" in out and "not finished" not in out
    assert json.loads(results.summary_path.read_text())["complete"]


@pytest.mark.parametrize("flags, needle", [
    (["--checkpoint", "missing.pt"], "missing.pt"),
    (["--device", "cuda:0"], "CUDA is not available"),
    (["--device", "gpu"], "not a torch device"),
    (["--backend", "tensorrt"], "tensorrt"),
])
def test_cli_policy_errors_exit_2_and_leave_the_results_folder_untouched(
        flags, needle, tmp_path, capsys, monkeypatch):
    """A bad policy setting is a one-line error; the corrected command then runs (no run.json)."""
    from cliprt_core.cli import eval as eval_cli

    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    assert eval_cli.main(["--suite", "libero_goal", "--tasks", "0", "--episodes", "1",
                          "--results-dir", str(results), "--no-progress", *flags]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (results / "run.json").exists()
