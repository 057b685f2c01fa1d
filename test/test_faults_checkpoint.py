"""Fault injection for checkpoints and the atomic writer: files that are not checkpoints, bit
rot, a full disk (a real small tmpfs), stale temporary files, file modes, and a mismatched
official-layout file (rejected before any model is built)."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fault_helpers import REPO, small_tmpfs

from cliprt_core.atomic import (DiskFullError, atomic_write_json, atomic_write_text,
                                clean_stale_temp_files)
from cliprt_core.checkpoint import CheckpointError, load_model, save_model_checkpoint
from cliprt_core.checkpoint.torch_files import atomic_torch_save
from cliprt_core.checkpoint.official import our_state_dict_to_official
from cliprt_core.model import create_model, load_model_config

LFS_POINTER = ("version https://git-lfs.github.com/spec/v1\n"
               "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
               "size 2836512345\n")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(5)
    return create_model(load_model_config("cliprt-tiny")).eval()


def _error(path, **kwargs) -> str:
    with pytest.raises(CheckpointError) as err:
        load_model(path, **kwargs)
    message = str(err.value)
    assert str(path) in message
    assert "weights_only=False" not in message and "\n" not in message
    return message


@pytest.mark.parametrize("content, expected", [
    (b"hello, this is a text file\nsecond line\n", "is a text file, not a torch checkpoint"),
    (LFS_POINTER.encode(), "is a Git LFS pointer file, not the checkpoint (the real file is "
                           "2,836,512,345 bytes): run `git lfs pull`"),
    (b"<!DOCTYPE html><html><body>Access denied</body></html>", "is an HTML page"),
    (np.random.default_rng(0).bytes(4096), "is not a torch checkpoint (unrecognised content"),
])
def test_files_that_are_not_checkpoints_say_what_they_are(tmp_path, content, expected):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    message = _error(path)
    assert expected in message
    assert "pickled code" not in message and "malicious" not in message


def test_plain_pickle_and_pickled_code(tmp_path):
    import pickle

    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    assert "is a plain Python pickle" in _error(path)
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "x": _Exploit()}, evil)
    message = _error(evil)
    assert "refused to load" in message and "system" in message
    assert "never executed" in message


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _flip_tensor_bytes(path: Path) -> str:
    """Flip bytes in the middle of the largest tensor record of a torch zip file."""
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename),
                   key=lambda i: i.file_size)
    with open(path, "r+b") as handle:
        handle.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(handle.read(4), dtype="<u2")
        offset = info.header_offset + 30 + int(name_len) + int(extra_len) + info.file_size // 2
        handle.seek(offset)
        old = handle.read(4)
        handle.seek(offset)
        handle.write(bytes(b ^ 0xFF for b in old))
    return info.filename


def test_bit_rot_in_tensor_data_is_detected(tiny, tmp_path):
    path = tmp_path / "model.pt"
    save_model_checkpoint(tiny, path)
    load_model(path)  # intact: loads
    torch.load(path, weights_only=True)
    entry = _flip_tensor_bytes(path)
    torch.load(path, weights_only=True)  # torch itself does not notice
    message = _error(path)
    assert "corrupted" in message and entry in message and "CRC" in message


def test_truncated_checkpoint_is_named_truncated(tiny, tmp_path):
    path = tmp_path / "model.pt"
    save_model_checkpoint(tiny, path)
    path.write_bytes(path.read_bytes()[:100_000])
    assert "is truncated" in _error(path)


@pytest.mark.slow  # a subprocess
def test_mismatched_official_file_is_rejected_before_building_and_names_the_config(tiny,
                                                                                   tmp_path):
    """A tiny model in the official layout, loaded with the default (ViT-H) config: the error
    names the file, the config, and the config that fits; the 1.35 B model is never built
    (the loading process stays far below its ~5.4 GB of fp32 weights)."""
    path = tmp_path / "cliprt_libero_goal.pt"
    torch.save({"epoch": 1, "state_dict": our_state_dict_to_official(tiny.state_dict())}, path)
    script = (
        "import sys\n"
        "from cliprt_core.checkpoint import CheckpointError, load_model\n"
        "try:\n"
        "    load_model(sys.argv[1])\n"
        "except CheckpointError as exc:\n"
        "    print(exc)\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent (pytest).
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    message, peak_kib = done.stdout.strip().splitlines()
    assert int(peak_kib) < 2_000_000, f"peak RSS {int(peak_kib) / 2**20:.1f} GiB"
    assert str(path) in message
    assert "model_config 'cliprt-plus-vit-h-14-378' (the default for official CLIP-RT+" in message
    assert "it fits model config 'cliprt-tiny': pass model_config='cliprt-tiny'" in message
    assert len(message) < 1200, len(message)
    # with the suggested config it loads
    model, _ = load_model(path, model_config="cliprt-tiny")
    assert torch.equal(model.clip.visual.proj, tiny.clip.visual.proj)


def test_file_matching_no_shipped_config_names_the_closest(tiny, tmp_path):
    state = our_state_dict_to_official(tiny.state_dict())
    state["module.action_head.fc2.weight"] = torch.zeros(9, 64)
    path = tmp_path / "odd.pt"
    torch.save({"epoch": 1, "state_dict": state}, path)
    message = _error(path, model_config="cliprt-tiny")
    assert "no shipped model config fits it (closest: " in message
    assert "module.action_head.fc2.weight: file (9, 64) vs model (7, 64)" in message


# --- the atomic writer ------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    with small_tmpfs(tmp_path / "small", "3M") as mount_point:
        yield mount_point


def test_disk_full_keeps_the_previous_checkpoint(small_disk):
    path = small_disk / "last.pt"
    atomic_torch_save({"w": torch.arange(1000.0)}, path)
    with pytest.raises(DiskFullError) as err:
        atomic_torch_save({"w": torch.zeros(2_000_000)}, path)  # 8 MB on a 3 MiB disk
    message = str(err.value)
    assert message.startswith(f"no space left on device while writing {path}")
    assert "basic_ios" not in message and "previous version" in message
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(1000.0))
    assert sorted(p.name for p in small_disk.iterdir()) == ["last.pt"]  # no temporary left
    with pytest.raises(DiskFullError, match="summary.json"):
        atomic_write_text(small_disk / "summary.json", "x" * 4_000_000)


def test_stale_temporary_files_of_the_atomic_writer_are_cleaned(tmp_path):
    ours = [tmp_path / ".last.pt.a1b2c3d4.tmp", tmp_path / ".config.yaml.zz_9xq01.tmp"]
    others = [tmp_path / ".hidden.tmp", tmp_path / "notes.tmp", tmp_path / ".last.pt.abc.tmp",
              tmp_path / "last.pt"]
    for file in ours + others:
        file.write_bytes(b"x" * 10)
    assert sorted(clean_stale_temp_files(tmp_path)) == sorted(ours)
    assert all(f.exists() for f in others) and not any(f.exists() for f in ours)


def test_atomic_files_follow_the_umask(tiny, tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_json(tmp_path / "run.json", {"a": 1})
        save_model_checkpoint(tiny, tmp_path / "model.pt")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"run.json": 0o640, "model.pt": 0o640, "plain.txt": 0o640}


def test_atomic_module_does_not_import_torch():
    script = "import sys, cliprt_core.atomic; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert done.stdout.strip() == "False", done.stderr
