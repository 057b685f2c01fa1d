"""
The ROS evaluation with N simulators: shards, one results folder, N bridge processes + one
policy node.

The shard split and the folder's writer lock need no ROS; the end-to-end test runs real LIBERO
through real DDS (slow) and compares every record with the in-process evaluation.
"""

import json
import multiprocessing

import pytest

from cliprt_core.eval.results import ResultsDir


def _append_many(path, writer, count):
    results = ResultsDir(path)
    for episode in range(count):
        results.append({'suite': 'libero_goal', 'task_id': writer, 'episode': episode,
                        'success': bool(episode % 2), 'steps': episode, 'pad': 'x' * 4000})


def test_concurrent_writer_processes_lose_and_tear_nothing(tmp_path):
    writers, count = 4, 40
    context = multiprocessing.get_context('spawn')
    procs = [context.Process(target=_append_many, args=(str(tmp_path), w, count))
             for w in range(writers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    lines = (tmp_path / 'episodes.jsonl').read_text().splitlines()
    assert len(lines) == writers * count
    records = [json.loads(line) for line in lines]  # every line whole
    assert {(r['task_id'], r['episode']) for r in records} == {
        (w, e) for w in range(writers) for e in range(count)}
    assert len(ResultsDir(tmp_path).records()) == writers * count


def test_shards_are_disjoint_and_cover_the_list():
    from cliprt_core.config import ConfigError
    from cliprt_ros.settings import BridgeConfig

    keys = [('libero_goal', t, e) for t in range(3) for e in range(5)]
    shards = [BridgeConfig(shard=f'{i}/4').shard_of(keys) for i in range(4)]
    assert sorted(k for shard in shards for k in shard) == sorted(keys)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert BridgeConfig().shard_of(keys) == keys
    for bad in ('4/4', '1', 'a/b', '-1/2', '0/0'):
        with pytest.raises(ConfigError, match='shard'):
            BridgeConfig(shard=bad)


def test_run_eval_num_envs_must_be_positive_and_lockstep(capsys):
    from cliprt_ros.run_eval import main

    with pytest.raises(SystemExit) as exit_info:
        main(['--num-envs', '0'])
    assert exit_info.value.code == 2
    assert 'must be an integer >= 1' in capsys.readouterr().err


def _two_simulators(tiny_policy, tmp_path):
    """Run 3 episodes with 2 simulators + 1 policy node, in-process too; resume a lost one."""
    from cliprt_core.eval import EvalConfig, run_evaluation
    from cliprt_core.sim import libero_available
    from cliprt_ros.run_eval import create_nodes, run_nodes
    from ros_utils import unique_namespace

    if not libero_available():
        pytest.skip('LIBERO is not installed')
    config = EvalConfig(suite='libero_spatial', tasks='0', episodes=3, max_steps=16,
                        camera_size=64, results_dir=str(tmp_path / 'ros'), progress=False)

    def run_ros():
        policy_node, bridges, extra = create_nodes(config, namespace=unique_namespace(),
                                                   policy=tiny_policy, num_envs=2)
        assert len(bridges) == 2 and not extra
        assert policy_node.config.robots == 'env0,env1'
        try:
            summary = run_nodes(policy_node, bridges)
        finally:
            for node in (policy_node, *bridges):
                node.destroy_node()
        assert summary['complete'] and summary['run']['num_envs'] == 2
        return bridges

    bridges = run_ros()
    assert [len(b.finished_now) for b in bridges] == [2, 1]  # shards 0/2 and 1/2
    episodes = tmp_path / 'ros' / 'episodes.jsonl'
    ros = {r['episode']: r for r in map(json.loads, episodes.read_text().splitlines())}
    assert sorted(ros) == [0, 1, 2]
    reference = config.__class__(**{**config.__dict__, 'results_dir': str(tmp_path / 'local')})
    run_evaluation(reference, tiny_policy)
    local = {r['episode']: r for r in ResultsDir(tmp_path / 'local').records()}

    # Resume: a lost episode reruns (in its shard), the others are not run twice.
    lines = episodes.read_text().splitlines()
    episodes.write_text('\n'.join(line for line in lines if json.loads(line)['episode'] != 1)
                        + '\n')
    bridges = run_ros()
    assert [len(b.finished_now) for b in bridges] == [0, 1]
    again = [json.loads(line) for line in episodes.read_text().splitlines()]
    assert sorted(r['episode'] for r in again) == [0, 1, 2]
    return ros, local


@pytest.mark.slow
def test_two_simulator_processes_one_policy_node_reproduce_the_in_process_run_and_resume(
        rclpy_context, tiny_policy, tmp_path):
    ros, local = _two_simulators(tiny_policy, tmp_path)
    for episode, record in ros.items():
        for key in ('success', 'steps', 'queries', 'error', 'seed', 'task', 'state_hash'):
            assert record[key] == local[episode][key], (episode, key)


def test_a_bridge_process_that_cannot_start_raises_its_error_in_the_parent(tmp_path):
    """The child's startup error (an unknown suite) reaches the parent as the same exception."""
    from cliprt_core.config import ConfigError
    from cliprt_ros.bridge_process import BridgeProcess
    from ros_utils import unique_namespace

    bridge = BridgeProcess(unique_namespace(), [], {'suite': 'libero_nowhere',
                                                    'results_dir': str(tmp_path / 'r')})
    try:
        with pytest.raises(ConfigError, match='libero_nowhere'):
            bridge.wait_ready(120)
    finally:
        bridge.destroy_node()
    assert bridge._process.exitcode == 0


def test_a_bridge_process_that_dies_ends_with_a_reason_and_exit_code_1(tmp_path):
    """A bridge killed mid-run (SIGKILL: no report) counts as finished, with why, exit code 1."""
    import os
    import signal
    import time

    from cliprt_ros.bridge_process import BridgeProcess
    from ros_utils import unique_namespace

    bridge = BridgeProcess(unique_namespace(), [], {'suite': 'libero_spatial', 'tasks': '0',
                                                    'episodes': 1,
                                                    'results_dir': str(tmp_path / 'r')})
    try:
        bridge.wait_ready(120)
        assert bridge.wanted == [('libero_spatial', 0, 0)] and not bridge.finished
        os.kill(bridge._process.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not bridge.finished and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        bridge.destroy_node()
    assert bridge.finished and bridge.exit_code == 1 and 'exited' in bridge.stop_reason
    assert bridge.finished_now == []
