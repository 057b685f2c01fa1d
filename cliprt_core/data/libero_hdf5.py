"""LIBERO demonstration HDF5 files: discovery, layout validation, instructions.

Two layouts are read, and told apart by their ``data`` attributes:

* ``original`` -- LIBERO's own files: ``data.attrs['problem_info']`` (JSON) holds the BDDL's
  ``language_instruction``; demos start with teleoperation no-op steps.
* ``no_noops`` -- OpenVLA's regeneration (what CLIP-RT+ trained on): the same per-demo datasets,
  no ``data`` attributes; no-ops and failed replays removed (demo numbers may have gaps).

The instruction of a file named the LIBERO way (``{task}_demo.hdf5``) comes from its name in
both layouts: that is ``task.language``, what the benchmark gives policies at evaluation (and
what LIBERO's and OpenVLA's training used). ``problem_info``'s sentence is the BDDL text
(``env.language_instruction``), which differs for 34 of the 130 LIBERO tasks ("Pick the akita
black bowl ..." vs "pick up the black bowl ..."); it is used only for files named otherwise.

Both store images as LIBERO renders them, rotated by 180 degrees (OpenGL convention, recorded as
``macros_image_convention='opengl'`` in original files). The readers here only describe files;
:mod:`cliprt_core.data.dataset` turns them into upright training samples.
"""
from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import h5py
import numpy as np

HDF5_SUFFIXES = (".hdf5", ".h5")
_DEMO_SUFFIXES = ("_demo.hdf5", "_demo.h5")  # LIBERO: {task name}_demo.hdf5
CAMERA_KEYS = {"agentview": "agentview_rgb", "eye_in_hand": "eye_in_hand_rgb",
               "wrist": "eye_in_hand_rgb"}
_DEMO = re.compile(r"^demo_(\d+)$")
_SCENE = re.compile(r"^[A-Z0-9_]*?SCENE\d+_")


class DataError(ValueError):
    """A data set cannot be used: no files, an unreadable / corrupted file, or a wrong layout."""


@dataclass(frozen=True)
class DemoInfo:
    """One demonstration: its group name (``demo_7``) and number of steps."""

    name: str
    length: int


@dataclass(frozen=True)
class LiberoFile:
    """A validated LIBERO task file."""

    path: Path
    layout: str  # "original" | "no_noops"
    instruction: str
    demos: tuple[DemoInfo, ...]
    image_shape: tuple[int, int, int]  # of the selected camera, (H, W, 3)
    upside_down: bool  # stored rotated by 180 degrees (LIBERO's OpenGL convention)

    @property
    def num_steps(self) -> int:
        return sum(d.length for d in self.demos)


def camera_key(camera: str) -> str:
    """The ``obs`` dataset name of a camera: agentview, eye_in_hand / wrist, or a raw key."""
    return CAMERA_KEYS.get(camera, camera)


def find_hdf5_files(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Files named by ``paths``: HDF5 files, folders (searched recursively) or glob patterns.

    Raises DataError when an entry matches nothing or the result is empty.
    """
    entries = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not entries:
        raise DataError("no data paths given (set data.paths to files, folders or globs)")
    found: dict[Path, None] = {}
    for entry in entries:
        text = os.path.expanduser(str(entry))
        path = Path(text)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*")
                             if p.suffix in HDF5_SUFFIXES and p.is_file())
            if not matches:
                raise DataError(f"folder {path} contains no HDF5 files (*.hdf5, *.h5)")
        elif path.is_file():
            matches = [path]
        elif glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True)
                             if Path(p).is_file() and Path(p).suffix in HDF5_SUFFIXES)
            if not matches:
                raise DataError(f"pattern {text!r} matches no HDF5 files")
        else:
            raise DataError(f"data path not found: {path}")
        for match in matches:
            found.setdefault(match.resolve(), None)
    return list(found)


def instruction_from_filename(name: str | os.PathLike) -> str:
    """LIBERO's rule: strip ``_demo.hdf5``, drop a ``KITCHEN_SCENE3_`` prefix, ``_`` -> space."""
    stem = Path(name).name
    for suffix in (*_DEMO_SUFFIXES, *HDF5_SUFFIXES):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    if stem[:1].isupper():
        stem = _SCENE.sub("", stem, count=1)
    return " ".join(part for part in stem.split("_") if part)


def open_hdf5(path: str | os.PathLike) -> h5py.File:
    """Open read-only; an unreadable / truncated file becomes a DataError naming it."""
    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot open as HDF5 (corrupted, truncated or not an HDF5 "
                        f"file): {exc}") from exc


def demo_names(data: h5py.Group) -> list[str]:
    """``demo_*`` groups in numeric order (demo_2 before demo_10)."""
    names = [k for k in data.keys() if _DEMO.match(k)]
    return sorted(names, key=lambda k: int(_DEMO.match(k).group(1)))


def _require(group: h5py.Group, key: str, path: Path, where: str) -> h5py.Dataset | h5py.Group:
    full = f"{where}/{key}" if where else key
    try:
        return group[key]
    except KeyError:
        available = ", ".join(sorted(group.keys())) or "nothing"
        raise DataError(f"{path}: missing key '{full}' (not a LIBERO demonstration file in the "
                        f"original or no_noops layout?); '{where or '/'}' has: "
                        f"{available}") from None
    except (OSError, RuntimeError) as exc:
        raise DataError(f"{path}: cannot read '{full}' (corrupted file?): {exc}") from exc


def _attr_text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_instruction(data: h5py.Group, path: Path) -> tuple[str, str]:
    """(instruction, layout): from a LIBERO file name, else ``problem_info``, else the name."""
    layout = "original" if "problem_info" in data.attrs else "no_noops"
    text = instruction_from_filename(path) if path.name.endswith(_DEMO_SUFFIXES) else ""
    if not text and layout == "original":
        try:
            info = json.loads(_attr_text(data.attrs["problem_info"]))
            text = " ".join(str(info["language_instruction"]).strip().strip('"').split())
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: data.attrs['problem_info'] has no readable "
                            f"'language_instruction': {exc}") from exc
    text = text or instruction_from_filename(path)
    if not text:
        raise DataError(f"{path}: no instruction: no problem_info attribute and an empty "
                        f"file name")
    return text, layout


def read_file_info(path: str | os.PathLike, camera: str = "agentview", wrist: bool = False,
                   check_frames: bool = True) -> LiberoFile:
    """Validate one file and describe it (demos, lengths, instruction, image shape, layout).

    Errors (DataError) name the file and the missing or malformed key.
    """
    path = Path(path)
    key = camera_key(camera)
    with open_hdf5(path) as handle:
        data = _require(handle, "data", path, "")
        if not isinstance(data, h5py.Group):
            raise DataError(f"{path}: 'data' is not a group")
        instruction, layout = read_instruction(data, path)
        names = demo_names(data)
        if not names:
            raise DataError(f"{path}: missing key 'data/demo_*': the file has no demonstrations "
                            f"(data has: {', '.join(sorted(data.keys())) or 'nothing'})")
        convention = _attr_text(data.attrs.get("macros_image_convention", "opengl")).lower()
        demos = []
        image_shape = None
        for name in names:
            where = f"data/{name}"
            demo = data[name]
            actions = _require(demo, "actions", path, where)
            obs = _require(demo, "obs", path, where)
            images = _require(obs, key, path, f"{where}/obs")
            cams = [images]
            if wrist and key != CAMERA_KEYS["wrist"]:
                cams.append(_require(obs, CAMERA_KEYS["wrist"], path, f"{where}/obs"))
            if actions.ndim != 2 or actions.shape[1] != 7:
                raise DataError(f"{path}: '{where}/actions' has shape {actions.shape}, "
                                f"expected (T, 7)")
            for cam in cams:
                if cam.ndim != 4 or cam.shape[-1] != 3 or cam.dtype != np.uint8:
                    raise DataError(f"{path}: '{cam.name}' has shape {cam.shape} and dtype "
                                    f"{cam.dtype}, expected (T, H, W, 3) uint8")
                if cam.shape[0] != actions.shape[0]:
                    raise DataError(f"{path}: '{cam.name}' has {cam.shape[0]} frames but "
                                    f"'{where}/actions' has {actions.shape[0]} steps")
            if image_shape is None:
                image_shape = tuple(int(s) for s in images.shape[1:])
            elif tuple(images.shape[1:]) != image_shape:
                raise DataError(f"{path}: '{images.name}' frames are {images.shape[1:]}, other "
                                f"demos' are {image_shape}")
            if actions.shape[0] == 0:
                continue  # an empty demo contributes nothing
            if check_frames:  # touch the first and last frame: catches truncated files early
                try:
                    images[0]
                    images[-1]
                    actions[-1]
                except (OSError, RuntimeError) as exc:
                    raise DataError(f"{path}: cannot read '{images.name}' (corrupted file?): "
                                    f"{exc}") from exc
            demos.append(DemoInfo(name, int(actions.shape[0])))
    if not demos:
        raise DataError(f"{path}: every demonstration is empty")
    return LiberoFile(path=path, layout=layout, instruction=instruction, demos=tuple(demos),
                      image_shape=image_shape, upside_down=convention != "opencv")


def read_actions(path: str | os.PathLike, demos: Iterable[str]) -> dict[str, np.ndarray]:
    """The ``actions`` of the named demos as float32 arrays."""
    out = {}
    with open_hdf5(path) as handle:
        for name in demos:
            try:
                raw = handle["data"][name]["actions"][()]
            except (OSError, RuntimeError, KeyError) as exc:
                raise DataError(f"{path}: cannot read 'data/{name}/actions': {exc}") from exc
            actions = np.asarray(raw, dtype=np.float32)
            if not np.isfinite(actions).all():
                raise DataError(f"{path}: 'data/{name}/actions' contains NaN or inf")
            out[name] = actions
    return out


def noop_mask(actions: np.ndarray, threshold: float = 1e-4) -> np.ndarray:
    """OpenVLA's no-op rule, applied sequentially: True where a step is a no-op.

    A step is a no-op if ``||a[:6]|| < threshold`` and its gripper command equals that of the
    previous *kept* step (for the first step: only the motion test).
    """
    drop = np.zeros(len(actions), dtype=bool)
    previous = None
    small = np.linalg.norm(np.asarray(actions, dtype=np.float64)[:, :-1], axis=1) < threshold
    for t, action in enumerate(actions):
        if small[t] and (previous is None or action[-1] == previous[-1]):
            drop[t] = True
        else:
            previous = action
    return drop
