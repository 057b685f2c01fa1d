#!/usr/bin/env python3
"""Export a CLIP-RT policy's per-query graph to ONNX (and optionally a TensorRT engine).

Thin wrapper of ``cliprt-export`` (cliprt_core.cli.export); run with --help for the options.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cliprt_core.cli.export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
