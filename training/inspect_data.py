#!/usr/bin/env python3
"""Inspect LIBERO demonstration HDF5 files (thin wrapper of ``cliprt-data inspect``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cliprt_core.cli.data import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["inspect", *sys.argv[1:]]))
