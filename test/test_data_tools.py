"""``cliprt-data collect | replay | regenerate`` on the real simulator, and their building blocks.

The simulator tests share one collection (libero_goal task 8 "put the bowl on the plate", init
states 0-1, 16 px, original layout): a ``cliprt-data collect`` process is SIGKILLed as soon as its
first demo is on disk, and the same command run again resumes it. The file that results is then
read by ``cliprt-data inspect`` and the training dataset, replayed, and turned into a LIBERO-style
original file (no-op steps, no task attributes, another name) that ``regenerate`` must turn back
into a no_noops file that replays.
"""
import contextlib
import io
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from cliprt_core.cli import data as data_cli
from cliprt_core.data import build_datasets, DataConfig, read_file_info
from cliprt_core.data.libero_hdf5 import noop_mask
from cliprt_core.data.libero_tasks import TaskRef
from cliprt_core.data.recording import (DemoRecorder, demo_attrs, quat_to_axis_angle,
                                        write_part)
from cliprt_core.data.staging import TaskStaging
from cliprt_core.data.synthetic import write_libero_hdf5
from cliprt_core.sim import libero_available

REPO = Path(__file__).resolve().parents[1]
TASK_FILE = "put_the_bowl_on_the_plate_demo.hdf5"
COLLECT = ["collect", "--suite", "libero_goal", "--tasks", "8", "--init-states", "0-1",
           "--camera-size", "16", "--layout", "original", "--no-progress"]
needs_libero = pytest.mark.skipif(not libero_available(), reason="LIBERO is not installed")


def _cli(argv):
    """Run ``cliprt-data ARGV`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = data_cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def _one_line_error(result, match):
    code, _, err = result
    lines = [line for line in err.splitlines() if "robosuite WARNING" not in line]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("cliprt-data: error: ") and match in lines[0], err


# --- building blocks (no simulator) ----------------------------------------------------------
def test_axis_angle_matches_robosuite():
    from robosuite.utils.transform_utils import quat2axisangle

    rng = np.random.default_rng(0)
    quats = rng.normal(size=(20, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    quats[0] = [0, 0, 0, 1]  # identity: robosuite's special case
    expected = np.stack([quat2axisangle(q.copy()) for q in quats])
    np.testing.assert_allclose(quat_to_axis_angle(quats), expected, atol=1e-12)


def _fake_observation(rng, size=8):
    return SimpleNamespace(agentview=rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
                           wrist=rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
                           joint_states=rng.normal(size=7), gripper_states=rng.normal(size=2),
                           eef_pos=rng.normal(size=3), eef_quat=np.array([1.0, 0, 0, 0]))


def test_recorder_stores_libero_orientation_and_layout():
    rng = np.random.default_rng(1)
    recorder = DemoRecorder()
    observations = [_fake_observation(rng) for _ in range(3)]
    for i, obs in enumerate(observations):
        recorder.add(obs, np.full(5, float(i)), np.full(7, 0.1 * i))
    arrays = recorder.arrays()
    # upright frames in, LIBERO's rotated-by-180-degrees frames stored
    np.testing.assert_array_equal(arrays["obs/agentview_rgb"][1],
                                  observations[1].agentview[::-1, ::-1])
    np.testing.assert_array_equal(arrays["obs/eye_in_hand_rgb"][2],
                                  observations[2].wrist[::-1, ::-1])
    assert arrays["obs/agentview_rgb"].dtype == np.uint8
    assert arrays["obs/ee_states"].shape == (3, 6) and arrays["robot_states"].shape == (3, 9)
    np.testing.assert_allclose(arrays["obs/ee_ori"][0], [np.pi, 0, 0])  # xyzw (1,0,0,0)
    np.testing.assert_array_equal(arrays["robot_states"][:, :2], arrays["obs/gripper_states"])
    assert arrays["rewards"].tolist() == arrays["dones"].tolist() == [0, 0, 1]
    assert arrays["states"][:, 0].tolist() == [0.0, 1.0, 2.0]
    original = demo_attrs(arrays, "original", 4, "<mujoco/>")
    assert original["num_samples"] == 3 and original["init_state_index"] == 4
    assert demo_attrs(arrays, "no_noops", 4) == {"init_state_index": 4}


def test_staging_resume_state_and_assembly(tmp_path):
    task = TaskRef("libero_goal", 8, "put_the_bowl_on_the_plate", "put the bowl on the plate",
                   "libero_goal/put_the_bowl_on_the_plate.bddl")
    staging = TaskStaging(tmp_path, task)
    settings = {"layout": "no_noops", "camera_size": 8}
    staging.prepare(settings)
    rng = np.random.default_rng(2)
    for index in (3, 1):
        recorder = DemoRecorder()
        for _ in range(2 + index):
            recorder.add(_fake_observation(rng), rng.normal(size=5), rng.normal(size=7))
        arrays = recorder.arrays()
        write_part(staging.part(index), arrays, demo_attrs(arrays, "no_noops", index), {})
    staging.log_attempt({"task_id": 8, "init_state": 2, "success": False, "steps": 9})
    staging.log_attempt({"task_id": 8, "init_state": 5, "success": False, "error": "boom"})
    with open(staging.log, "ab") as handle:
        handle.write(b'{"task_id": 8, "init_st')  # a torn last line (killed mid-append)
    assert staging.finished() == {1, 2, 3}  # errors (5) are retried, failures (2) are not
    assert staging.finished(retry_failed=True) == {1, 3}
    assert staging.assemble() == 2
    assert not staging.parts()  # assembled parts are removed
    info = read_file_info(staging.final, wrist=True)
    assert [d.name for d in info.demos] == ["demo_1", "demo_3"] and info.layout == "no_noops"
    assert [d.length for d in info.demos] == [3, 5]
    assert staging.final_demos() == {1: "demo_1", 3: "demo_3"}
    # a new part is added to the demos already in the final file
    recorder = DemoRecorder()
    recorder.add(_fake_observation(rng), rng.normal(size=5), rng.normal(size=7))
    arrays = recorder.arrays()
    write_part(staging.part(0), arrays, demo_attrs(arrays, "no_noops", 0), {})
    assert staging.assemble() == 3 and staging.assemble() is None
    assert list(staging.final_demos()) == [0, 1, 3]
    with h5py.File(staging.final) as handle:
        assert dict(handle["data"].attrs) == {}  # no_noops: no data attributes
    with pytest.raises(ValueError, match="camera_size=8 \\(now 16\\)"):
        staging.prepare({**settings, "camera_size": 16})


def test_user_errors_are_one_line(tmp_path):
    missing = str(tmp_path / "missing_demo.hdf5")
    _one_line_error(_cli(["replay", missing]), "not found")
    _one_line_error(_cli(["regenerate", missing, "--output", str(tmp_path)]), "not found")
    _one_line_error(_cli(["collect", "--suite", "libero_nope", "--tasks", "8",
                           "--output", str(tmp_path)]), "unknown suite")
    _one_line_error(_cli(["collect", "--suite", "libero_goal", "--tasks", "8",
                           "--init-states", "40-50", "--output", str(tmp_path)]),
                    "--init-states: 50 out of range (0..49)")
    _one_line_error(_cli(["collect", "--suite", "libero_goal", "--tasks", "9-8",
                           "--output", str(tmp_path)]), "cannot parse '9-8'")
    _one_line_error(_cli(["replay", missing, "--suite", "libero_goal"]), "go together")
    assert not any(tmp_path.iterdir())  # nothing was written


@needs_libero
def test_user_errors_that_need_libero(tmp_path):
    _one_line_error(_cli(["collect", "--suite", "libero_goal", "--tasks", "3",
                           "--output", str(tmp_path / "out")]), "no scripted expert")
    assert not (tmp_path / "out").exists()
    unknown = write_libero_hdf5(tmp_path / "recording.hdf5", num_demos=1, length=3,
                                layout="no_noops")
    _one_line_error(_cli(["replay", str(unknown.path)]), "cannot tell which LIBERO task")


# --- the real simulator ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """A collection SIGKILLed after its first demo, then resumed by the same command."""
    if not libero_available():
        pytest.skip("LIBERO is not installed")
    out = tmp_path_factory.mktemp("collect") / "goal"
    staging = out / ".parts" / TASK_FILE.replace(".hdf5", "")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "cliprt_core.cli.data", *COLLECT,
                                "--output", str(out)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    part = staging / "init_0.hdf5"
    deadline = time.monotonic() + 300
    try:
        while not part.exists():
            assert process.poll() is None, f"collect ended early: {process.stdout.read()}"
            assert time.monotonic() < deadline, "no demo after 300 s"
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
    killed = SimpleNamespace(final_exists=(out / TASK_FILE).exists(),
                             parts=sorted(p.name for p in staging.glob("init_*.hdf5")))
    with h5py.File(part) as handle:
        killed.actions = handle["demo/actions"][()]
    code, stdout, stderr = _cli([*COLLECT, "--output", str(out), "--json"])
    assert code == 0, stderr
    return SimpleNamespace(out=out, file=out / TASK_FILE, staging=staging, killed=killed,
                           resumed=json.loads(stdout))


@pytest.mark.slow
def test_killed_collection_keeps_its_demo_and_resumes(collected):
    assert collected.killed.parts == ["init_0.hdf5"] and not collected.killed.final_exists
    task = collected.resumed["tasks"][0]
    assert task["skipped"] == 1 and task["attempts"] == task["successes"] == 1  # only init 1
    assert task["demos_in_file"] == 2 and task["failed_init_states"] == [] and not task["errors"]
    attempts = [json.loads(line) for line in (collected.staging / "attempts.jsonl").open()]
    assert [a["init_state"] for a in attempts].count(1) == 1
    assert [a["init_state"] for a in attempts].count(0) <= 1  # killed before or after its line
    with h5py.File(collected.file) as handle:
        assert list(handle["data"]) == ["demo_0", "demo_1"]
        np.testing.assert_array_equal(handle["data/demo_0/actions"][()], collected.killed.actions)
    assert not list(collected.staging.glob("init_*.hdf5"))  # assembled, then removed
    assert not list(collected.out.rglob("*.tmp"))
    mtime = collected.file.stat().st_mtime_ns
    code, stdout, _ = _cli([*COLLECT, "--output", str(collected.out), "--json"])
    again = json.loads(stdout)["tasks"][0]
    assert code == 0 and again["skipped"] == 2 and again["attempts"] == 0
    assert collected.file.stat().st_mtime_ns == mtime  # nothing new: the file is untouched
    _one_line_error(_cli([*COLLECT[:-3], "--layout", "no_noops", "--output",
                           str(collected.out)]), "collected with other settings")


@pytest.mark.slow
def test_collected_file_is_libero_training_data(collected):
    code, stdout, _ = _cli(["inspect", str(collected.out), "--json"])
    summary = json.loads(stdout)[0]
    assert code == 0 and summary["layout"] == "original" and summary["demos"] == 2
    assert summary["instruction"] == "put the bowl on the plate"
    assert summary["image_shape"] == [16, 16, 3] and summary["noop_steps"] == 0
    with h5py.File(collected.file) as handle:
        data = handle["data"]
        assert data.attrs["suite"] == "libero_goal" and data.attrs["task_id"] == 8
        assert data.attrs["num_demos"] == 2 and data.attrs["total"] == summary["steps"]
        assert json.loads(data.attrs["problem_info"])["language_instruction"]
        assert str(data.attrs["bddl_file_name"]).endswith(
            "libero_goal/put_the_bowl_on_the_plate.bddl")
        for index, name in enumerate(["demo_0", "demo_1"]):
            demo = data[name]
            steps = demo["actions"].shape[0]
            assert demo.attrs["init_state_index"] == index and demo.attrs["num_samples"] == steps
            assert "<mujoco" in demo.attrs["model_file"]
            np.testing.assert_array_equal(demo.attrs["init_state"], demo["states"][0])
            obs = demo["obs"]
            shapes = {k: obs[k].shape[1:] for k in obs}
            assert shapes == {"agentview_rgb": (16, 16, 3), "eye_in_hand_rgb": (16, 16, 3),
                              "joint_states": (7,), "gripper_states": (2,), "ee_states": (6,),
                              "ee_pos": (3,), "ee_ori": (3,)}
            assert demo["states"].shape == (steps, 79) and demo["robot_states"].shape == (steps, 9)
            np.testing.assert_array_equal(obs["ee_states"][()],
                                          np.hstack([obs["ee_pos"][()], obs["ee_ori"][()]]))
            np.testing.assert_allclose(obs["ee_ori"][()],
                                       quat_to_axis_angle(demo["robot_states"][:, 5:9]))
            assert demo["dones"][()].tolist() == [0] * (steps - 1) + [1]
            assert demo["rewards"].dtype == np.uint8
    config = DataConfig(paths=[str(collected.out)], wrist=True, augment=False, num_workers=0)
    train, _ = build_datasets(config, image_size=16, head="chunk")
    assert len(train) == summary["steps"] and train.instructions == ["put the bowl on the plate"]
    sample = train[0]
    assert tuple(sample["pixels"].shape) == (3, 16, 16) and "wrist_pixels" in sample


@pytest.mark.slow
def test_replay_of_a_collected_demo_is_exact(collected):
    # demo_0: written by the process that was SIGKILLed later
    code, stdout, stderr = _cli(["replay", str(collected.file), "--demos", "0", "--json"])
    result = json.loads(stdout)[0]
    assert code == 0, stderr
    assert result["all_success"] and (result["suite"], result["task_id"]) == ("libero_goal", 8)
    assert [d["name"] for d in result["demos"]] == ["demo_0"]
    for demo in result["demos"]:
        assert demo["success"] and demo["first_success_step"] == demo["steps"]
        assert not demo["loaded_state"]  # the protocol reset reproduces states[0] exactly
        assert demo["max_state_divergence"] == demo["final_state_divergence"] == 0.0


def _libero_style_copy(source: Path, target: Path, noops: int = 3, hold: int = 10) -> None:
    """
    Write demo_0 of ``source`` the way LIBERO ships demos.

    Leading no-op steps, a tail of ``hold`` steps after the goal is reached (teleoperation kept
    recording until success held; here the open gripper moves up), no task attributes and no
    init state index, a LIBERO-style ``bddl_file_name`` and a file name that is no task's.
    """
    with h5py.File(source) as src, h5py.File(target, "w") as dst:
        data = dst.create_group("data")
        for key, value in src["data"].attrs.items():
            if key not in ("suite", "task_id", "task_name"):
                data.attrs[key] = value
        data.attrs["bddl_file_name"] = ("chiliocosm/bddl_files/libero_goal/"
                                        "put_the_bowl_on_the_plate.bddl")
        demo = data.create_group("demo_0")
        src["data/demo_0"].visititems(lambda name, node: _pad(name, node, demo, noops, hold))
        for key in ("num_samples", "init_state", "model_file"):
            demo.attrs[key] = src["data/demo_0"].attrs[key]


def _pad(name, node, demo, noops, hold):
    if not isinstance(node, h5py.Dataset):
        return
    values = node[()]
    head = np.repeat(values[:1], noops, axis=0)
    tail = np.repeat(values[-1:], hold, axis=0)
    if name == "actions":
        head[:] = [0, 0, 0, 0, 0, 0, values[0, 6]]  # no motion, gripper unchanged: no-ops
        tail[:] = [0, 0, 0.3, 0, 0, 0, -1]
    demo.create_dataset(name, data=np.concatenate([head, values, tail]))


@pytest.mark.slow
def test_regenerate_turns_a_libero_original_into_no_noops_that_replays(collected, tmp_path):
    libero_file = tmp_path / "in" / "downloaded_copy.hdf5"
    libero_file.parent.mkdir()
    _libero_style_copy(collected.file, libero_file)
    out = tmp_path / "out"
    code, stdout, stderr = _cli(["regenerate", str(libero_file), "--output", str(out),
                                 "--camera-size", "16", "--json"])
    result = json.loads(stdout)[0]
    assert code == 0, stderr
    assert (result["suite"], result["task_id"]) == ("libero_goal", 8)  # from bddl_file_name
    assert result["kept"] == ["demo_0"] and result["noops_removed"] == 3
    assert result["steps_in"] == result["steps_out"] + 3
    regenerated = out / TASK_FILE
    assert result["output"] == str(regenerated)
    info = read_file_info(regenerated, wrist=True)
    assert info.layout == "no_noops" and info.image_shape == (16, 16, 3)
    with h5py.File(regenerated) as handle, h5py.File(libero_file) as source:
        assert dict(handle["data"].attrs) == {}
        actions = handle["data/demo_0/actions"][()]
        assert not noop_mask(actions).any()
        np.testing.assert_array_equal(actions, source["data/demo_0/actions"][3:])
        # states[0] is where the first kept step starts: after OpenVLA's 10 settle steps
        first, stored = handle["data/demo_0/states"][0], source["data/demo_0/states"][0]
        assert first[0] == pytest.approx(stored[0] + 10 * 0.05)
        assert handle["data/demo_0"].attrs["init_state_index"] == -1
    code, stdout, stderr = _cli(["replay", str(regenerated), "--json"])
    demo = json.loads(stdout)[0]["demos"][0]
    assert code == 0 and demo["success"], stderr
    assert demo["loaded_state"] and demo["max_qpos_divergence"] < 1e-2
