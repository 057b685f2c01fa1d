"""Fault injection for demonstration data: HDF5 files with corrupted metadata (object headers,
B-trees, local heaps, symbol tables), a corrupted compressed chunk read in a DataLoader worker,
empty and 1x1 frames, and actions far outside LIBERO's range. Every error names the file and
the key and is one line; ``cliprt-train`` exits 2 before writing its run folder."""
import logging
import os
import re
import shutil
import signal

import h5py
import numpy as np
import pytest
from fault_helpers import process_group, start_train

from cliprt_core.cli import train as train_cli
from cliprt_core.data import DataError, read_file_info
from cliprt_core.data.libero_hdf5 import read_actions
from cliprt_core.data.synthetic import libero_file_name, write_libero_hdf5

TASK = "put the bowl on the plate"
TRAIN = ["log.progress=false", "log.tensorboard=false", "train.num_threads=1",
         "train.global_batch_size=4", "train.max_steps=12"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path = tmp_path_factory.mktemp("pristine") / libero_file_name(TASK)
    write_libero_hdf5(path, num_demos=2, length=12, layout="original", instruction=TASK)
    return path


def _copy(pristine, tmp_path):
    path = tmp_path / pristine.name
    shutil.copy(pristine, path)
    return path


def _object_address(path, key: str) -> int:
    with h5py.File(path, "r") as handle:
        return h5py.h5o.get_info(handle[key].id).addr


def _overwrite(path, offset: int, length: int = 24) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(b"\xde\xad\xbe\xef" * (length // 4))


def _train_error(path, tmp_path, capsys, *extra) -> str:
    run_dir = tmp_path / "run"
    code = train_cli.main(["--config", "tiny", f"data.paths=[{path}]", "--run-dir", str(run_dir),
                           *TRAIN, *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert str(path) in err
    return err


@pytest.mark.parametrize("key", ["data", "data/demo_0", "data/demo_1/obs",
                                 "data/demo_1/obs/agentview_rgb", "data/demo_0/actions"])
def test_corrupted_object_headers_name_file_and_key(pristine, tmp_path, key):
    path = _copy(pristine, tmp_path)
    _overwrite(path, _object_address(path, key))
    with pytest.raises(DataError) as err:
        read_file_info(path)
    assert str(err.value).startswith(f"{path}: cannot read '{key}' (corrupted file?): ")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("signature", [b"TREE", b"HEAP", b"SNOD"])
def test_corrupted_group_structures_name_file_and_key(pristine, tmp_path, signature):
    """Every B-tree, local heap and symbol table node of the file, one at a time: the error
    handler must not itself fail on the broken group."""
    content = pristine.read_bytes()
    offsets = [m.start() for m in re.finditer(re.escape(signature), content)]
    assert offsets
    for offset in offsets:
        path = _copy(pristine, tmp_path)
        _overwrite(path, offset)
        with pytest.raises(DataError) as err:
            read_file_info(path)
        message = str(err.value)
        assert re.match(rf"{re.escape(str(path))}: cannot read '[\w/]+' \(corrupted file\?\): ",
                        message), (offset, message)


def test_corrupted_metadata_through_cliprt_train(pristine, tmp_path, capsys):
    path = _copy(pristine, tmp_path)
    _overwrite(path, _object_address(path, "data/demo_1"))
    err = _train_error(path, tmp_path, capsys)
    assert "cannot read 'data/demo_1' (corrupted file?)" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # a subprocess
def test_corrupted_chunk_read_by_a_loader_worker_is_one_line(tmp_path):
    path = tmp_path / libero_file_name(TASK)
    write_libero_hdf5(path, num_demos=2, length=12, layout="no_noops", instruction=TASK)
    with h5py.File(path, "a") as handle:  # one compressed chunk per frame
        obs = handle["data/demo_1/obs"]
        frames = obs["agentview_rgb"][()]
        del obs["agentview_rgb"]
        dataset = obs.create_dataset("agentview_rgb", data=frames, compression="gzip",
                                     chunks=(1, *frames.shape[1:]))
        chunk = dataset.id.get_chunk_info_by_coord((6, 0, 0, 0))
    _overwrite(path, chunk.byte_offset, min(chunk.size, 64) // 4 * 4)
    read_file_info(path)  # the first and last frames are fine: validation passes
    # a real process: it must also exit, not wait forever for a worker at interpreter exit
    process = start_train(["--config", "tiny", f"data.paths=[{path}]", "--run-dir",
                           str(tmp_path / "run"), "data.num_workers=1", *TRAIN])
    try:
        output, _ = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 2, output
    error = output.strip().splitlines()[-1]
    assert error.startswith(f"cliprt-train: error: {path}: cannot read "
                            f"'data/demo_1/obs/agentview_rgb'[6] (corrupted file?)"), output
    assert "Traceback" not in output and "DataLoader worker" not in output
    assert not process_group(process.pid)


@pytest.mark.parametrize("size", [0, 1])
def test_empty_and_tiny_frames_are_rejected_by_validation(pristine, tmp_path, capsys, size):
    path = _copy(pristine, tmp_path)
    with h5py.File(path, "a") as handle:
        obs = handle["data/demo_1/obs"]
        del obs["agentview_rgb"]
        obs.create_dataset("agentview_rgb", data=np.zeros((12, size, size, 3), np.uint8))
    with pytest.raises(DataError, match=re.escape(
            f"{path}: '/data/demo_1/obs/agentview_rgb' frames are {size}x{size} pixels; "
            f"at least 8x8 expected")):
        read_file_info(path)
    err = _train_error(path, tmp_path, capsys)
    assert f"frames are {size}x{size} pixels" in err
    assert not (tmp_path / "run").exists()


def test_actions_far_outside_the_libero_range_are_reported(pristine, tmp_path, caplog):
    path = _copy(pristine, tmp_path)
    with h5py.File(path, "a") as handle:
        handle["data/demo_1/actions"][3, 2] = 1e30
    with caplog.at_level(logging.WARNING, logger="cliprt.data"):
        actions = read_actions(path, ["demo_0", "demo_1"])
    assert actions["demo_1"][3, 2] == np.float32(1e30)  # reported, not altered
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert messages[0].startswith(f"{path}: actions far outside LIBERO's [-1, 1] in 1 demo(s): "
                                  f"demo_1 (max |a| = 1e+30)")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cliprt.data"):
        read_actions(pristine, ["demo_0", "demo_1"])
    assert not caplog.records  # normal data: silent
