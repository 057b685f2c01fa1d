"""
Crash-safe file writes: write to a temporary file in the same folder, fsync, rename.

The temporary file is ``.<name>.<8 random characters>.tmp`` next to the target and is created
with the user's umask (like any other file). A process killed mid-write can leave one behind:
:func:`clean_stale_temp_files` removes them (the trainer and the evaluation call it when a run
starts or resumes). A full disk raises :class:`DiskFullError` naming the file; the previous
version of the file is kept. Torch-free on purpose (``cliprt_core.checkpoint.torch_files``
saves tensors).
"""
from __future__ import annotations

from contextlib import contextmanager
import errno
import json
import os
from pathlib import Path
import re
import secrets
import shutil
from typing import Any, Callable, Iterator

_TEMP_NAME = re.compile(r'^\.(?P<target>.+)\.[A-Za-z0-9_]{8}\.tmp$')
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """No space left on the device (or the disk quota is exceeded) while writing a file."""


def disk_full_error(path: str | os.PathLike) -> DiskFullError:
    """Return a DiskFullError that names ``path`` and the free space left next to it."""
    folder = Path(path).parent
    try:
        free = f'{shutil.disk_usage(folder).free / 2**20:.1f} MiB free'
    except OSError:
        free = 'free space unknown'
    error = DiskFullError(f'no space left on device while writing {path} ({free} in {folder}); '
                          f'the previous version of the file, if any, is kept')
    error.errno = errno.ENOSPC
    return error


def _is_disk_full(exc: BaseException | None) -> bool:
    """ENOSPC / EDQUOT, also when a library wrapped it (torch raises RuntimeError from it)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _create_temp(target: Path) -> Path:
    """Create an empty ``.<name>.XXXXXXXX.tmp`` next to ``target`` (mode 0666 & ~umask)."""
    for _ in range(100):
        tmp = target.parent / f'.{target.name}.{secrets.token_hex(4)}.tmp'
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f'cannot create a temporary file next to {target}')


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """
    Yield a temporary path next to ``path``; on success it atomically replaces ``path``.

    On any error the temporary file is removed and ``path`` is untouched; ENOSPC / EDQUOT
    become :class:`DiskFullError`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(target)
    try:
        yield tmp
        with open(tmp, 'rb+') as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except Exception as exc:
        if _is_disk_full(exc) and not isinstance(exc, DiskFullError):
            raise disk_full_error(target) from exc
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def clean_stale_temp_files(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """
    Remove temporary files :func:`atomic_path` left behind when its process was killed.

    Only names of our own pattern (``.<name>.XXXXXXXX.tmp``) are touched. Call it when no other
    process writes into ``folder`` (at the start of a run). Returns the removed files.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    candidates = root.rglob('.*.tmp') if recursive else root.glob('.*.tmp')
    removed = []
    for file in candidates:
        if _TEMP_NAME.match(file.name) and file.is_file():
            try:
                file.unlink()
            except FileNotFoundError:
                continue
            removed.append(file)
    return removed


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    """Write a JSON file atomically (indented, UTF-8)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + '\n')


# --- JSON lines ---------------------------------------------------------------------------------
def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one JSON line and fsync, so a finished record survives a crash right after."""
    _append_fsynced(path, (json.dumps(record, sort_keys=False) + '\n').encode('utf-8'),
                    drop_torn_tail=True)


def _append_fsynced(path: str | os.PathLike, data: bytes, drop_torn_tail: bool = False) -> None:
    """Append ``data`` and fsync; a full disk becomes a :class:`DiskFullError` naming ``path``."""
    try:
        with open(path, 'ab+') as handle:
            if drop_torn_tail:
                _drop_torn_tail(handle)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        if _is_disk_full(exc):
            raise disk_full_error(path) from exc
        raise


def _drop_torn_tail(handle) -> None:
    """Truncate a partial last line left by a crash mid-write (it was never a finished record)."""
    size = handle.seek(0, os.SEEK_END)
    if size == 0:
        return
    handle.seek(size - 1)
    if handle.read(1) == b'\n':
        return
    handle.seek(0)
    data = handle.read()
    handle.truncate(data.rfind(b'\n') + 1)
    handle.seek(0, os.SEEK_END)


def scan_jsonl(path: str | os.PathLike,
               valid: Callable[[Any], bool] | None = None
               ) -> tuple[list[dict[str, Any]], list[tuple[int, bytes]]]:
    """
    Every record of a JSON-lines file, and the bad lines as ``(line number, raw bytes)``.

    A bad line is one that is torn, not UTF-8, not a JSON object, or rejected by ``valid``.
    Blank lines are skipped. Never raises for bad content.
    """
    file = Path(path)
    if not file.exists():
        return [], []
    records, bad = [], []
    for number, raw in enumerate(file.read_bytes().split(b'\n'), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode('utf-8'))
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = None
        if isinstance(record, dict) and (valid is None or valid(record)):
            records.append(record)
        else:
            bad.append((number, raw))
    return records, bad


def repair_jsonl(path: str | os.PathLike, quarantine: str | os.PathLike,
                 valid: Callable[[Any], bool] | None = None
                 ) -> tuple[list[dict[str, Any]], list[tuple[int, bytes]]]:
    """
    Move bad lines (see :func:`scan_jsonl`) of ``path`` to ``quarantine``; keep the rest.

    The bad bytes are appended to ``quarantine`` (one line each, fsynced) before ``path`` is
    rewritten atomically with only the good records, so a crash in between loses nothing.
    Returns ``(records, bad lines)``; nothing is written when every line is good.
    """
    records, bad = scan_jsonl(path, valid)
    if not bad:
        return records, bad
    _append_fsynced(quarantine, b''.join(raw + b'\n' for _, raw in bad))
    atomic_write_text(path, ''.join(json.dumps(r, sort_keys=False) + '\n' for r in records))
    return records, bad


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """
    Read a JSON-lines file, ignoring a torn (partially written) last line.

    Any other bad line raises ValueError (use :func:`repair_jsonl` to quarantine them).
    """
    records, bad = scan_jsonl(path)
    file = Path(path)
    if bad:
        last = len(file.read_bytes().rstrip(b'\n').split(b'\n'))
        middle = [number for number, _ in bad if number != last]
        if middle:
            raise ValueError(f'{file}:{middle[0]}: corrupted JSON line')
    return records
