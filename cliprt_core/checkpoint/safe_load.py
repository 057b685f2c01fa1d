"""``torch.load`` with ``weights_only=True`` only: pickled code in a checkpoint is never run."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cliprt_core.checkpoint.errors import CheckpointError

# The official CLIP-RT files hold numpy float64 scalars in their AdamW state. These are data
# types, not code, so they are allow-listed for weights_only loading. numpy 2 renamed numpy.core
# to numpy._core: the scalar constructor is allowed under both names, so a file written with
# either numpy loads with either.
_NUMPY_2 = np.lib.NumpyVersion(np.__version__) >= "2.0.0"
_SCALAR = (np._core if _NUMPY_2 else np.core).multiarray.scalar
NUMPY_SAFE_GLOBALS = [(_SCALAR, "numpy.core.multiarray.scalar"),
                      (_SCALAR, "numpy._core.multiarray.scalar"),
                      np.dtype, np.dtypes.Float64DType, np.dtypes.Float32DType,
                      np.dtypes.Int64DType]


def safe_torch_load(path: str | Path) -> Any:
    """Load a torch file with ``weights_only=True`` (memory-mapped when possible)."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint not found: {file}")
    if file.stat().st_size == 0:
        raise CheckpointError(f"checkpoint is empty: {file}")
    mmap = zipfile.is_zipfile(file)
    try:
        with torch.serialization.safe_globals(NUMPY_SAFE_GLOBALS):
            return torch.load(file, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{file}: refused to load: it needs objects that weights_only loading does not allow "
            f"(it may contain executable pickled code): {exc}") from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{file}: not a readable torch checkpoint "
                              f"(truncated or corrupted?): {exc}") from exc
