"""
Where shipped configuration files live, in a source checkout and in a colcon install.

The user-facing YAMLs (``config/{train,eval,nodes}``) are installed to ``share/cliprt_ros/config``;
model architectures ship inside the library as package data (``cliprt_core/model/configs``, see
:func:`cliprt_core.model.list_model_configs`), so they resolve wherever ``cliprt_core`` imports.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_NAME = 'cliprt_ros'


def config_dir() -> Path:
    """``config/``: $CLIPRT_CONFIG_DIR, the source checkout's, or share/cliprt_ros/config."""
    env = os.environ.get('CLIPRT_CONFIG_DIR')
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    checkout = here.parents[1] / 'config'
    if checkout.is_dir():
        return checkout
    # colcon/pip install: <prefix>/lib/pythonX.Y/site-packages/cliprt_core/paths.py
    for parent in here.parents:
        shared = parent / 'share' / PACKAGE_NAME / 'config'
        if shared.is_dir():
            return shared
    raise FileNotFoundError(
        "cannot find the cliprt config folder; set CLIPRT_CONFIG_DIR to the repository's config/")


def config_names(folder: Path) -> list[str]:
    """Names (file stems) of the ``*.yaml`` configs in ``folder``, sorted; [] if it is missing."""
    return sorted(p.stem for p in folder.glob('*.yaml')) if folder.is_dir() else []


def resolve_config_file(kind: str, name_or_path: str | os.PathLike,
                        folder: Path | None = None) -> Path:
    """
    Return a config file given as a path, or by name as ``<folder>/<name>.yaml``.

    ``folder`` defaults to ``config/<kind>`` (:func:`config_dir`); ``kind`` names the config in
    the error raised when neither is found (:class:`FileNotFoundError`, listing the names).
    """
    path = Path(name_or_path)
    if path.suffix in ('.yaml', '.yml', '.json') and path.is_file():
        return path
    folder = config_dir() / kind if folder is None else folder
    candidate = folder / f'{path.name}.yaml'
    if candidate.is_file():
        return candidate
    raise FileNotFoundError(
        f'no {kind} config {str(name_or_path)!r}: not a file, and not one of '
        f'{config_names(folder)} in {folder}')
