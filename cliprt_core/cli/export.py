r"""
``cliprt-export``: export the per-query graph to ONNX and optionally build a TensorRT engine.

  cliprt-export --model cliprt-tiny --output tiny.onnx                 # random weights
  cliprt-export --checkpoint run/best.pt --output policy.onnx --verify
  cliprt-export --checkpoint clip-rt/clip-rt-finetuned-libero-goal --device cuda --dtype bf16 \\
                --output goal.onnx --engine goal.engine --max-batch 32  # GPU + TensorRT
  cliprt-export --onnx goal.onnx --engine goal.engine --precision bf16  # engine from an ONNX

The graph maps (pixels [B,3,S,S], prompt embeddings [B,D]) to the 8x7 chunk (CLIP-RT+) or the
primitive scores (discrete), with a dynamic batch; instruction embeddings stay outside it.
Prints one JSON line describing what was written.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
from typing import Any, Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='cliprt-export', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_argument_group('source (one of)')
    source.add_argument('--model', help='model config name/path (random weights, or the '
                        'architecture of an official --checkpoint)')
    source.add_argument('--checkpoint', help='cliprt checkpoint, official CLIP-RT file or hub id')
    source.add_argument('--onnx', help='an existing cliprt ONNX export: only build --engine')
    parser.add_argument('--output', help='ONNX file to write')
    parser.add_argument('--device', default='cpu', help='export device (cuda for fp16/bf16)')
    parser.add_argument('--dtype', default='fp32', choices=['fp32', 'fp16', 'bf16'],
                        help='graph dtype; TensorRT 11 builds the engine in this precision')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--external-data', action=argparse.BooleanOptionalAction, default=None,
                        help='weights in <output>.data (default: automatic above 1 GB)')
    parser.add_argument('--verify', action=argparse.BooleanOptionalAction, default=True,
                        help='check ONNX Runtime against torch at batch 1 and 3 (not for bf16)')
    parser.add_argument('--seed', type=int, default=0)
    engine = parser.add_argument_group('TensorRT engine (GPU + tensorrt package)')
    engine.add_argument('--engine', help='engine file to build (metadata in <engine>.json)')
    engine.add_argument('--precision', choices=['fp32', 'fp16', 'bf16'],
                        help='engine precision (default: the ONNX dtype)')
    engine.add_argument('--max-batch', type=int, default=32)
    engine.add_argument('--opt-batch', type=int, default=1)
    engine.add_argument('--workspace-gb', type=float)
    return parser


def _policy(args: argparse.Namespace):
    from cliprt_core.inference.factory import build_policy

    return build_policy(args.checkpoint, args.model, device=args.device, dtype=args.dtype,
                        seed=args.seed)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from cliprt_core.inference.backends.onnx_export import export_onnx
    from cliprt_core.inference.backends.onnx_verify import verify_onnx

    result: dict[str, Any] = {}
    if args.onnx:
        onnx_path = Path(args.onnx)
    else:
        policy = _policy(args)
        onnx_path = export_onnx(policy, args.output, opset=args.opset,
                                external_data=args.external_data)
        result.update(onnx=str(onnx_path), model=policy.config.name, dtype=args.dtype)
        if args.verify:
            diff = verify_onnx(policy, onnx_path)  # None: a bf16 graph cannot be checked
            if diff is not None:
                result['max_abs_diff_vs_torch'] = diff
    if args.engine:
        from cliprt_core.inference.backends.tensorrt_engine import build_engine

        meta = build_engine(onnx_path, args.engine, precision=args.precision,
                            max_batch=args.max_batch, opt_batch=args.opt_batch,
                            workspace_gb=args.workspace_gb)
        result.update(engine=str(args.engine), engine_metadata=meta)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.onnx) + bool(args.model or args.checkpoint) != 1:
        parser.error('give --model/--checkpoint (export) or --onnx (engine only)')
    if args.onnx and not args.engine:
        parser.error('--onnx needs --engine')
    if not args.onnx and not args.output:
        parser.error('--output is required for an export')
    from cliprt_core.inference.backends.errors import BackendError

    try:
        result = run(args)
    except (BackendError, RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f'cliprt-export: error: {exc}', file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def engine_main(argv: Sequence[str] | None = None) -> int:
    """``build_engine``: TensorRT engine from an existing cliprt ONNX export."""
    parser = argparse.ArgumentParser(prog='build_engine', description=engine_main.__doc__)
    parser.add_argument('onnx', help='cliprt ONNX export (from cliprt-export)')
    parser.add_argument('engine', help='engine file to write (metadata in <engine>.json)')
    parser.add_argument('--precision', choices=['fp32', 'fp16', 'bf16'])
    parser.add_argument('--max-batch', type=int, default=32)
    parser.add_argument('--opt-batch', type=int, default=1)
    parser.add_argument('--workspace-gb', type=float)
    args = parser.parse_args(argv)
    forwarded = ['--onnx', args.onnx, '--engine', args.engine, '--max-batch',
                 str(args.max_batch), '--opt-batch', str(args.opt_batch)]
    if args.precision:
        forwarded += ['--precision', args.precision]
    if args.workspace_gb:
        forwarded += ['--workspace-gb', str(args.workspace_gb)]
    return main(forwarded)


if __name__ == '__main__':
    sys.exit(main())
