#!/usr/bin/env python3
"""Train CLIP-RT (thin wrapper of ``cliprt-train``; works under torchrun too)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cliprt_core.cli.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
