"""Where shipped configuration files live, in a source checkout and in a colcon install."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_NAME = "cliprt_ros"


def config_dir() -> Path:
    """The ``config/`` folder: $CLIPRT_CONFIG_DIR, the source checkout, or share/cliprt_ros/config."""
    env = os.environ.get("CLIPRT_CONFIG_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    checkout = here.parents[1] / "config"
    if checkout.is_dir():
        return checkout
    # colcon/pip install: <prefix>/lib/pythonX.Y/site-packages/cliprt_core/paths.py
    for parent in here.parents:
        shared = parent / "share" / PACKAGE_NAME / "config"
        if shared.is_dir():
            return shared
    raise FileNotFoundError(
        "cannot find the cliprt config folder; set CLIPRT_CONFIG_DIR to the repository's config/")


def resolve_config_file(kind: str, name_or_path: str | os.PathLike) -> Path:
    """A config file given as a path, or by name under ``config/<kind>/<name>.yaml``."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
        return path
    folder = config_dir() / kind
    candidate = folder / f"{path.name}.yaml"
    if candidate.is_file():
        return candidate
    available = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    raise FileNotFoundError(
        f"no {kind} config {str(name_or_path)!r}: not a file, and not one of {available} in {folder}")
