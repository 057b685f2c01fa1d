"""
LIBERO demonstration HDF5 files: discovery, layout validation, instructions.

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

from dataclasses import dataclass
import glob
import json
import logging
import os
from pathlib import Path
import re
from typing import Iterable, Sequence

import h5py
import numpy as np

log = logging.getLogger('cliprt.data')

HDF5_SUFFIXES = ('.hdf5', '.h5')
_DEMO_SUFFIXES = ('_demo.hdf5', '_demo.h5')  # LIBERO: {task name}_demo.hdf5
CAMERA_KEYS = {'agentview': 'agentview_rgb', 'eye_in_hand': 'eye_in_hand_rgb',
               'wrist': 'eye_in_hand_rgb'}
_DEMO = re.compile(r'^demo_(\d+)$')
# what h5py raises for a corrupted file (KeyError: "Unable to synchronously open object (...)")
_H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError)
MIN_IMAGE_SIDE = 8  # pixels; smaller frames are empty or placeholder data, not camera images
ACTION_WARN_LIMIT = 10.0  # |action| above this is far outside LIBERO's [-1, 1]: warn
_SCENE = re.compile(r'^[A-Z0-9_]*?SCENE\d+_')


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
    """Return the ``obs`` dataset name of a camera (agentview, eye_in_hand / wrist, a key)."""
    return CAMERA_KEYS.get(camera, camera)


def find_hdf5_files(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """
    Files named by ``paths``: HDF5 files, folders (searched recursively) or glob patterns.

    Hidden folders inside a searched folder are skipped (``cliprt-data collect`` stages
    unfinished demos in ``.parts/``). Raises DataError when an entry matches nothing or the
    result is empty.
    """
    entries = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not entries:
        raise DataError('no data paths given (set data.paths to files, folders or globs)')
    found: dict[Path, None] = {}
    for entry in entries:
        text = os.path.expanduser(str(entry))
        path = Path(text)
        if path.is_dir():
            matches = sorted(p for p in path.rglob('*')
                             if p.suffix in HDF5_SUFFIXES and p.is_file()
                             and not any(part.startswith('.')
                                         for part in p.relative_to(path).parent.parts))
            if not matches:
                raise DataError(f'folder {path} contains no HDF5 files (*.hdf5, *.h5)')
        elif path.is_file():
            matches = [path]
        elif glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True)
                             if Path(p).is_file() and Path(p).suffix in HDF5_SUFFIXES)
            if not matches:
                raise DataError(f'pattern {text!r} matches no HDF5 files')
        else:
            raise DataError(f'data path not found: {path}')
        for match in matches:
            found.setdefault(match.resolve(), None)
    return list(found)


def instruction_from_filename(name: str | os.PathLike) -> str:
    """Apply LIBERO's rule: strip ``_demo.hdf5`` and a ``KITCHEN_SCENE3_`` prefix; ``_`` -> ' '."""
    stem = Path(name).name
    for suffix in (*_DEMO_SUFFIXES, *HDF5_SUFFIXES):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    if stem[:1].isupper():
        stem = _SCENE.sub('', stem, count=1)
    return ' '.join(part for part in stem.split('_') if part)


def open_hdf5(path: str | os.PathLike) -> h5py.File:
    """Open read-only; an unreadable / truncated file becomes a DataError naming it."""
    try:
        return h5py.File(path, 'r')
    except (OSError, ValueError) as exc:
        raise DataError(f'{path}: cannot open as HDF5 (corrupted, truncated or not an HDF5 '
                        f'file): {exc}') from exc


def demo_names(data: h5py.Group) -> list[str]:
    """``demo_*`` groups in numeric order (demo_2 before demo_10)."""
    names = [k for k in data.keys() if _DEMO.match(k)]
    return sorted(names, key=lambda k: int(_DEMO.match(k).group(1)))


def _h5_reason(exc: BaseException) -> str:
    """
    h5py's one-line reason, e.g.

    'Unable to synchronously open object (bad object header version number)'.
    """
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__).strip("'\"")


def _keys(group: h5py.Group) -> str:
    """List the keys of ``group`` for an error message (never raises: it may be broken)."""
    try:
        return ', '.join(sorted(group.keys())) or 'nothing'
    except _H5_ERRORS:
        return '(unreadable)'


def _require(group: h5py.Group, key: str, path: Path, where: str) -> h5py.Dataset | h5py.Group:
    """``group[key]``; a DataError naming the file and the key if it is missing or unreadable."""
    full = f'{where}/{key}' if where else key
    try:
        present = key in group
    except _H5_ERRORS as exc:
        raise DataError(f"{path}: cannot read '{where or '/'}' (corrupted file?): "
                        f'{_h5_reason(exc)}') from None
    if not present:
        raise DataError(f"{path}: missing key '{full}' (not a LIBERO demonstration file in the "
                        f"original or no_noops layout?); '{where or '/'}' has: {_keys(group)}")
    try:
        return group[key]
    except _H5_ERRORS as exc:
        raise DataError(f"{path}: cannot read '{full}' (corrupted file?): "
                        f'{_h5_reason(exc)}') from None


def _attr_text(value) -> str:
    return value.decode('utf-8') if isinstance(value, bytes) else str(value)


def read_instruction(data: h5py.Group, path: Path) -> tuple[str, str]:
    """(instruction, layout): from a LIBERO file name, else ``problem_info``, else the name."""
    layout = 'original' if 'problem_info' in data.attrs else 'no_noops'
    text = instruction_from_filename(path) if path.name.endswith(_DEMO_SUFFIXES) else ''
    if not text and layout == 'original':
        try:
            info = json.loads(_attr_text(data.attrs['problem_info']))
            text = ' '.join(str(info['language_instruction']).strip().strip('"').split())
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: data.attrs['problem_info'] has no readable "
                            f"'language_instruction': {exc}") from exc
    text = text or instruction_from_filename(path)
    if not text:
        raise DataError(f'{path}: no instruction: no problem_info attribute and an empty '
                        f'file name')
    return text, layout


def read_file_info(path: str | os.PathLike, camera: str = 'agentview', wrist: bool = False,
                   check_frames: bool = True) -> LiberoFile:
    """
    Validate one file and describe it (demos, lengths, instruction, image shape, layout).

    Errors (DataError) name the file and the missing, malformed or unreadable key.
    """
    path = Path(path)
    key = camera_key(camera)
    with open_hdf5(path) as handle:
        data = _require(handle, 'data', path, '')
        try:
            if not isinstance(data, h5py.Group):
                raise DataError(f"{path}: 'data' is not a group")
            instruction, layout = read_instruction(data, path)
            names = demo_names(data)
            convention = _attr_text(data.attrs.get('macros_image_convention', 'opengl')).lower()
        except DataError:
            raise
        except _H5_ERRORS as exc:
            raise DataError(f"{path}: cannot read 'data' (corrupted file?): "
                            f'{_h5_reason(exc)}') from None
        if not names:
            raise DataError(f"{path}: missing key 'data/demo_*': the file has no demonstrations "
                            f'(data has: {_keys(data)})')
        demos = []
        image_shape = None
        for name in names:
            try:
                length, shape = _check_demo(data, name, path, key, wrist, check_frames)
            except DataError:
                raise
            except _H5_ERRORS as exc:
                raise DataError(f"{path}: cannot read 'data/{name}' (corrupted file?): "
                                f'{_h5_reason(exc)}') from None
            if image_shape is None:
                image_shape = shape
            elif shape != image_shape:
                raise DataError(f"{path}: 'data/{name}/obs/{key}' frames are {shape}, other "
                                f"demos' are {image_shape}")
            if length:  # an empty demo contributes nothing
                demos.append(DemoInfo(name, length))
    if not demos:
        raise DataError(f'{path}: every demonstration is empty')
    return LiberoFile(path=path, layout=layout, instruction=instruction, demos=tuple(demos),
                      image_shape=image_shape, upside_down=convention != 'opencv')


def _check_demo(data: h5py.Group, name: str, path: Path, key: str, wrist: bool,
                check_frames: bool) -> tuple[int, tuple[int, int, int]]:
    """Return (steps, frame shape) of one demo after checking its layout and frame sizes."""
    where = f'data/{name}'
    demo = _require(data, name, path, 'data')
    actions = _require(demo, 'actions', path, where)
    obs = _require(demo, 'obs', path, where)
    images = _require(obs, key, path, f'{where}/obs')
    cams = [images]
    if wrist and key != CAMERA_KEYS['wrist']:
        cams.append(_require(obs, CAMERA_KEYS['wrist'], path, f'{where}/obs'))
    if actions.ndim != 2 or actions.shape[1] != 7:
        raise DataError(f"{path}: '{where}/actions' has shape {actions.shape}, expected (T, 7)")
    for cam in cams:
        if cam.ndim != 4 or cam.shape[-1] != 3 or cam.dtype != np.uint8:
            raise DataError(f"{path}: '{cam.name}' has shape {cam.shape} and dtype "
                            f'{cam.dtype}, expected (T, H, W, 3) uint8')
        if min(cam.shape[1:3]) < MIN_IMAGE_SIDE:
            raise DataError(f"{path}: '{cam.name}' frames are {cam.shape[1]}x{cam.shape[2]} "
                            f'pixels; at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} expected '
                            f'(empty or placeholder images?)')
        if cam.shape[0] != actions.shape[0]:
            raise DataError(f"{path}: '{cam.name}' has {cam.shape[0]} frames but "
                            f"'{where}/actions' has {actions.shape[0]} steps")
    if actions.shape[0] and check_frames:  # first and last frame: catches truncated files early
        for dataset in (*cams, actions):
            try:
                dataset[0]
                dataset[-1]
            except _H5_ERRORS as exc:
                raise DataError(f"{path}: cannot read '{dataset.name}' (corrupted file?): "
                                f'{_h5_reason(exc)}') from None
    return int(actions.shape[0]), tuple(int(s) for s in images.shape[1:])


def read_actions(path: str | os.PathLike, demos: Iterable[str]) -> dict[str, np.ndarray]:
    """
    Return the ``actions`` of the named demos as float32 arrays.

    NaN / inf is an error; values far outside LIBERO's [-1, 1] (``|a| > ACTION_WARN_LIMIT``)
    are logged as a warning naming the file and demos (wrong units or corrupted data?).
    """
    out, extreme = {}, []
    with open_hdf5(path) as handle:
        for name in demos:
            try:
                raw = handle['data'][name]['actions'][()]
            except _H5_ERRORS as exc:
                raise DataError(f"{path}: cannot read 'data/{name}/actions' (corrupted file?): "
                                f'{_h5_reason(exc)}') from None
            actions = np.asarray(raw, dtype=np.float32)
            if not np.isfinite(actions).all():
                raise DataError(f"{path}: 'data/{name}/actions' contains NaN or inf")
            if actions.size and np.abs(actions).max() > ACTION_WARN_LIMIT:
                extreme.append(f'{name} (max |a| = {np.abs(actions).max():.3g})')
            out[name] = actions
    if extreme:
        more = f' and {len(extreme) - 5} more' if len(extreme) > 5 else ''
        log.warning("%s: actions far outside LIBERO's [-1, 1] in %d demo(s): %s%s; wrong units "
                    'or corrupted data?', path, len(extreme), ', '.join(extreme[:5]), more)
    return out


def noop_mask(actions: np.ndarray, threshold: float = 1e-4) -> np.ndarray:
    """
    Apply OpenVLA's no-op rule sequentially: True where a step is a no-op.

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
