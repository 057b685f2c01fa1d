"""Crash-safe file writes: write to a temporary file in the same folder, fsync, rename."""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it atomically replaces ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    """Write a JSON file atomically (indented, UTF-8)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` atomically: a crash never leaves a truncated checkpoint behind."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one JSON line and fsync, so a finished record survives a crash right after."""
    line = (json.dumps(record, sort_keys=False) + "\n").encode("utf-8")
    with open(path, "ab+") as handle:
        _drop_torn_tail(handle)
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def _drop_torn_tail(handle) -> None:
    """Truncate a partial last line left by a crash mid-write (it was never a finished record)."""
    size = handle.seek(0, os.SEEK_END)
    if size == 0:
        return
    handle.seek(size - 1)
    if handle.read(1) == b"\n":
        return
    handle.seek(0)
    data = handle.read()
    handle.truncate(data.rfind(b"\n") + 1)
    handle.seek(0, os.SEEK_END)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a JSON-lines file, ignoring a torn (partially written) last line."""
    records: list[dict[str, Any]] = []
    file = Path(path)
    if not file.exists():
        return records
    lines = file.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines) - 1:
                break  # torn write of the last record: that record was not finished
            raise ValueError(f"{file}:{number + 1}: corrupted JSON line") from None
    return records
