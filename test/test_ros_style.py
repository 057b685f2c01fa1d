"""
ROS 2 style checks (ament_flake8, ament_pep257) of all the package's Python code.

cliprt_core, cliprt_ros and the launch files follow one style: the ament rules.

These are the linters `colcon test` runs in a ROS 2 workspace, with the ament configuration
(99 columns, single quotes, google import order, pep257 with the ament ignore list). They run
in-process; each is skipped only when its module (or the linter it wraps) is not importable.
"""

import os

import pytest
from ros_utils import REPO

# ament_flake8 walks its working directory looking for AMENT_IGNORE markers: run it from each
# checked folder, never from the repo root (it would walk the whole .venv).
FOLDERS = ('cliprt_core', 'cliprt_ros', 'launch')


def _import(module):
    try:
        return pytest.importorskip(module)
    except ImportError as exc:  # e.g. ament_flake8 present but flake8 missing
        pytest.skip(f'{module} is not usable: {exc}')


def _run(main, folder, argv, capsys):
    """Run a linter's ``main`` inside ``folder``; return its result and its output."""
    cwd = os.getcwd()
    capsys.readouterr()
    os.chdir(REPO / folder)
    try:
        result = main(argv=argv)
    finally:
        os.chdir(cwd)
    captured = capsys.readouterr()
    return result, captured.out + captured.err


@pytest.mark.parametrize('folder', FOLDERS)
def test_ament_flake8(folder, capsys):
    flake8_main = _import('ament_flake8.main')
    (rc, errors), output = _run(flake8_main.main_with_errors, folder, ['.'], capsys)
    assert 'files checked' in output
    assert rc == 0, f'{len(errors)} flake8 error(s) in {folder}:\n' + '\n'.join(errors)


@pytest.mark.parametrize('folder', FOLDERS)
def test_ament_pep257(folder, capsys):
    pep257_main = _import('ament_pep257.main')
    rc, output = _run(pep257_main.main, folder, ['.'], capsys)
    assert rc == 0, f'pep257 errors in {folder}:\n{output}'


def test_style_checks_detect_violations(tmp_path, capsys):
    """The checkers are live: a file that breaks the rules fails both."""
    flake8_main = _import('ament_flake8.main')
    pep257_main = _import('ament_pep257.main')
    bad = tmp_path / 'bad'
    bad.mkdir()
    (bad / 'bad.py').write_text('import os\n\n\ndef f():\n    """no period"""\n    x = "double"'
                                '\n    return x\n')
    (rc, errors), _ = _run(flake8_main.main_with_errors, bad, ['.'], capsys)
    assert rc == 1 and any('F401' in e for e in errors) and any('Q000' in e for e in errors)
    rc, output = _run(pep257_main.main, bad, ['.'], capsys)
    assert rc == 1 and 'D400' in output
