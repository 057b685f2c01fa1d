"""The LIBERO HDF5 data pipeline on real files written in both published layouts."""
import json
import pickle

import h5py
import numpy as np
import pytest
import torch

from cliprt_core.actions import LabelingConfig, label_actions, load_vocabulary
from cliprt_core.cli import data as data_cli
from cliprt_core.data import (CHUNK_PAD_VALUE, DataConfig, DataError, DemoDataset,
                              EpochBatchSampler, build_datasets, find_hdf5_files,
                              instruction_from_filename, make_loader, read_file_info, split_demos)
from cliprt_core.data.libero_hdf5 import noop_mask
from cliprt_core.data.synthetic import libero_file_name, write_libero_hdf5

SPATIAL = "pick up the black bowl next to the ramekin and place it on the plate"


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """One original-layout file and one no_noops file (with a gap in its demo numbers)."""
    root = tmp_path_factory.mktemp("libero")
    original = write_libero_hdf5(root / "orig" / libero_file_name(SPATIAL), num_demos=3,
                                 length=[9, 12, 10], layout="original", instruction=SPATIAL,
                                 seed=1)
    no_noops = write_libero_hdf5(
        root / "nn" / libero_file_name("turn on the stove", scene="KITCHEN_SCENE3"),
        num_demos=3, length=11, layout="no_noops", instruction="ignored: not stored",
        drop_demos=[1], seed=2)
    return root, original, no_noops


def _dataset(info, **kw):
    kw.setdefault("image_size", 64)
    kw.setdefault("augment", False)
    return DemoDataset([info], **kw)


@pytest.mark.parametrize("name, expected", [
    ("pick_up_the_black_bowl_on_the_plate_demo.hdf5", "pick up the black bowl on the plate"),
    ("KITCHEN_SCENE3_turn_on_the_stove_and_put_the_moka_pot_on_it_demo.hdf5",
     "turn on the stove and put the moka pot on it"),
    ("LIVING_ROOM_SCENE10_put_both_the_soup_and_the_box_in_the_basket_demo.hdf5",
     "put both the soup and the box in the basket"),
    ("/some/dir/open_the_top_drawer_demo.hdf5", "open the top drawer"),
])
def test_instruction_from_filename(name, expected):
    assert instruction_from_filename(name) == expected


def test_instruction_is_task_language_not_the_bddl_sentence(tmp_path):
    """LIBERO's original files keep the BDDL sentence in problem_info, but evaluation gives
    policies task.language (the file name's), so training takes the file name too."""
    task = "pick up the black bowl between the plate and the ramekin and place it on the plate"
    bddl = "Pick the akita black bowl between the plate and the ramekin and place it on the plate"
    named = write_libero_hdf5(tmp_path / libero_file_name(task), length=4, layout="original",
                              instruction=bddl)
    assert read_file_info(named.path).instruction == task
    custom = write_libero_hdf5(tmp_path / "recording_07.hdf5", length=4, layout="original",
                               instruction="wipe the table")  # not LIBERO-named: problem_info
    info = read_file_info(custom.path)
    assert (info.layout, info.instruction) == ("original", "wipe the table")


def test_file_name_rule_gives_task_language_for_every_libero_task():
    from cliprt_core.sim import SUITES, import_libero, libero_available

    if not libero_available():
        pytest.skip("LIBERO is not installed")
    benchmarks = import_libero().benchmark.get_benchmark_dict()
    suites = [benchmarks[name]() for name in SUITES]
    tasks = [suite.get_task(i) for suite in suites for i in range(suite.n_tasks)]
    assert len(tasks) == 130
    for task in tasks:
        assert instruction_from_filename(f"{task.name}_demo.hdf5") == task.language, task.name


def test_both_layouts_are_read(suite):
    root, original, no_noops = suite
    a = read_file_info(original.path)
    assert (a.layout, a.instruction) == ("original", SPATIAL)
    assert [d.length for d in a.demos] == [9, 12, 10] and a.image_shape == (64, 64, 3)
    b = read_file_info(no_noops.path)
    assert (b.layout, b.instruction) == ("no_noops", "turn on the stove")
    assert [d.name for d in b.demos] == ["demo_0", "demo_2"]  # the gap of a failed replay
    assert a.upside_down and b.upside_down
    # a folder (recursive), a glob, and several suites at once; duplicates collapse
    assert len(find_hdf5_files([str(root), str(root / "*" / "*.hdf5")])) == 2
    assert find_hdf5_files(str(root / "nn" / "*.hdf5")) == [no_noops.path.resolve()]
    # a hidden folder (a collection's staging area of unfinished demos) is not data
    staged = root / "nn" / ".parts" / "task"
    staged.mkdir(parents=True, exist_ok=True)
    (staged / "init_3.hdf5").write_bytes(b"not a demo file")
    assert find_hdf5_files(str(root / "nn")) == [no_noops.path.resolve()]


def test_demo_order_is_numeric(tmp_path):
    info = write_libero_hdf5(tmp_path / "t_demo.hdf5", num_demos=12, length=2, wrist=False)
    names = [d.name for d in read_file_info(info.path).demos]
    assert names == [f"demo_{i}" for i in range(12)]


def test_images_are_upright_and_chunks_padded(suite):
    _, original, _ = suite
    ds = _dataset(read_file_info(original.path))
    assert len(ds) == 9 + 12 + 10
    for index in (0, 8, 9, 30):
        sample = ds[index]
        ep, pos = ds.index[index]
        name, t = ds.episodes[ep].demo, int(ds.episodes[ep].steps[pos])
        upright = original.upright[name][t]
        assert torch.equal(sample["pixels"], torch.from_numpy(upright).permute(2, 0, 1))
        assert (sample["pixels"][:, :4, :4] == 255).all()  # the marker is top-left
        actions = original.actions[name]
        valid = min(8, len(actions) - t)
        np.testing.assert_allclose(sample["actions"][:valid], actions[t:t + valid], rtol=1e-6)
        assert (sample["actions"][valid:] == CHUNK_PAD_VALUE).all()
        assert sample["action_mask"].tolist() == [True] * valid + [False] * (8 - valid)
        assert ds.instructions[int(sample["instruction_id"])] == SPATIAL


def test_augmentation_is_seeded_per_sample_and_epoch(suite):
    _, original, _ = suite
    ds = _dataset(read_file_info(original.path), augment=True, image_size=48, seed=5)
    a, b, c = ds[(3, 0)], ds[(3, 0)], ds[(3, 1)]
    assert a["pixels"].shape == (3, 48, 48) and a["pixels"].dtype == torch.uint8
    assert torch.equal(a["pixels"], b["pixels"]) and not torch.equal(a["pixels"], c["pixels"])


def test_wrist_camera_and_camera_selection(suite):
    _, original, _ = suite
    info = read_file_info(original.path, wrist=True)
    sample = _dataset(info, wrist=True)[0]
    wrist = original.wrist_upright["demo_0"][0]
    assert torch.equal(sample["wrist_pixels"], torch.from_numpy(wrist).permute(2, 0, 1))
    only_wrist = _dataset(read_file_info(original.path, camera="eye_in_hand"),
                          camera="eye_in_hand")[0]
    assert torch.equal(only_wrist["pixels"], sample["wrist_pixels"])


def test_skip_noops_uses_openvla_rule(suite):
    _, original, _ = suite
    info = read_file_info(original.path)
    actions = original.actions["demo_0"]
    assert noop_mask(actions).tolist()[:4] == [True, True, True, False]
    ds = _dataset(info, skip_noops=True)
    assert len(ds) == 9 + 12 + 10 - 3 * 3
    first = ds[0]  # demo_0 now starts at raw step 3
    np.testing.assert_allclose(first["actions"][:6], actions[3:9], rtol=1e-6)


def test_discrete_targets(suite):
    _, original, _ = suite
    vocabulary = load_vocabulary("pretrain_50")
    ds = _dataset(read_file_info(original.path), head="discrete", vocabulary=vocabulary)
    expected = np.concatenate([
        label_actions(original.actions[n].astype(np.float32), None, vocabulary,
                      LabelingConfig.libero()) for n in original.demos])
    assert len(ds) == (expected >= 0).sum() < len(expected)  # unlabeled steps dropped
    labels = [int(ds[i]["label"]) for i in range(len(ds))]
    assert labels == expected[expected >= 0].tolist()
    assert int(ds[0]["phrase_id"]) == labels[0]


def test_multiworker_loader_matches_in_process_and_pickles(suite):
    root, _, _ = suite
    cfg = DataConfig(paths=[str(root)], num_workers=2)
    train, _ = build_datasets(cfg, image_size=32, head="chunk", seed=3)
    train[0]  # opens a handle in this process: it must not travel to the workers
    copy = pickle.loads(pickle.dumps(train))
    assert copy._handles == {} and copy._datasets == {} and train._datasets
    sampler = EpochBatchSampler(len(train), 8, 4, seed=3)
    batches = {}
    for workers in (0, 2):
        loader = make_loader(train, sampler, num_workers=workers, persistent=False)
        batches[workers] = list(loader)
    assert len(batches[0]) == len(batches[2]) == (len(train) // 8) * 2
    for x, y in zip(batches[0], batches[2]):
        assert torch.equal(x["pixels"], y["pixels"]) and torch.equal(x["actions"], y["actions"])


def test_cache_returns_the_same_samples(suite):
    _, original, _ = suite
    info = read_file_info(original.path)
    plain, cached = _dataset(info), _dataset(info, cache_mb=1)
    for i in list(range(len(plain))) * 2:
        assert torch.equal(plain[i]["pixels"], cached[i]["pixels"])
    assert cached._cache.hits > cached._cache.misses > 0
    assert cached._cache.used <= 2**20


def test_split_is_by_demo(suite):
    root, _, _ = suite
    cfg = DataConfig(paths=[str(root)], val_fraction=0.34, split_seed=1)
    train, val = build_datasets(cfg, image_size=64, head="chunk")
    train_demos = {(e.file_index, e.demo) for e in train.episodes}
    val_demos = {(e.file_index, e.demo) for e in val.episodes}
    assert not train_demos & val_demos and len(train_demos | val_demos) == 5
    assert {f for f, _ in val_demos} == {0, 1}  # every task is represented
    assert split_demos(train.files, 0.34, 1) == split_demos(train.files, 0.34, 1)
    assert val.instructions == train.instructions and not val.augment


def test_sampler_positions_and_rank_slices():
    full = EpochBatchSampler(40, 8, 8, seed=0)
    single = [b for b in full]
    full.set_position(0, 2)
    assert list(full) == single[2:]  # resuming skips exactly the consumed batches
    ranks = [list(EpochBatchSampler(40, 8, 2, world_size=2, rank=r, seed=0)) for r in (0, 1)]
    for step, batch in enumerate(single):  # 2 ranks x 2 accumulation rounds x 2 samples
        rounds = [ranks[r][step * 2 + a] for a in (0, 1) for r in (0, 1)]
        assert sum(rounds, []) == batch
    with pytest.raises(ValueError, match="fewer than one global batch"):
        EpochBatchSampler(5, 8, 8)


def test_corrupted_file_names_the_file(tmp_path):
    info = write_libero_hdf5(tmp_path / "bad_demo.hdf5", num_demos=2, length=6)
    data = info.path.read_bytes()
    info.path.write_bytes(data[: len(data) // 3])  # truncated download
    with pytest.raises(DataError, match="bad_demo.hdf5"):
        read_file_info(info.path)
    garbage = tmp_path / "garbage_demo.hdf5"
    garbage.write_bytes(b"not an hdf5 file at all" * 100)
    with pytest.raises(DataError, match="garbage_demo.hdf5.*cannot open"):
        read_file_info(garbage)


def test_missing_keys_and_wrong_layout_name_the_key(tmp_path):
    info = write_libero_hdf5(tmp_path / "a_demo.hdf5", num_demos=2, length=6)
    with h5py.File(info.path, "a") as f:
        del f["data/demo_1/obs/agentview_rgb"]
    with pytest.raises(DataError,
                       match=r"a_demo.hdf5: missing key 'data/demo_1/obs/agentview_rgb'"):
        read_file_info(info.path)
    robomimic = tmp_path / "robomimic.hdf5"  # a different convention: obs/agentview_image
    with h5py.File(robomimic, "w") as f:
        f.create_dataset("data/demo_0/actions", data=np.zeros((3, 7)))
        f.create_dataset("data/demo_0/obs/agentview_image", data=np.zeros((3, 8, 8, 3), np.uint8))
    with pytest.raises(DataError,
                       match=r"missing key 'data/demo_0/obs/agentview_rgb'.*agentview_image"):
        read_file_info(robomimic)
    nodata = tmp_path / "nodata.hdf5"
    with h5py.File(nodata, "w") as f:
        f.create_group("observations")
    with pytest.raises(DataError, match=r"nodata.hdf5: missing key 'data'"):
        read_file_info(nodata)
    wrong_shape = tmp_path / "shape.hdf5"
    with h5py.File(wrong_shape, "w") as f:
        f.create_dataset("data/demo_0/actions", data=np.zeros((3, 6)))
        f.create_dataset("data/demo_0/obs/agentview_rgb", data=np.zeros((3, 8, 8, 3), np.uint8))
    with pytest.raises(DataError, match=r"actions' has shape \(3, 6\)"):
        read_file_info(wrong_shape)


def test_empty_folder_and_bad_paths(tmp_path):
    with pytest.raises(DataError, match="contains no HDF5 files"):
        find_hdf5_files(str(tmp_path))
    with pytest.raises(DataError, match="matches no HDF5 files"):
        find_hdf5_files(str(tmp_path / "*.hdf5"))
    with pytest.raises(DataError, match="not found"):
        find_hdf5_files(str(tmp_path / "missing.hdf5"))
    with pytest.raises(DataError, match="no data paths"):
        find_hdf5_files([])


def test_inspect_cli(suite, capsys):
    root, original, _ = suite
    assert data_cli.main(["inspect", str(root), "--labels"]) == 0
    out = capsys.readouterr().out
    assert SPATIAL in out and "turn on the stove" in out and "2 files, 5 demos" in out
    assert "(64, 64, 3)" in out and "gripper" in out and "primitive labels" in out
    assert data_cli.main(["inspect", str(original.path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)[0]
    stacked = np.concatenate(list(original.actions.values()))
    assert summary["demos"] == 3 and summary["length"] == {"min": 9, "mean": 31 / 3, "max": 12}
    assert summary["actions"]["x"]["mean"] == pytest.approx(stacked[:, 0].mean(), abs=1e-6)
    assert summary["noop_steps"] == 9
    assert data_cli.main(["inspect", str(root / "nothing")]) == 2
    assert "not found" in capsys.readouterr().err
