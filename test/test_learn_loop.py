"""The learning loop's report and stage bookkeeping (the stages themselves are tested where they
live: collect in test_data_tools, training in test_train, evaluation in test_eval / the nodes)."""
import json

import pytest

from cliprt_core import learn
from cliprt_core.atomic import append_jsonl
from cliprt_core.sim import libero_available


def _fake_run(root):
    parts = root / "data" / ".parts" / "put_the_bowl_on_the_plate_demo"
    parts.mkdir(parents=True)
    for i, ok in enumerate([True, True, False, True]):
        append_jsonl(parts / "attempts.jsonl", {"task_id": 8, "init_state": i, "success": ok,
                                                "steps": 90, "seconds": 30.0})
    (root / "train").mkdir()
    for step, loss in [(20, 0.4), (40, 0.2)]:
        append_jsonl(root / "train" / "metrics.jsonl", {"step": step, "loss": loss, "lr": 1e-4})
    (root / "eval").mkdir()
    row = {"episodes": 10, "successes": 7, "success_rate": 0.7, "ci95": [0.397, 0.892],
           "errors": 0, "mean_steps": 120.0}
    (root / "eval" / "summary.json").write_text(json.dumps({
        "tasks": [{"suite": "libero_goal", "task_id": 8, "task": "put the bowl on the plate",
                   **row}], "overall": row}))


def test_report_gathers_every_stage(tmp_path):
    _fake_run(tmp_path)
    report = learn.build_report(tmp_path, {"collect": [{"seconds": 60.0}],
                                           "train": [{"seconds": 30.0}, {"seconds": 6.0}]})
    assert report["stages_s"] == {"collect": 60.0, "train": 36.0}
    assert report["experts"][0]["task"] == "put the bowl on the plate"
    assert (report["experts"][0]["successes"], report["experts"][0]["attempts"]) == (3, 4)
    assert report["training"]["final_loss"] == 0.2
    text = learn.report_markdown(report)
    assert "| put the bowl on the plate | 3/4 |" in text
    assert "| overall | 7/10 | 40-89% | 120 |" in text
    assert "loss 0.4000 -> 0.2000" in text


@pytest.mark.slow
def test_a_failing_stage_stops_the_loop_with_its_exit_code(tmp_path, capsys):
    if not libero_available():
        pytest.skip("LIBERO is not installed")
    # libero_goal task 3 has no scripted expert: the real collect refuses it (exit 2)
    assert learn.main(["--output", str(tmp_path), "--tasks", "3"]) == 2
    assert "stage 'collect' failed (exit code 2)" in capsys.readouterr().err
    stages = json.loads((tmp_path / "stages.json").read_text())
    assert list(stages) == ["collect"] and stages["collect"][0]["exit_code"] == 2
    assert not (tmp_path / "train").exists()


@pytest.mark.parametrize("argv", [["--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        learn.main(argv)
    assert exit_info.value.code == 0
    assert "held-out" in capsys.readouterr().out


@pytest.mark.slow
def test_goal_predicates_of_other_tasks_are_evaluated_in_one_scene():
    """The instruction-swap check reads every task's BDDL goal in one env (libero_goal scene)."""
    if not libero_available():
        pytest.skip("LIBERO is not installed")
    from cliprt_core.eval.instruction_swap import achieved_goals, goal_predicates
    from cliprt_core.sim import LiberoTaskEnv

    goals = dict(goal_predicates("libero_goal", t) for t in (1, 8))
    assert set(goals) == {"put the bowl on the stove", "put the bowl on the plate"}
    with LiberoTaskEnv("libero_goal", 8, camera_size=32) as env:
        env.reset(0)
        assert achieved_goals(env, goals) == []
        # put the bowl on the plate by hand (its free joint), let it settle, look again
        sim = env.raw_env.env.sim
        address = sim.model.jnt_qposadr[sim.model.joint_name2id("akita_black_bowl_1_joint0")]
        plate = sim.data.body_xpos[sim.model.body_name2id("plate_1_main")]
        sim.data.qpos[address:address + 3] = plate + [0.0, 0.0, 0.03]
        for _ in range(150):  # 0.3 s of physics: the bowl drops onto the plate
            sim.step()
        assert achieved_goals(env, goals) == ["put the bowl on the plate"]
