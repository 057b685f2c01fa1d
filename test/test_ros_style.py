"""
ROS 2 style checks (ament_flake8, ament_pep257) of all the package's Python code.

cliprt_core, cliprt_ros and the launch files follow one style: the ament rules.

These are the linters `colcon test` runs in a ROS 2 workspace, with the ament configuration
(99 columns, single quotes, google import order, pep257 with the ament ignore list). They run
in a subprocess; each is skipped only when its module (or the linter it wraps) is not importable.
"""

import subprocess
import sys

import pytest
from ros_utils import REPO

# ament_flake8 walks its working directory looking for AMENT_IGNORE markers: run it from each
# checked folder, never from the repo root (it would walk the whole .venv).
FOLDERS = ('cliprt_core', 'cliprt_ros', 'launch')


def _require(module):
    try:
        pytest.importorskip(module)
    except ImportError as exc:  # e.g. ament_flake8 present but flake8 missing
        pytest.skip(f'{module} is not usable: {exc}')


def _run(module, folder):
    """
    Run a linter (``python -m module .``) inside ``folder``; return its exit code and output.

    In a subprocess: flake8 forks a process pool, and a fork of this test process (rclpy, torch
    and DDS threads alive) can crash in the child and hang the pool.
    """
    _require(module)
    done = subprocess.run([sys.executable, '-m', module, '.'], cwd=REPO / folder,
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize('folder', FOLDERS)
def test_ament_flake8(folder):
    rc, output = _run('ament_flake8.main', folder)
    assert 'files checked' in output
    assert rc == 0, f'flake8 errors in {folder}:\n{output}'


@pytest.mark.parametrize('folder', FOLDERS)
def test_ament_pep257(folder):
    rc, output = _run('ament_pep257.main', folder)
    assert rc == 0, f'pep257 errors in {folder}:\n{output}'


def test_style_checks_detect_violations(tmp_path):
    """The checkers are live: a file that breaks the rules fails both."""
    bad = tmp_path / 'bad'
    bad.mkdir()
    (bad / 'bad.py').write_text('import os\n\n\ndef f():\n    """no period"""\n    x = "double"'
                                '\n    return x\n')
    rc, output = _run('ament_flake8.main', bad)
    assert rc == 1 and 'F401' in output and 'Q000' in output
    rc, output = _run('ament_pep257.main', bad)
    assert rc == 1 and 'D400' in output
