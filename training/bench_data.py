#!/usr/bin/env python3
"""Data-loader benchmark (thin wrapper of ``cliprt-bench data``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cliprt_core.cli.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["data", *sys.argv[1:]]))
