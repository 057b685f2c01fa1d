"""
``torch.load`` with ``weights_only=True`` only: pickled code in a checkpoint is never run.

A file that is not a torch checkpoint is recognised before torch sees it (empty, a Git LFS
pointer, a truncated zip, a plain pickle, text / HTML, unknown bytes) and the error says what it
is. Errors never suggest ``weights_only=False``.
"""
from __future__ import annotations

from pathlib import Path
import pickle
import re
from typing import Any
import zipfile

from cliprt_core.checkpoint.errors import CheckpointError
import numpy as np
import torch

# The official CLIP-RT files hold numpy float64 scalars in their AdamW state. These are data
# types, not code, so they are allow-listed for weights_only loading. numpy 2 renamed numpy.core
# to numpy._core: the scalar constructor is allowed under both names, so a file written with
# either numpy loads with either.
_NUMPY_2 = np.lib.NumpyVersion(np.__version__) >= '2.0.0'
_SCALAR = (np._core if _NUMPY_2 else np.core).multiarray.scalar
NUMPY_SAFE_GLOBALS = [(_SCALAR, 'numpy.core.multiarray.scalar'),
                      (_SCALAR, 'numpy._core.multiarray.scalar'),
                      np.dtype, np.dtypes.Float64DType, np.dtypes.Float32DType,
                      np.dtypes.Int64DType]

_ZIP_MAGIC = b'PK\x03\x04'
_LEGACY_TORCH_MAGIC = b'\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19.'  # pickled 0x1950a86a20f9469cfc6c
_LFS_POINTER = b'version https://git-lfs.github.com/spec/'
_GLOBAL = re.compile(r'GLOBAL ([\w.]+)')


def _as_text(head: bytes) -> str | None:
    """
    Decode ``head`` as text if it is printable.

    ``head`` decoded if it is printable UTF-8 text (a cut multi-byte character at the end is
    allowed), else None.
    """
    for cut in range(4):
        try:
            text = head[:len(head) - cut].decode('utf-8')
        except UnicodeDecodeError:
            continue
        return text if all(c.isprintable() or c in '\r\n\t' for c in text) else None
    return None


def _not_a_checkpoint(file: Path, head: bytes) -> str | None:
    """Why ``file`` (first bytes ``head``) is not a torch checkpoint; None if it may be one."""
    size = file.stat().st_size
    if head.startswith(_LFS_POINTER):
        match = re.search(rb'\nsize (\d+)', head)
        real = f' (the real file is {int(match.group(1)):,} bytes)' if match else ''
        return (f'is a Git LFS pointer file, not the checkpoint{real}: run `git lfs pull` in '
                f'its repository (or download the file itself)')
    if head.startswith(_ZIP_MAGIC):
        if zipfile.is_zipfile(file):
            return None
        return (f'is truncated: a torch zip checkpoint without its end ({size:,} bytes; an '
                f'interrupted download, copy or save?)')
    if head.startswith(_LEGACY_TORCH_MAGIC):
        return None
    if head[:1] == b'\x80':
        return 'is a plain Python pickle, not a torch checkpoint'
    text = _as_text(head)
    if text is not None:
        first = text.strip().splitlines()[0][:60] if text.strip() else ''
        if first.lower().startswith(('<!doctype html', '<html')):
            return 'is an HTML page, not a torch checkpoint (a failed download?)'
        return f'is a text file, not a torch checkpoint (it starts with {first!r})'
    return f'is not a torch checkpoint (unrecognised content; first bytes {head[:8].hex()})'


def safe_torch_load(path: str | Path) -> Any:
    """Load a torch file with ``weights_only=True`` (memory-mapped when possible)."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f'checkpoint not found: {file}')
    if file.stat().st_size == 0:
        raise CheckpointError(f'checkpoint is empty: {file}')
    with open(file, 'rb') as handle:
        head = handle.read(512)
    reason = _not_a_checkpoint(file, head)
    if reason:
        raise CheckpointError(f'{file} {reason}')
    mmap = head.startswith(_ZIP_MAGIC)
    try:
        with torch.serialization.safe_globals(NUMPY_SAFE_GLOBALS):
            return torch.load(file, map_location='cpu', weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL.search(str(exc))
        if found:
            raise CheckpointError(
                f'{file}: refused to load: it needs the Python object {found.group(1)}, which '
                f'safe loading (weights_only) does not allow; pickled code is never executed'
            ) from None
        raise CheckpointError(f'{file}: corrupted: its pickled index cannot be read') from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError,
            zipfile.BadZipFile) as exc:
        raise CheckpointError(f'{file}: not a readable torch checkpoint (truncated or '
                              f'corrupted?): {str(exc).splitlines()[0][:200]}') from None
