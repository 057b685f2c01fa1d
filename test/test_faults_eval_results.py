"""Fault injection for an evaluation's results folder: torn and corrupted episode lines (with
and without a trailing newline, NUL blocks, bad UTF-8, wrong shapes), a corrupted run.json and
stale temporary files. A folder stays usable: nothing crashes, no bad byte is lost."""
import json
import os

import pytest

from cliprt_core.cli import eval as eval_cli
from cliprt_core.eval.results import ResultsDir, ResultsMismatchError

SETTINGS = {"seed": 7, "max_steps": 16}


def _episode(episode: int, success: bool = True) -> dict:
    return {"suite": "libero_goal", "task_id": 1, "task": "open the drawer", "episode": episode,
            "success": success, "steps": 9}


BAD_LINES = [
    b'{"suite": "libero_goal", "ta',          # torn write that still got its newline
    b"\x00" * 64,                             # a block of NULs (metadata written, data not)
    b'{"suite": "libero_goal", "task_id": 1, "episode": 2, "succ\xff\xfe"}',  # not UTF-8
    b"[1, 2, 3]",                             # JSON, but not an episode record
    b'{"suite": "libero_goal", "task_id": "one", "episode": 3, "success": true}',
]


def _write_broken_folder(results: ResultsDir) -> bytes:
    """Good episodes 0 and 1 with every kind of bad line between and after them."""
    results.path.mkdir(parents=True, exist_ok=True)
    good = [json.dumps(_episode(e)).encode() for e in (0, 1)]
    content = b"\n".join([good[0], *BAD_LINES[:3], good[1], *BAD_LINES[3:]]) + b"\n"
    results.episodes_path.write_bytes(content)
    return content


def test_reading_a_broken_folder_never_crashes_and_changes_nothing(tmp_path):
    results = ResultsDir(tmp_path)
    content = _write_broken_folder(results)
    inode = results.episodes_path.stat().st_ino
    with pytest.warns(UserWarning, match="skipped 5 corrupted line"):
        assert results.done_episodes() == {("libero_goal", 1, 0), ("libero_goal", 1, 1)}
    with pytest.warns(UserWarning):
        summary = results.write_summary(plot=False)
    assert summary["overall"]["episodes"] == 2
    # read-only: a concurrent writer's file is neither rewritten nor replaced
    assert results.episodes_path.read_bytes() == content
    assert results.episodes_path.stat().st_ino == inode


def test_a_resumed_run_quarantines_bad_lines_and_keeps_their_bytes(tmp_path):
    results = ResultsDir(tmp_path)
    _write_broken_folder(results)
    with pytest.warns(UserWarning, match="5 torn or corrupted line.*moved to "
                                         "episodes.corrupt.jsonl"):
        results.check_run(SETTINGS)
    assert results.corrupt_path.read_bytes() == b"\n".join(BAD_LINES) + b"\n"
    results.append(_episode(2, success=False))
    results.append(_episode(3))
    assert [r["episode"] for r in results.records()] == [0, 1, 2, 3]
    # the folder stays usable for later runs: no warnings, no crash, the history is consistent
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ResultsDir(tmp_path).check_run(SETTINGS)
        assert ResultsDir(tmp_path).write_summary(plot=False)["overall"]["successes"] == 3


def test_torn_last_line_with_newline_no_longer_poisons_the_folder(tmp_path):
    """The reported sequence: a torn last line that ends in a newline, a resume that appends
    behind it, then every later run and --summary-only."""
    results = ResultsDir(tmp_path)
    results.append(_episode(0))
    with open(results.episodes_path, "ab") as handle:
        handle.write(b'{"suite": "libero_goal", "task_id": 1, "epis\n')
    with pytest.warns(UserWarning, match="moved to"):
        results.check_run(SETTINGS)  # the resumed run
    results.append(_episode(1))
    assert eval_cli.main(["--suite", "libero_goal", "--tasks", "1", "--episodes", "2",
                          "--results-dir", str(tmp_path), "--summary-only"]) == 0
    summary = json.loads(results.summary_path.read_text())
    assert summary["complete"] and summary["overall"]["episodes"] == 2
    assert results.corrupt_path.read_bytes() == b'{"suite": "libero_goal", "task_id": 1, "epis\n'


def test_summary_only_reads_a_folder_broken_before_the_fix(tmp_path, capsys):
    results = ResultsDir(tmp_path)
    _write_broken_folder(results)
    with pytest.warns(UserWarning, match="skipped 5 corrupted"):
        code = eval_cli.main(["--suite", "libero_goal", "--tasks", "1", "--episodes", "2",
                              "--results-dir", str(tmp_path), "--summary-only"])
    assert code == 0 and "| libero_goal | 1 | open the drawer | 2/2 |" in capsys.readouterr().out
    assert json.loads(results.summary_path.read_text())["overall"]["successes"] == 2


def test_unfinished_last_line_is_not_reported_while_a_run_writes(tmp_path, recwarn):
    results = ResultsDir(tmp_path)
    results.append(_episode(0))
    with open(results.episodes_path, "ab") as handle:
        handle.write(b'{"suite": "libero_goal", "task_i')  # another process is mid-write
    assert results.done_episodes() == {("libero_goal", 1, 0)}
    assert not [w for w in recwarn if "corrupted" in str(w.message)]


def test_corrupted_run_json_is_named_and_summaries_still_work(tmp_path):
    results = ResultsDir(tmp_path)
    results.check_run(SETTINGS)
    results.append(_episode(0))
    results.run_path.write_bytes(b'{"seed": 7, "max_st')
    with pytest.raises(ResultsMismatchError, match=f"{results.run_path} is corrupted.*delete it"):
        results.check_run(SETTINGS)
    with pytest.warns(UserWarning, match="run.json is corrupted"):
        assert results.write_summary(plot=False)["run"] is None


def test_a_starting_run_removes_stale_temporary_files(tmp_path):
    results = ResultsDir(tmp_path)
    (tmp_path / "videos" / "libero_goal").mkdir(parents=True)
    stale = [tmp_path / ".summary.json.k3j4h5g6.tmp",
             tmp_path / "videos" / "libero_goal" / ".success.png.a1b2c3d4.tmp"]
    for file in stale:
        file.write_bytes(os.urandom(1000))
    keep = tmp_path / "notes.tmp"
    keep.write_text("mine")
    results.check_run(SETTINGS)
    assert not any(f.exists() for f in stale) and keep.exists()


@pytest.mark.slow
def test_cliprt_eval_stopped_by_sigterm_exits_143_and_resumes(tmp_path):
    """A real cliprt-eval with 2 env workers, SIGTERM to its process group (as systemd or SLURM
    send it) after the first episode: a clean stop (143, partial summary, finished episodes kept,
    no episode recorded as a failure because its worker was killed), then the same command
    finishes only what is missing."""
    import signal
    import subprocess
    import sys
    import time

    from fault_helpers import REPO

    results = ResultsDir(tmp_path / "results")
    command = [sys.executable, "-m", "cliprt_core.cli.eval", "--suite", "libero_spatial",
               "--tasks", "0", "--episodes", "3", "--max-steps", "16", "--camera-size", "64",
               "--workers", "2", "--no-progress", "--results-dir", str(results.path)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 240
    while not results.records() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert results.records(), proc.communicate()[1]
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped" in err and "Traceback" not in err
    kept = {r["episode"] for r in results.records()}
    assert not any(r.get("error") for r in results.records())
    summary = json.loads(results.summary_path.read_text())
    assert summary["missing_episodes"] == 3 - len(kept) > 0
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(r["episode"] for r in results.records()) == [0, 1, 2]  # none twice or lost
