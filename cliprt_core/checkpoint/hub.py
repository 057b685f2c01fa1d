"""Resolve a checkpoint argument: a local file, or a Hugging Face id through the hub cache."""
from __future__ import annotations

import os
from pathlib import Path
import re

from cliprt_core.checkpoint.errors import CheckpointError

# File names inside the official Hugging Face repositories. spatial/object/10 follow the
# goal file's pattern, which is believed but unconfirmed.
OFFICIAL_FILES = {
    'clip-rt/clip-rt-oxe-pretrained': 'cliprt-oxe-pretrained.pt',
    'clip-rt/clip-rt-finetuned-libero-goal': 'cliprt_libero_goal.pt',
    'clip-rt/clip-rt-finetuned-libero-spatial': 'cliprt_libero_spatial.pt',
    'clip-rt/clip-rt-finetuned-libero-object': 'cliprt_libero_object.pt',
    'clip-rt/clip-rt-finetuned-libero-10': 'cliprt_libero_10.pt',
}
_HUB_ID = re.compile(r'^[A-Za-z0-9][\w.-]*/[\w.-]+(?::[\w./-]+)?$')


def looks_like_hub_id(value: str) -> bool:
    """``owner/name`` or ``owner/name:file`` that is not an existing local path."""
    return bool(_HUB_ID.match(value)) and not Path(value).exists()


def resolve_checkpoint(path_or_id: str | os.PathLike) -> Path:
    """
    Return a local checkpoint file for ``path_or_id``.

    Hub ids (``clip-rt/clip-rt-finetuned-libero-goal``, or ``owner/name:file.pt`` for other
    repositories) come from the Hugging Face cache first, then the network unless
    ``HF_HUB_OFFLINE=1``; failure is a CheckpointError that says how to provide the file.
    """
    text = str(path_or_id)
    path = Path(text).expanduser()
    if path.exists():
        if path.is_dir():
            raise CheckpointError(f'{path} is a directory; pass the checkpoint file inside it')
        return path
    if not looks_like_hub_id(text):
        raise CheckpointError(f'checkpoint not found: {path}')
    repo_id, _, filename = text.partition(':')
    filename = filename or OFFICIAL_FILES.get(repo_id, '')
    if not filename:
        raise CheckpointError(f'checkpoint not found: {path} is not a file, and {repo_id!r} is '
                              f'not a known hub repository (name the file as '
                              f"'{repo_id}:<file>.pt'; known: {', '.join(OFFICIAL_FILES)})")
    return _download(repo_id, filename)


def _download(repo_id: str, filename: str) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub comes with open_clip
        raise CheckpointError('huggingface_hub is required to resolve hub ids') from exc
    try:
        return Path(hf_hub_download(repo_id, filename, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached: try the network below
        pass
    if os.environ.get('HF_HUB_OFFLINE', '0').lower() in ('1', 'true', 'yes'):
        raise CheckpointError(
            f'{repo_id}/{filename} is not in the Hugging Face cache and HF_HUB_OFFLINE is set. '
            f'Download it where there is internet (`huggingface-cli download {repo_id} '
            f'{filename}`), then copy the cache (HF_HOME) or pass the file path.')
    try:
        return Path(hf_hub_download(repo_id, filename))
    except Exception as exc:  # noqa: BLE001 - network, auth, missing file: all the same to users
        raise CheckpointError(
            f'could not fetch {repo_id}/{filename} from the Hugging Face hub '
            f'({type(exc).__name__}: {exc}). Offline? Download it elsewhere '
            f'(`huggingface-cli download {repo_id} {filename}`) and pass the file path, or point '
            f'HF_HOME at a cache that holds it.') from exc
