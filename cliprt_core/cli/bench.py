"""``cliprt-bench``: inference benchmarks, printed as JSON lines (stdout) and a table (stderr).

  cliprt-bench                                  # cache vs naive, tiny + ViT-B-32 on CPU
  cliprt-bench --backends torch,compile,onnx --batch 1,8,32
  cliprt-bench --model cliprt-plus-vit-h-14-378 --device cuda --dtype bf16 \\
               --backends torch,compile --batch 1,8,32          # the real CLIP-RT+ on a GPU
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

import torch

DEFAULT_MODELS = "cliprt-tiny,cliprt-plus-vit-b-32"


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _batches(text: str) -> list[int]:
    try:
        values = [int(item) for item in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--batch takes integers like 1,8,32, got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("batch sizes must be >= 1")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cliprt-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODELS,
                        help=f"model config name(s), comma separated (default {DEFAULT_MODELS})")
    parser.add_argument("--checkpoint", help="benchmark real weights (one model only)")
    parser.add_argument("--suite", choices=["cache", "backends", "all"],
                        help="default: 'backends' when --backends is given, else 'cache'")
    parser.add_argument("--backends", type=_csv,
                        help="comma list of torch,compile,onnx,tensorrt (torch is always run)")
    parser.add_argument("--batch", type=_batches, default=[1], help="batch sizes, e.g. 1,8,32")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                        help="auto = fp32 on CPU, bf16 on GPUs that support it")
    parser.add_argument("--iters", type=int, default=30, help="timed calls per variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per variant")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (and ORT's)")
    parser.add_argument("--backend-options", type=json.loads, default={},
                        help='JSON per backend, e.g. \'{"compile": {"mode": "max-autotune"}}\'')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from cliprt_core.bench import run_backend_benchmark, run_cache_benchmark
    from cliprt_core.bench.report import backend_table, cache_table, write_json_line
    from cliprt_core.inference.factory import resolve_dtype

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("cliprt-bench: --device cuda but torch.cuda is not available", file=sys.stderr)
        return 2
    dtype = resolve_dtype(args.dtype)  # None (auto): the policy's default for the device
    models = _csv(args.model)
    if args.checkpoint and len(models) != 1:
        models = [""]  # the checkpoint carries its own config
    suite = args.suite or ("backends" if args.backends else "cache")
    cache_records, backend_records = [], []
    for model in models:
        common = dict(device=device, dtype=dtype, iters=args.iters, warmup=args.warmup,
                      checkpoint=args.checkpoint)
        if suite in ("cache", "all"):
            record = run_cache_benchmark(model, **common)
            write_json_line(record, sys.stdout)
            cache_records.append(record)
        if suite in ("backends", "all"):
            for record in run_backend_benchmark(model, args.backends or ["torch"], args.batch,
                                                options=args.backend_options, **common):
                write_json_line(record, sys.stdout)
                backend_records.append(record)
    if cache_records:
        print("\n" + cache_table(cache_records), file=sys.stderr)
    if backend_records:
        print("\n" + backend_table(backend_records), file=sys.stderr)
    return 1 if any("error" in r for r in backend_records) else 0


if __name__ == "__main__":
    sys.exit(main())
