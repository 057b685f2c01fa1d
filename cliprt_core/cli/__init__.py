"""Console entry points of cliprt_core (``cliprt-*`` scripts); each module has a ``main(argv)``."""
from __future__ import annotations

import contextlib
from typing import Iterator
import warnings


@contextlib.contextmanager
def one_line_warnings(prog: str) -> Iterator[None]:
    """Show warnings as ``prog: warning: message`` lines (no file, line or source) meanwhile."""
    previous = warnings.formatwarning

    def formatwarning(message, *args, **kwargs) -> str:
        return f'{prog}: warning: {message}\n'

    warnings.formatwarning = formatwarning
    try:
        yield
    finally:
        warnings.formatwarning = previous
