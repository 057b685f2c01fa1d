"""
Writing torch files atomically, and checking the integrity of the zip container on load.

``torch.save`` writes a zip archive whose every entry (the pickle and each tensor's bytes) has
a CRC-32, but ``torch.load`` never checks them: flipped bits in tensor data load silently.
:func:`verify_checksums` reads the file once and compares every entry's CRC (~4 GB/s).
"""
from __future__ import annotations

from contextlib import contextmanager
import os
from pathlib import Path
from typing import Any, Iterator
import zipfile

from cliprt_core.atomic import atomic_path
from cliprt_core.checkpoint.errors import CheckpointError
import torch

_CHUNK = 1 << 22


@contextmanager
def _crc32_enabled() -> Iterator[None]:
    """Make sure ``torch.save`` records the CRC-32s that :func:`verify_checksums` checks."""
    get = getattr(torch.serialization, 'get_crc32_options', None)
    set_ = getattr(torch.serialization, 'set_crc32_options', None)
    if get is None or set_ is None or get():
        yield
        return
    set_(True)
    try:
        yield
    finally:
        set_(False)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """
    ``torch.save`` atomically: a crash never leaves a truncated checkpoint behind.

    Written through a Python file object so that a full disk is a
    :class:`~cliprt_core.atomic.DiskFullError` naming ``path`` (not torch's "basic_ios::clear");
    the previous file is kept either way.
    """
    with atomic_path(path) as tmp, _crc32_enabled():
        with open(tmp, 'wb') as handle:
            torch.save(obj, handle)


def verify_checksums(path: str | os.PathLike) -> None:
    """
    Raise CheckpointError if any entry of a torch zip file fails its CRC-32 check.

    Files in torch's legacy (pre-1.6, non-zip) format carry no checksums and pass.
    """
    file = Path(path)
    if not zipfile.is_zipfile(file):
        return
    try:
        with zipfile.ZipFile(file) as archive:
            for info in archive.infolist():
                with archive.open(info) as entry:
                    while entry.read(_CHUNK):  # ZipExtFile checks the CRC at the end
                        pass
    except zipfile.BadZipFile as exc:
        raise CheckpointError(f'{file}: the file is corrupted ({exc}): its bytes changed after '
                              f'it was written (disk or copy error); restore it from a good '
                              f'copy') from None
    except OSError as exc:
        raise CheckpointError(f'{file}: cannot read: {exc}') from exc
