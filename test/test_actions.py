"""Tests for cliprt_core.actions: vocabularies, labeling rules, primitive execution."""
import json
import math
from importlib import resources

import numpy as np
import pytest

from cliprt_core.actions import (
    LABEL_AXES, LabelingConfig, Vocabulary, VocabularyError, available_vocabularies,
    label_action, label_actions, load_vocabulary, primitive_to_action,
)

PRE = load_vocabulary("pretrain_50")
FT = load_vocabulary("finetune_58")
METRIC = LabelingConfig()
LIBERO = LabelingConfig.libero()
AXIS_COLUMN = {a: i for i, a in enumerate(LABEL_AXES + ("rotate_gripper",))}


def act(**kw):
    """7-D action from named entries, e.g. act(x=0.05, roll=0.1, g=1.0)."""
    a = np.zeros(7)
    for name, value in kw.items():
        a[6 if name == "g" else AXIS_COLUMN[name]] = value
    return a


def phrase_of(action, previous=None, config=METRIC):
    k = label_action(action, previous, PRE, config)
    return None if k is None else PRE.phrases[k]


# ------------------------------------------------------------------------------ vocabularies

def test_shipped_names():
    assert available_vocabularies() == ["finetune_58", "pretrain_50"]


@pytest.mark.parametrize("vocab,size,dims", [(PRE, 50, 7), (FT, 58, 8)])
def test_sizes_unique_lowercase(vocab, size, dims):
    assert len(vocab) == size and len(vocab.phrases) == size
    assert len(set(vocab.phrases)) == size
    assert all(p == p.lower().strip() for p in vocab.phrases)
    assert vocab.vectors.shape == (size, dims) and vocab.vectors.dtype == np.float32
    assert len(vocab.dimensions) == dims
    assert sum(p.changes_gripper for p in vocab.primitives) == 2


@pytest.mark.parametrize("vocab", [PRE, FT])
def test_vectors_nonzero_exactly_on_axis(vocab):
    for k, p in enumerate(vocab.primitives):
        vec = vocab.vectors[k]
        if p.changes_gripper:
            assert p.axis == "gripper" and p.magnitude in (-1.0, 1.0)
            assert not vec[:-1].any(), p.phrase
            continue
        col = AXIS_COLUMN[p.axis]
        assert np.flatnonzero(vec).tolist() == [col], p.phrase
        assert vec[col] == pytest.approx(p.magnitude) and vec[-1] == 0.0


def test_gripper_encodings():
    assert PRE.vector(PRE.index("open the gripper"))[-1] == -1.0
    assert PRE.vector(PRE.index("close the gripper"))[-1] == 1.0
    assert FT.vector(FT.index("open the gripper"))[-1] == 1.0
    assert FT.vector(FT.index("close the gripper"))[-1] == 0.0
    assert PRE.primitives[PRE.index("open the gripper")].magnitude == -1.0
    assert FT.primitives[FT.index("close the gripper")].magnitude == 1.0


def test_magnitude_sets():
    def mags(vocab, axes):
        return sorted({abs(p.magnitude) for p in vocab.primitives if p.axis in axes})

    assert mags(PRE, ("x", "y", "z")) == [0.01, 0.05, 0.1, 0.2]
    assert mags(PRE, ("roll", "pitch", "yaw")) == [0.08727, 0.2618, 0.7854, 1.5708]
    exact = [math.radians(d) for d in (5, 15, 45, 90)]
    assert mags(FT, ("roll", "rotate_gripper")) == pytest.approx(exact, abs=1e-12)
    assert mags(FT, ("z",)) == [0.01, 0.05, 0.1, 0.2]
    assert sorted({p.axis for p in FT.primitives}) == sorted(
        LABEL_AXES + ("rotate_gripper", "gripper"))


def test_known_phrases_and_vectors():
    cases = {
        "move the arm forward by one centimeter": (0, 0.01),
        "move the arm back by twenty centimeters": (0, -0.2),
        "move the arm to the left by five centimeters": (1, 0.05),
        "move the arm to the right by ten centimeters": (1, -0.1),
        "raise the arm up by ten centimeters": (2, 0.1),
        "lower the arm by one centimeter": (2, -0.01),
        "roll arm fourty five degrees clockwise": (3, 0.7854),
        "tilt arm up ninety degrees": (4, -1.5708),
        "tilt arm down five degrees": (4, 0.08727),
        "yaw arm fifteen degrees counterclockwise": (5, -0.2618),
    }
    for phrase, (col, value) in cases.items():
        expected = np.zeros(7, dtype=np.float32)
        expected[col] = value
        np.testing.assert_array_equal(PRE.vector(PRE.index(phrase)), expected)
    k = FT.index("rotate the gripper ninety degrees counterclockwise")
    assert FT.vectors[k, 6] == pytest.approx(-math.pi / 2)
    assert FT.dimensions[6] == "rotate_gripper"


@pytest.mark.parametrize("vocab", [PRE, FT])
def test_direction_words_match_signs(vocab):
    cw = (" clockwise", "counterclockwise")
    words = {"x": ("forward", "back"), "y": ("left", "right"), "z": ("raise", "lower"),
             "roll": cw, "pitch": ("down", "up"), "yaw": cw, "rotate_gripper": cw}
    for p in vocab.primitives:
        if not p.changes_gripper:
            pos_word, neg_word = words[p.axis]
            assert (pos_word if p.magnitude > 0 else neg_word) in p.phrase, p.phrase
            assert (neg_word if p.magnitude > 0 else pos_word) not in p.phrase, p.phrase


def test_descriptions_state_conventions():
    for name in available_vocabularies():
        path = resources.files("cliprt_core.actions").joinpath("vocabularies", f"{name}.json")
        text = json.loads(path.read_text("utf-8"))["description"]
        for fact in ("+x forward", "+y left", "+z up", "right-hand", "changes_gripper"):
            assert fact in text, (name, fact)


def test_index_vector_and_errors():
    k = PRE.index("close the gripper")
    assert PRE.phrases[k] == "close the gripper"
    v = PRE.vector(k)
    v[:] = 5.0  # a copy: the vocabulary is not modified
    assert PRE.vectors[k, -1] == 1.0
    with pytest.raises(ValueError):
        PRE.vectors[0, 0] = 1.0  # read-only
    with pytest.raises(VocabularyError, match="not in vocabulary"):
        PRE.index("dance")
    with pytest.raises(IndexError):
        PRE.vector(50)
    again = load_vocabulary("pretrain_50")
    assert again == PRE and hash(again) == hash(PRE) and again != FT


def _write(tmp_path, mutate):
    data = {"name": "t", "description": "d", "dimensions": ["a", "b"], "primitives": [
        {"phrase": "go a", "axis": "a", "magnitude": 1.0, "vector": [1.0, 0.0],
         "changes_gripper": False},
        {"phrase": "go b", "axis": "b", "magnitude": None, "vector": [0.0, 1.0],
         "changes_gripper": False},
    ]}
    mutate(data)
    path = tmp_path / "v.json"
    path.write_text(json.dumps(data))
    return path


def test_load_from_path(tmp_path):
    vocab = load_vocabulary(str(_write(tmp_path, lambda d: None)))
    assert isinstance(vocab, Vocabulary) and vocab.phrases == ["go a", "go b"]
    assert vocab.vectors.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert vocab.primitives[1].magnitude is None and vocab.dimensions == ("a", "b")


def test_unknown_name_lists_available():
    with pytest.raises(VocabularyError, match="finetune_58, pretrain_50"):
        load_vocabulary("pretrain_51")


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d["primitives"][1].update(phrase="Go  A"), "duplicate phrase"),
    (lambda d: d["primitives"][0].update(vector=[1.0, 0.0, 0.0]), "3 values, expected 2"),
    (lambda d: d.update(primitives=[]), "no primitives"),
    (lambda d: d["primitives"][0].update(colour="red"), "unknown key"),
    (lambda d: d["primitives"][0].pop("axis"), "missing key"),
    (lambda d: d["primitives"][0].update(changes_gripper="yes"), "changes_gripper"),
    (lambda d: d["primitives"][0].update(vector=[1.0, "x"]), "list of numbers"),
    (lambda d: d.update(dimensions=[]), "'dimensions' is empty"),
])
def test_bad_files(tmp_path, mutate, match):
    path = _write(tmp_path, mutate)
    with pytest.raises(VocabularyError, match=match) as info:
        load_vocabulary(path)
    assert str(path) in str(info.value)


def test_invalid_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(VocabularyError, match="invalid JSON"):
        load_vocabulary(path)


# ------------------------------------------------------------------------------ labeling

def test_position_threshold():
    assert phrase_of(act(x=0.01)) is None
    assert phrase_of(act(x=-0.01)) is None
    assert phrase_of(act(x=0.0099)) is None
    assert phrase_of(act(x=np.nextafter(0.01, 1))) == "move the arm forward by one centimeter"
    assert phrase_of(act(x=-0.0101)) == "move the arm back by one centimeter"
    assert phrase_of(act(z=0.011)) == "raise the arm up by one centimeter"
    assert phrase_of(np.zeros(7)) is None


def test_rotation_threshold():
    assert phrase_of(act(roll=0.08727)) is None
    assert phrase_of(act(roll=-0.08727)) is None
    assert phrase_of(act(pitch=0.0872)) is None
    assert phrase_of(act(roll=np.nextafter(0.08727, 1))) == "roll arm five degrees clockwise"
    assert phrase_of(act(yaw=-0.0873)) == "yaw arm five degrees counterclockwise"
    assert phrase_of(act(pitch=0.09)) == "tilt arm down five degrees"


def test_weighting_decides_dominant_axis():
    # raw |rot| > |pos|, but 0.05 m * 7.854 = 0.3927 > 0.1 rad -> position wins
    assert phrase_of(act(x=0.05, roll=0.1)) == "move the arm forward by five centimeters"
    assert phrase_of(act(y=-0.05, yaw=0.39)) == "move the arm to the right by five centimeters"
    # 0.40 rad > 0.3927 -> rotation wins
    assert phrase_of(act(y=-0.05, yaw=0.40)) == "yaw arm fifteen degrees clockwise"
    # only the dominant axis is thresholded: 0.0105 m > 0.01, but 0.085 rad dominates -> none
    assert phrase_of(act(x=0.0105, roll=0.085)) is None
    assert phrase_of(act(x=0.012, roll=0.09)) == "move the arm forward by one centimeter"
    # among position axes the largest |value| wins
    assert phrase_of(act(x=0.04, y=-0.06, z=0.05)) == (
        "move the arm to the right by five centimeters")


def test_ties_go_to_first_axis():
    rows = [act(x=0.05, y=0.05), act(y=-0.1, z=0.1), act(roll=0.3, yaw=-0.3),
            act(pitch=-1.0, yaw=1.0)]
    want = ["move the arm forward by five centimeters",
            "move the arm to the right by ten centimeters",
            "roll arm fifteen degrees clockwise", "tilt arm up fourty five degrees"]
    assert [phrase_of(r) for r in rows] == want
    assert [PRE.phrases[k] for k in label_actions(np.array(rows))] == want


def test_gripper_precedence_and_direction():
    big = act(x=0.2, yaw=1.5)
    forward_20 = "move the arm forward by twenty centimeters"
    assert phrase_of(big + act(g=1.0), previous=-1.0) == "close the gripper"
    assert phrase_of(big + act(g=-1.0), previous=1.0) == "open the gripper"
    assert phrase_of(big + act(g=1.0), previous=1.0) == forward_20
    assert phrase_of(big + act(g=1.0), previous=None) == forward_20
    assert phrase_of(act(g=0.5), previous=0.0) is None  # |change| = 0.5 is not > 0.5
    assert phrase_of(act(g=0.6), previous=0.0) == "close the gripper"
    assert phrase_of(act(g=0.0), previous=0.6) == "open the gripper"


# edge, expected magnitude just below / exactly at / just above (upper edge inclusive)
POS_EDGE_CASES = [
    (-0.15, -0.2, -0.2, -0.1), (-0.075, -0.1, -0.1, -0.05), (-0.03, -0.05, -0.05, -0.01),
    (0.03, 0.01, 0.01, 0.05), (0.075, 0.05, 0.05, 0.1), (0.15, 0.1, 0.1, 0.2),
]
ROT_EDGE_CASES = [
    (-1.1781, -1.5708, -1.5708, -0.7854), (-0.5236, -0.7854, -0.7854, -0.2618),
    (-0.1746, -0.2618, -0.2618, -0.08727), (0.1746, 0.08727, 0.08727, 0.2618),
    (0.5236, 0.2618, 0.2618, 0.7854), (1.1781, 0.7854, 0.7854, 1.5708),
]


def _around(edge, below, at, above):
    return ((np.nextafter(edge, -np.inf), below), (edge, at), (np.nextafter(edge, np.inf), above))


@pytest.mark.parametrize("axis", ["x", "y", "z"])
@pytest.mark.parametrize("case", POS_EDGE_CASES)
def test_position_bin_edges(axis, case):
    for value, expected in _around(*case):
        k = label_action(act(**{axis: value}), None, PRE, METRIC)
        assert (PRE.primitives[k].axis, PRE.primitives[k].magnitude) == (axis, expected), value


@pytest.mark.parametrize("axis", ["roll", "pitch", "yaw"])
@pytest.mark.parametrize("case", ROT_EDGE_CASES)
def test_rotation_bin_edges(axis, case):
    for value, expected in _around(*case):
        k = label_action(act(**{axis: value}), None, PRE, METRIC)
        assert (PRE.primitives[k].axis, PRE.primitives[k].magnitude) == (axis, expected), value


def test_edges_vectorised():
    rows, expected = [], []
    for cases, axes in ((POS_EDGE_CASES, ("x", "y", "z")),
                        (ROT_EDGE_CASES, ("roll", "pitch", "yaw"))):
        for axis in axes:
            for case in cases:
                for value, magnitude in _around(*case):
                    rows.append(act(**{axis: value}))
                    expected.append(PRE.find(axis, magnitude))
    assert label_actions(np.array(rows), None, PRE, METRIC).tolist() == expected


def test_edge_phrases():
    assert phrase_of(act(x=0.03)) == "move the arm forward by one centimeter"
    assert phrase_of(act(x=0.0301)) == "move the arm forward by five centimeters"
    assert phrase_of(act(x=-0.03)) == "move the arm back by five centimeters"
    assert phrase_of(act(x=-0.0299)) == "move the arm back by one centimeter"
    assert phrase_of(act(x=5.0)) == "move the arm forward by twenty centimeters"
    assert phrase_of(act(pitch=-3.0)) == "tilt arm up ninety degrees"


def test_libero_scaling():
    def libero(action, previous=None):
        return phrase_of(action, previous, LIBERO)

    assert libero(act(x=1.0)) == "move the arm forward by five centimeters"  # 0.05 m
    assert libero(act(x=0.1)) is None                                        # 0.005 m
    assert libero(act(z=-0.3)) == "lower the arm by one centimeter"          # 0.015 m
    assert libero(act(yaw=1.0)) == "yaw arm fifteen degrees clockwise"       # 0.5 rad
    assert phrase_of(act(yaw=1.0)) == "yaw arm fourty five degrees clockwise"  # metric: 1 rad
    # equal in normalised units, but 0.025 m * 7.854 = 0.196 < 0.25 rad -> rotation dominates
    assert libero(act(x=0.5, roll=0.5)) == "roll arm fifteen degrees clockwise"
    assert libero(act(x=0.5, roll=0.5, g=1.0), previous=-1.0) == "close the gripper"


@pytest.mark.parametrize("initial", [None, 1.0, -1.0])
def test_vectorised_matches_per_step(initial):
    rng = np.random.default_rng(0)
    t = 600
    scale = rng.choice([0.003, 0.02, 0.1, 0.3], size=(t, 1))
    actions = rng.normal(0.0, 1.0, size=(t, 7)) * scale
    actions[:, 3:6] *= 7.854  # rotations on a comparable (weighted) scale
    actions[:, 6] = np.where(rng.random(t) < 0.1, -1.0, 1.0)
    actions[::7, 6] = rng.uniform(-1, 1, size=len(actions[::7]))
    labels = label_actions(actions, initial, PRE, METRIC)
    assert labels.shape == (t,) and labels.dtype == np.int64
    for i in range(t):
        previous = initial if i == 0 else actions[i - 1, 6]
        k = label_action(actions[i], previous, PRE, METRIC)
        assert labels[i] == (-1 if k is None else k), i
    grip = {PRE.index("open the gripper"), PRE.index("close the gripper")}
    assert (labels == -1).sum() > 20 and sum(k in grip for k in labels) > 20
    assert len({k for k in labels if k >= 0 and k not in grip}) > 25  # many movement classes


def test_vectorised_initial_gripper_and_empty():
    actions = np.array([act(g=1.0), act(x=0.05, g=1.0), act(g=-1.0)])
    assert label_actions(actions).tolist() == [
        -1, PRE.index("move the arm forward by five centimeters"), PRE.index("open the gripper")]
    assert label_actions(actions, initial_gripper=-1.0)[0] == PRE.index("close the gripper")
    assert label_actions(np.zeros((0, 7))).shape == (0,)


def test_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        label_action(np.zeros(6))
    with pytest.raises(ValueError, match="NaN"):
        label_action(act(x=float("nan")))
    with pytest.raises(ValueError, match="NaN"):
        label_actions(np.array([act(x=float("inf"))]))
    with pytest.raises(ValueError, match="shape"):
        label_actions(np.zeros((3, 8)))
    with pytest.raises(ValueError, match="strictly increasing"):
        LabelingConfig(position_edges=(0.1, 0.0))
    with pytest.raises(ValueError, match="magnitudes"):
        LabelingConfig(rotation_magnitudes=(1.0,))
    with pytest.raises(ValueError, match="> 0"):
        LabelingConfig(position_scale=0.0)
    tiny = Vocabulary("tiny", PRE.dimensions, PRE.primitives[8:])
    with pytest.raises(VocabularyError, match="no primitive with axis 'x'"):
        label_action(act(x=0.05), None, tiny, METRIC)


# ------------------------------------------------------------------------------ execution

@pytest.mark.parametrize("config", [METRIC, LIBERO], ids=["metric", "libero"])
def test_primitive_round_trip(config):
    smallest = {0.01, 0.08727}
    checked = 0
    for k, p in enumerate(PRE.primitives):
        if p.changes_gripper:
            continue
        action = primitive_to_action(PRE, k, config)
        col = AXIS_COLUMN[p.axis]
        scale = config.position_scale if col < 3 else config.rotation_scale
        assert action[col] * scale == pytest.approx(p.magnitude) and action[6] == 0.0
        assert np.count_nonzero(action) == 1
        if abs(p.magnitude) in smallest:
            if config is METRIC:  # exactly on the ignore threshold -> no label
                assert label_action(action, None, PRE, config) is None
            continue
        assert label_action(action, None, PRE, config) == k, p.phrase
        checked += 1
    assert checked == 36


def test_gripper_primitives_to_action():
    k_open, k_close = PRE.index("open the gripper"), PRE.index("close the gripper")
    np.testing.assert_array_equal(primitive_to_action(PRE, k_open), act(g=-1.0))
    np.testing.assert_array_equal(primitive_to_action(PRE, k_close, LIBERO), act(g=1.0))
    assert label_action(primitive_to_action(PRE, k_open), 1.0) == k_open
    assert label_action(primitive_to_action(PRE, k_close), -1.0) == k_close
    up_10 = PRE.index("raise the arm up by ten centimeters")
    assert primitive_to_action(PRE, up_10, LIBERO, keep_gripper=1.0).tolist() == [
        0, 0, 2.0, 0, 0, 0, 1.0]


def test_finetune_primitives_execute_and_label_to_same_phrase():
    checked = 0
    for k, p in enumerate(FT.primitives):
        if p.axis == "rotate_gripper":
            with pytest.raises(ValueError, match="rotate_gripper"):
                primitive_to_action(FT, k)
            continue
        action = primitive_to_action(FT, k, LIBERO)
        if p.changes_gripper:  # previous command = the opposite one
            label = label_action(action, -action[6], PRE, LIBERO)
        elif abs(p.magnitude) in (0.01, math.radians(5)):
            continue  # at or below the ignore threshold
        else:
            label = label_action(action, None, PRE, LIBERO)
        assert label is not None and PRE.phrases[label] == p.phrase
        checked += 1
    assert checked == 38
