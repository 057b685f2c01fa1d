"""cliprt-data diversify: CLIP-RT's trajectory diversification in the real LIBERO simulator."""

import json

import h5py
import numpy as np
import pytest

from cliprt_core.actions import load_vocabulary

VOCAB = load_vocabulary('pretrain_50')
SOURCE_COMMANDS = ('move the arm to the left by ten centimeters',
                   'move the arm forward by five centimeters', 'close the gripper',
                   'raise the arm up by five centimeters')


@pytest.fixture(scope='module')
def teleop_demo(tmp_path_factory):
    """A demo recorded the way the recorder records one: primitives executed in LIBERO."""
    from cliprt_core.data.phrases import phrase_arrays
    from cliprt_core.data.recording import DemoRecorder, write_demo
    from cliprt_core.sim import libero_available, LiberoTaskEnv
    from cliprt_core.teleop import primitive_actions
    from cliprt_core.actions import LabelingConfig

    if not libero_available():
        pytest.skip('LIBERO is not installed')
    folder = tmp_path_factory.mktemp('teleop')
    path = folder / 'pick_up_the_black_bowl_between_the_plate_and_the_ramekin_and_place_it_on_' \
        'the_plate_demo.hdf5'
    scales = LabelingConfig(position_scale=0.013, rotation_scale=0.5)
    with LiberoTaskEnv('libero_spatial', 0, camera_size=16) as env:
        observation = env.reset(0)
        recorder, phrases, steps, gripper = DemoRecorder(), [], [], -1.0
        for phrase in SOURCE_COMMANDS:
            actions = primitive_actions(VOCAB, VOCAB.index(phrase), gripper, labeling=scales,
                                        gripper_steps=4)
            for k, action in enumerate(actions):
                recorder.add(observation, env.raw_env.get_sim_state(), action)
                phrases.append(phrase)
                steps.append(k)
                observation = env.step(action).observation
            gripper = actions[-1, 6]
    arrays = {**recorder.arrays(), **phrase_arrays(phrases, steps)}
    with h5py.File(path, 'w') as handle:
        write_demo(handle.create_group('data/demo_0'), arrays, {'init_state_index': 0})
        handle['data'].attrs.update({'suite': 'libero_spatial', 'task_id': 0})
    return path, arrays


@pytest.mark.slow
def test_diversified_trajectories_reach_the_demo_waypoints_in_the_simulator(
        teleop_demo, tmp_path, capsys):
    from cliprt_core.cli.data import main
    from cliprt_core.data import read_file_info
    from cliprt_core.data.diversify import read_waypoints

    path, source = teleop_demo
    waypoints, gripper, _, index = read_waypoints(path, 'demo_0')
    assert [w.gripper for w in waypoints] == [1.0, None] and gripper == -1.0 and index == 0
    code = main(['diversify', str(path), '--output', str(tmp_path), '--per-demo', '2',
                 '--verify', 'waypoints', '--position-only', '--waypoint-every', '0', '--json'])
    report = json.loads(capsys.readouterr().out)[0]
    assert code == 0, report
    assert report['kept'] == 2
    out = tmp_path / path.name
    info = read_file_info(out, wrist=False)
    assert [d.name for d in info.demos] == ['demo_0', 'demo_1', 'demo_2']
    with h5py.File(out, 'r') as handle:
        for name in ('demo_1', 'demo_2'):
            demo = handle['data'][name]
            assert demo.attrs['augmented_from'] == 'demo_0'
            phrases = [p.decode() for p in demo['primitives'][()]]
            assert 'close the gripper' in phrases
            starts = [p for p, s in zip(phrases, demo['primitive_steps'][()]) if s == 0]
            assert set(starts) <= set(VOCAB.phrases)
            # the waypoints of the source, reached by another primitive sequence
            pos = demo['obs/ee_pos'][()]
            grip = int(np.argmax(demo['actions'][:, 6] > 0))
            assert np.abs(pos[grip] - waypoints[0].position).max() <= 0.005 + 1e-9
            assert np.abs(pos[-1] - waypoints[1].position).max() <= 0.02
        sequences = [tuple(p.decode() for p, s in zip(handle['data'][n]['primitives'][()],
                                             handle['data'][n]['primitive_steps'][()]) if s == 0)
                     for n in ('demo_1', 'demo_2')]
    assert sequences[0] != sequences[1], sequences  # stochastic: another order / step sizes
    print(report['attempts'], sequences)


def test_diversify_rejects_what_it_cannot_reproduce(tmp_path, capsys):
    from cliprt_core.cli.data import main
    from cliprt_core.data.synthetic import write_libero_hdf5

    written = write_libero_hdf5(tmp_path / 'x_demo.hdf5', num_demos=1, length=4, image_size=8)
    with h5py.File(written.path, 'a') as handle:
        del handle['data/demo_0/robot_states']
    code = main(['diversify', str(tmp_path / 'x_demo.hdf5'), '--output', str(tmp_path / 'o'),
                 '--suite', 'libero_spatial', '--task', '0'])
    assert code == 2 and 'diversification needs' in capsys.readouterr().err
    code = main(['diversify', str(tmp_path), '--output', str(tmp_path / 'o'),
                 '--vocabulary', 'nope'])
    assert code == 2 and "unknown vocabulary 'nope'" in capsys.readouterr().err
