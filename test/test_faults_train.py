"""Fault injection for training: real ``cliprt-train`` processes stopped by signals sent to their
process group (DataLoader workers included), a full disk (a real small tmpfs), stale temporary
files of a killed save, a crashed run folder, a resume after a crash, and invalid settings that
must fail before anything is written."""
import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from fault_helpers import process_group, small_tmpfs, start_train

from cliprt_core.atomic import read_jsonl
from cliprt_core.checkpoint.loading import load_payload
from cliprt_core.cli import train as train_cli
from cliprt_core.data.synthetic import libero_file_name, write_libero_hdf5
from cliprt_core.train import Trainer, load_train_config

TASK = "put the bowl on the plate"
COMMON = ["log.progress=false", "log.tensorboard=false", "log.log_every=1", "log.save_every=0",
          "train.num_threads=1", "train.global_batch_size=4"]


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("demos")
    return write_libero_hdf5(root / libero_file_name(TASK), num_demos=2, length=12,
                             layout="no_noops", instruction=TASK, seed=1)


def _args(demos, run_dir, *extra):
    return ["--config", "tiny", f"data.paths=[{demos.path}]", "--run-dir", str(run_dir),
            *COMMON, *extra]


def _wait_for_steps(process, metrics: Path, steps: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.exists() and len(read_jsonl(metrics)) >= steps:
            return
        if process.poll() is not None:
            pytest.fail(f"cliprt-train exited early ({process.returncode}): "
                        f"{process.stdout.read()}")
        time.sleep(0.2)
    process.kill()
    pytest.fail("training did not start in time")


@pytest.mark.slow  # a subprocess
@pytest.mark.parametrize("sig, workers", [(signal.SIGTERM, 2), (signal.SIGINT, 1)])
def test_signal_to_the_process_group_saves_and_resume_continues(tmp_path, demos, sig, workers):
    run_dir = tmp_path / "run"
    process = start_train(_args(demos, run_dir, "train.max_steps=100000",
                                f"data.num_workers={workers}"))
    try:
        _wait_for_steps(process, run_dir / "metrics.jsonl", 3)
        assert len(process_group(process.pid)) == 1 + workers  # the workers get the signal too
        os.killpg(process.pid, sig)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 128 + sig, output
    assert "Traceback" not in output and "finished" not in output, output
    assert f"stopped by {signal.Signals(sig).name} at step" in output
    assert not process_group(process.pid)  # no orphaned worker
    payload = load_payload(run_dir / "checkpoints" / "last.pt").payload
    saved = payload["trainer"]["step"]
    assert [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl")] == list(range(1, saved + 1))
    assert not list(run_dir.rglob(".*.tmp"))

    resumed = start_train(["--run-dir", str(run_dir), "--resume", "--max-steps-this-run",
                           str(saved + 2), f"data.num_workers={workers}"])
    output, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, output
    assert f"finished at step {saved + 2}" in output
    steps = [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl")]
    assert steps == list(range(1, saved + 3))


def test_invalid_settings_fail_before_anything_is_written(tmp_path, demos, capsys):
    cases = [("data.prefetch_factor=0", "data.prefetch_factor=0: must be >= 1"),
             ("train.num_threads=-1", "train.num_threads=-1: must be >= 1 or null"),
             ("data.cache_mb=-5", "data.cache_mb=-5.0: must be >= 0")]
    if not torch.cuda.is_available():
        cases.append(("train.device=cuda", "train.device=cuda: no CUDA GPU is available"))
    for override, message in cases:
        run_dir = tmp_path / override.replace("=", "_")
        assert train_cli.main(_args(demos, run_dir, "data.num_workers=1", override)) == 2
        err = capsys.readouterr().err
        assert err.startswith("cliprt-train: error: ") and message in err, err
        assert len(err.strip().splitlines()) == 1
        assert not run_dir.exists(), override


def test_stale_temporary_files_of_a_killed_save_are_removed(tmp_path, demos):
    config = load_train_config("tiny", [f"data.paths=[{demos.path}]", "data.num_workers=0",
                                        f"log.output_dir={tmp_path}", *COMMON])
    trainer = Trainer(config)
    trainer.train(until_step=1)
    trainer.close()
    stale = [trainer.run.checkpoints / ".last.pt.9f8e7d6c.tmp",
             trainer.run.path / ".config.yaml.abcdef12.tmp"]
    for file in stale:
        file.write_bytes(os.urandom(1 << 20))  # what a save killed mid-write leaves
    resumed = Trainer(config, resume=True)
    assert not any(f.exists() for f in stale)
    resumed.train(until_step=2)
    assert load_payload(resumed.run.last).payload["trainer"]["step"] == 2
    resumed.close()


@pytest.fixture
def small_disk(tmp_path):
    """120 MiB: room for one tiny-model last.pt (~81 MB) but not for a second one beside it."""
    with small_tmpfs(tmp_path / "disk", "120M") as mount_point:
        yield mount_point


def test_disk_full_during_a_save_keeps_the_previous_checkpoint(small_disk, demos, capsys):
    run_dir = small_disk / "run"
    assert train_cli.main(_args(demos, run_dir, "data.num_workers=0",
                                "--max-steps-this-run", "2")) == 0
    before = (run_dir / "checkpoints" / "last.pt").read_bytes()
    capsys.readouterr()
    code = train_cli.main(["--run-dir", str(run_dir), "--resume", "--max-steps-this-run", "4"])
    err = capsys.readouterr().err
    assert code == 74, err
    assert err.startswith(f"cliprt-train: error: no space left on device while writing "
                          f"{run_dir / 'checkpoints' / 'last.pt'}")
    assert "--resume" in err and "Traceback" not in err and "basic_ios" not in err
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == before
    assert load_payload(run_dir / "checkpoints" / "last.pt").payload["trainer"]["step"] == 2
    assert not list(run_dir.rglob(".*.tmp"))


def test_fresh_run_in_a_crashed_run_folder_starts_a_clean_history(tmp_path, demos):
    run_dir = tmp_path / "run"
    (run_dir / "tb").mkdir(parents=True)
    old = "".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (5, 10, 15, 20))
    (run_dir / "metrics.jsonl").write_text(old)
    (run_dir / "config.yaml").write_text("model: cliprt-tiny\n")
    (run_dir / "notes.txt").write_text("mine")
    config = load_train_config("tiny", [f"data.paths=[{demos.path}]", "data.num_workers=0",
                                        *COMMON])
    trainer = Trainer(config, run_dir=run_dir)
    trainer.train(until_step=2)
    trainer.close()
    assert [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl")] == [1, 2]
    archived = list(run_dir.glob("previous-*"))
    assert len(archived) == 1
    assert (archived[0] / "metrics.jsonl").read_text() == old
    assert (archived[0] / "tb").is_dir() and (archived[0] / "config.yaml").exists()
    assert (run_dir / "notes.txt").read_text() == "mine"  # not ours: never moved


def test_folder_of_a_run_that_failed_before_its_first_step_is_reused(tmp_path, demos):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("model: cliprt-tiny\n")
    config = load_train_config("tiny", [f"data.paths=[{demos.path}]", "data.num_workers=0",
                                        *COMMON])
    trainer = Trainer(config, run_dir=run_dir)
    trainer.train(until_step=1)
    trainer.close()
    assert not list(run_dir.glob("previous-*"))
    assert "global_batch_size: 4" in (run_dir / "config.yaml").read_text()


def test_resume_after_a_crash_keeps_one_consistent_history(tmp_path, demos):
    config = load_train_config("tiny", [f"data.paths=[{demos.path}]", "data.num_workers=0",
                                        f"log.output_dir={tmp_path}", *COMMON])
    trainer = Trainer(config)
    trainer.train(until_step=2)
    trainer.close()
    metrics = trainer.run.metrics_file
    with open(metrics, "ab") as handle:  # logged after last.pt, then the process crashed
        handle.write(b'{"step": 3, "loss": 0.5}\n{"step": 4, "lo\n{"step": 4, "loss": 0.4}\n')
    resumed = Trainer(config, resume=True)
    resumed.train(until_step=4)
    resumed.close()
    assert [r["step"] for r in read_jsonl(metrics)] == [1, 2, 3, 4]
    assert metrics.with_suffix(".corrupt.jsonl").read_bytes() == b'{"step": 4, "lo\n'


def test_a_diverged_run_never_saves_non_finite_weights(tmp_path, demos, capsys):
    """lr=1e30: step 1 is finite, step 2's gradients are not. Saves happen every step but the
    loss is logged only every 100 steps: the save of step 2 must refuse, keeping step 1."""
    run_dir = tmp_path / "run"
    code = train_cli.main(_args(demos, run_dir, "data.num_workers=0", "optim.lr=1.0e+30",
                                "optim.warmup_steps=0", "log.log_every=100",
                                "log.save_every=1", "train.max_steps=10"))
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("cliprt-train: error: non-finite gradients before step 2: the "
                          "weights are not saved; ") and "last.pt is kept" in err
    payload = load_payload(run_dir / "checkpoints" / "last.pt").payload
    assert payload["trainer"]["step"] == 1
    assert all(torch.isfinite(t).all() for t in payload["state_dict"].values())


def test_signals_during_set_up_and_a_second_ctrl_c():
    from cliprt_core.signals import Interrupted, interrupt_on_signals, StopRequest

    with pytest.raises(Interrupted) as err, interrupt_on_signals():
        signal.raise_signal(signal.SIGTERM)  # while the model is built: nothing to save yet
    assert err.value.signum == signal.SIGTERM and str(err.value) == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with StopRequest('stopping after this step') as stop:
        signal.raise_signal(signal.SIGINT)
        assert stop.requested and stop.name == "SIGINT"  # first Ctrl-C: stop after the step
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # second Ctrl-C: out now
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
