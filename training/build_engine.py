#!/usr/bin/env python3
"""Build a TensorRT engine from a cliprt ONNX export (GPU + the tensorrt package).

  python training/build_engine.py policy.onnx policy.engine --precision bf16 --max-batch 32

Thin wrapper of ``cliprt-export --onnx ... --engine ...`` (cliprt_core.cli.export).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cliprt_core.cli.export import engine_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(engine_main())
