"""
Make ``import open_clip`` work where torchvision's compiled ops cannot load.

open_clip imports torchvision (directly and through timm). The only torchvision 0.28.0 wheel on
PyPI is a CUDA build; against the CPU torch wheel its ``_C`` extension fails to load, and
``import torchvision`` then dies with ``RuntimeError: operator torchvision::nms does not exist``
because its meta registrations reference ops that were never defined.

When (and only when) the extension cannot be loaded, we define the two op *schemas* that the
import needs. CLIP never calls them; calling one raises "no kernel registered". On machines
where torchvision is a matching build (GPU boxes), the real extension loads and nothing is
patched.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
import sys

import torch

_SCHEMAS = (
    'nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
    'qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
)
_library: torch.library.Library | None = None  # kept alive: dropping it unregisters the schemas
patched = False


def _extension_loads() -> bool:
    spec = importlib.util.find_spec('torchvision')
    if spec is None or not spec.submodule_search_locations:
        return True  # no torchvision at all: nothing to patch
    for location in spec.submodule_search_locations:
        for lib in Path(location).glob('_C*.so'):
            try:
                torch.ops.load_library(str(lib))
                return True
            except (OSError, RuntimeError):
                return False
    return False


def ensure_torchvision_importable() -> None:
    """Define torchvision's op schemas if its compiled extension cannot be loaded (idempotent)."""
    global _library, patched
    if _library is not None or 'torchvision' in sys.modules:
        return
    if _extension_loads():
        return
    _library = torch.library.Library('torchvision', 'DEF')
    for schema in _SCHEMAS:
        _library.define(schema)
    patched = True


def import_open_clip():
    """Import open_clip after making torchvision importable."""
    ensure_torchvision_importable()
    import open_clip

    return open_clip
