"""Language teleoperation without ROS: parsing, mapping, chunks, recording, phrase training data."""

import json

import h5py
import numpy as np
import pytest

from cliprt_core.actions import label_actions, LabelingConfig, load_vocabulary
from cliprt_core.config import ConfigError
from cliprt_core.teleop import (build_mapper, CommandMapper, parse_command, primitive_actions,
                                TeleopConfig, TeleopSession, TextSimilarity)

VOCAB = load_vocabulary('pretrain_50')


@pytest.mark.parametrize('command, phrase', [
    ('move the arm 10 cm to the left', 'move the arm to the left by ten centimeters'),
    ('Move left 10cm.', 'move the arm to the left by ten centimeters'),
    ('go right by twenty centimetres', 'move the arm to the right by twenty centimeters'),
    ('move back 5 centimeters', 'move the arm back by five centimeters'),
    ('forward one centimeter', 'move the arm forward by one centimeter'),
    ('raise the arm up by 0.05 m', 'raise the arm up by five centimeters'),
    ('lower the arm by 100 mm', 'lower the arm by ten centimeters'),
    ('close the gripper', 'close the gripper'),
    ('release', 'open the gripper'),
    ('roll fourty five degrees clockwise', 'roll arm fourty five degrees clockwise'),
    ('tilt the arm up 15 deg', 'tilt arm up fifteen degrees'),
    ('yaw ninety degrees counter-clockwise', 'yaw arm ninety degrees counterclockwise'),
])
def test_parser_maps_explicit_commands_to_their_primitive(command, phrase):
    decision = CommandMapper(VOCAB).decide(command)
    assert decision.accepted and decision.method == 'parser'
    assert decision.phrase == phrase


def test_every_vocabulary_phrase_parses_to_itself():
    mapper = CommandMapper(VOCAB)
    for phrase in VOCAB.phrases:
        assert mapper.decide(phrase).phrase == phrase


@pytest.mark.parametrize('command, reason', [
    ('move left and up 5 cm', 'more than one direction'),
    ('move left then right 5 cm', 'opposite directions'),
    ('move left 10', 'without a unit'),
    ('move left 5 degrees', 'amount is an angle'),
    ('roll 5 cm clockwise', 'amount is a distance'),
    ('rotate 45 degrees clockwise', 'without its axis'),
    ('move 5 cm', 'without a direction'),
    ('open and close the gripper', 'both open and close'),
    ('close the gripper and move left', 'one at a time'),
    ('move 7 cm to the left', 'no primitive for y +7 cm'),
    ('rotate the gripper 15 degrees clockwise', 'no primitive for rotate_gripper'),
    ('make me a sandwich', 'not understood'),
    ('   ', 'empty command'),
    ('left ' * 100, 'longer than'),
])
def test_ambiguous_or_unknown_commands_are_refused_with_the_reason(command, reason):
    decision = CommandMapper(VOCAB).decide(command)
    assert not decision.accepted and decision.index is None
    assert reason in decision.reason
    assert 'not executed' in decision.feedback()


def test_a_refused_magnitude_names_the_nearest_primitives():
    decision = CommandMapper(VOCAB).decide('move 7 cm to the left')
    assert [p for p, _ in decision.candidates][:2] == [
        'move the arm to the left by five centimeters',
        'move the arm to the left by ten centimeters']


def test_conflicting_directions_offer_each_named_direction():
    decision = CommandMapper(VOCAB, top_k=4).decide('move left and up 5 cm')
    assert [p for p, _ in decision.candidates] == [
        'move the arm to the left by five centimeters', 'move the arm to the left by one '
        'centimeter', 'raise the arm up by five centimeters', 'raise the arm up by one centimeter']


def test_parse_result_fields():
    parsed = parse_command('tilt arm down 90 degrees')
    assert (parsed.axis, parsed.sign) == ('pitch', 1)
    assert parsed.magnitude == pytest.approx(np.pi / 2)
    partial = parse_command('move a bit to the left')
    assert (partial.axis, partial.sign, partial.magnitude, partial.complete) == (
        'y', 1, None, False)


def test_similarity_decides_what_the_parser_cannot_within_its_constraints(tiny_discrete_policy):
    similarity = TextSimilarity.from_policy(tiny_discrete_policy, VOCAB.phrases)
    command = 'shift the arm a bit to the left'
    scores = similarity.scores(command)
    left = [i for i, p in enumerate(VOCAB.primitives) if p.axis == 'y' and p.magnitude > 0]
    ranked = sorted(left, key=lambda i: -scores[i])
    best, margin = scores[ranked[0]], scores[ranked[0]] - scores[ranked[1]]
    accept = CommandMapper(VOCAB, similarity, min_similarity=best - 1e-6,
                           min_margin=margin - 1e-6).decide(command)
    assert accept.accepted and accept.method == 'similarity'
    assert accept.index == ranked[0]  # only left moves compete: the parser found the direction
    assert [p for p, _ in accept.candidates] == [VOCAB.phrases[i] for i in ranked[:3]]
    low = CommandMapper(VOCAB, similarity, min_similarity=best + 1e-3).decide(command)
    assert not low.accepted and 'unknown command' in low.reason
    close = CommandMapper(VOCAB, similarity, min_similarity=-1.0,
                          min_margin=margin + 1e-3).decide(command)
    assert not close.accepted and 'ambiguous' in close.reason
    # an exact phrase has cosine 1 with itself, whatever the weights
    exact = similarity.scores(VOCAB.phrases[5])
    assert exact[5] == pytest.approx(1.0, abs=1e-5)


class _Echo:
    """A translator plug-in (what an LLM client would implement)."""

    def __init__(self, answer):
        self.answer = answer

    def translate(self, command, vocabulary):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_translator_plug_in_is_used_validated_and_contained():
    phrase = 'raise the arm up by ten centimeters'
    ok = CommandMapper(VOCAB, translator=_Echo(phrase)).decide('lift it a little')
    assert ok.accepted and ok.method == 'translator' and ok.phrase == phrase
    bad = CommandMapper(VOCAB, translator=_Echo('do a flip')).decide('lift it a little')
    assert not bad.accepted and 'not a phrase' in bad.reason
    boom = CommandMapper(VOCAB, translator=_Echo(RuntimeError('no server'))).decide('lift it')
    assert not boom.accepted and 'translator failed: RuntimeError: no server' in boom.reason
    # explicit commands never reach the translator
    assert CommandMapper(VOCAB, translator=_Echo('do a flip')).decide('close').method == 'parser'


def test_translator_loading_errors_are_config_errors():
    with pytest.raises(ConfigError, match='package.module:factory'):
        build_mapper(TeleopConfig(translator='nocolon'))
    with pytest.raises(ConfigError, match='cannot be loaded'):
        build_mapper(TeleopConfig(translator='no_such_module_xyz:make'))
    with pytest.raises(ConfigError, match='max_action'):
        TeleopConfig(max_action=2.0)


def test_primitive_chunks_in_libero_units():
    index = VOCAB.index('move the arm to the left by ten centimeters')
    chunk = primitive_actions(VOCAB, index, gripper=-1.0)
    np.testing.assert_allclose(chunk, [[0, 1, 0, 0, 0, 0, -1]] * 2)
    yaw = primitive_actions(VOCAB, VOCAB.index('yaw arm ninety degrees clockwise'), 1.0)
    assert yaw.shape == (4, 7) and np.allclose(yaw[:, 5], 1.5708 / 0.5 / 4)
    assert np.all(yaw[:, 6] == 1.0)  # movements hold the gripper command
    close = primitive_actions(VOCAB, VOCAB.index('close the gripper'), -1.0, gripper_steps=3)
    np.testing.assert_allclose(close, [[0, 0, 0, 0, 0, 0, 1]] * 3)
    # measured scale: the same 10 cm needs more steps when the arm moves 1.3 cm per unit step
    slow = primitive_actions(VOCAB, index, -1.0,
                             labeling=LabelingConfig(position_scale=0.013, rotation_scale=0.2))
    assert len(slow) == 8 and slow[:, 1].sum() * 0.013 == pytest.approx(0.1)
    # executed steps never look like gripper changes to the CLIP-RT labeling
    labels = label_actions(np.concatenate([close, chunk * [1, 1, 1, 1, 1, 1, -1]]), -1.0)
    assert labels[0] == VOCAB.index('close the gripper') and (labels[3:] != labels[0]).all()


def test_session_tracks_the_gripper_and_refuses_unexecutable_primitives():
    config = TeleopConfig(vocabulary='finetune_58', text_similarity=False)
    session = TeleopSession(build_mapper(config), config)
    decision, actions = session.handle('close the gripper')
    assert decision.accepted and session.gripper == 1.0 and actions.shape == (10, 7)
    _, actions = session.handle('move the arm forward by five centimeters')
    assert np.all(actions[:, 6] == 1.0)
    decision, actions = session.handle('rotate the gripper 15 degrees clockwise')
    assert actions is None and not decision.accepted
    assert 'cannot be executed' in decision.reason
    session.observe_gripper(-0.7)
    assert session.gripper == -1.0


# --------------------------------------------------------------------------- recording

def _record_episode(recorder, session, commands, rng):
    recorder.start()
    for command in commands:
        decision, actions = session.handle(command)
        recorder.set_primitive(decision.phrase)
        for action in actions:
            image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            recorder.observe('camera', image)
            recorder.observe('wrist', image[::-1])
            recorder.observe('joints', np.arange(9.0))
            recorder.observe('pose', (np.array([0.1, 0.2, 0.3]), np.array([0, 0, 0, 1.0])))
            assert recorder.add_action(action) is None
    return recorder.stop()


COMMANDS = ['move the arm 10 cm to the left', 'close the gripper', 'raise the arm up by 5 cm']


def test_recorder_writes_libero_files_with_phrases(tmp_path):
    from cliprt_core.cli.data import inspect_file
    from cliprt_core.data import read_file_info
    from cliprt_core.teleop.recorder import EpisodeRecorder
    from cliprt_core.teleop.settings import RecorderConfig

    rng = np.random.default_rng(0)
    recorder = EpisodeRecorder(RecorderConfig(output_dir=str(tmp_path), suite='libero_goal',
                                              task_id=8, init_state=3))
    assert recorder.stop() == (False, 'not recording')
    recorder.start()
    assert recorder.add_action(np.zeros(7)) == 'no camera, joints, pose, wrist received yet'
    assert recorder.discard()[0]
    session = TeleopSession(build_mapper(TeleopConfig()), TeleopConfig())
    ok, message = _record_episode(recorder, session, COMMANDS, rng)
    assert not ok and 'no instruction' in message and recorder.recording  # kept, not lost
    recorder.set_instruction('put the bowl on the plate')
    ok, message = recorder.stop()
    assert ok and 'demo_0' in message
    ok, _ = _record_episode(recorder, session, COMMANDS[:1], rng)
    path = tmp_path / 'put_the_bowl_on_the_plate_demo.hdf5'
    info = read_file_info(path, wrist=True)
    assert info.instruction == 'put the bowl on the plate'
    assert [d.length for d in info.demos] == [13, 2]
    with h5py.File(path, 'r') as handle:
        demo = handle['data/demo_0']
        phrases = [p.decode() for p in demo['primitives'][()]]
        assert phrases[:3] == [VOCAB.phrases[14]] * 2 + ['close the gripper']
        assert demo['primitive_steps'][()].tolist() == [0, 1] + list(range(10)) + [0]
        assert demo['obs/joint_states'].shape == (13, 7) and 'states' not in demo
        assert demo.attrs['init_state_index'] == 3
        assert handle['data'].attrs['suite'] == 'libero_goal'
        assert json.loads(handle['data'].attrs['problem_info'])['language_instruction'] == \
            'put the bowl on the plate'
    summary = inspect_file(path, labels=True)
    assert summary['recorded_phrases'] == {VOCAB.phrases[14]: 2, 'close the gripper': 1,
                                           'raise the arm up by five centimeters': 1}


def test_a_crash_after_the_part_file_loses_nothing(tmp_path):
    from cliprt_core.data.episode_store import EpisodeStore
    from cliprt_core.data.recording import write_part

    store = EpisodeStore(tmp_path)
    arrays = {'actions': np.zeros((2, 7)), 'obs/agentview_rgb': np.zeros((2, 8, 8, 3), np.uint8)}
    final, name = store.save('lift the cup', arrays, {'init_state_index': -1})
    assert name == 'demo_0'
    # a process killed between writing the part and assembling the file:
    parts = tmp_path / '.parts' / final.stem
    write_part(parts / 'episode_000001.hdf5', arrays, {}, {}, file_attrs={'problem_info': '{}'})
    (parts / '.episode_000002.hdf5.abcdefgh.tmp').write_bytes(b'torn')  # killed mid-write
    again = EpisodeStore(tmp_path)
    assert again.recovered == 1 and not list(parts.iterdir())
    with h5py.File(final, 'r') as handle:
        assert sorted(handle['data']) == ['demo_0', 'demo_1']


def test_discrete_training_data_comes_from_the_recorded_phrases(tmp_path):
    from cliprt_core.data import DemoDataset, read_file_info
    from cliprt_core.teleop.recorder import EpisodeRecorder
    from cliprt_core.teleop.settings import RecorderConfig

    recorder = EpisodeRecorder(RecorderConfig(output_dir=str(tmp_path), instruction='stack'))
    session = TeleopSession(build_mapper(TeleopConfig()), TeleopConfig())
    _record_episode(recorder, session, COMMANDS, np.random.default_rng(1))
    info = read_file_info(tmp_path / 'stack_demo.hdf5')
    dataset = DemoDataset([info], image_size=32, head='discrete', vocabulary=VOCAB,
                          augment=False)
    # one sample per command, labelled with its phrase (the actions would label as 5 cm moves)
    assert [VOCAB.phrases[k] for k in dataset.labels] == [
        'move the arm to the left by ten centimeters', 'close the gripper',
        'raise the arm up by five centimeters']
    assert dataset.index[:, 1].tolist() == [0, 2, 12]
    with h5py.File(tmp_path / 'stack_demo.hdf5', 'a') as handle:
        handle['data/demo_0/primitives'][0] = 'dance'
    with pytest.raises(ValueError, match="recorded phrase 'dance' is not in vocabulary"):
        DemoDataset([info], image_size=32, head='discrete', vocabulary=VOCAB)
