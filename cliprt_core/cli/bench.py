r"""
``cliprt-bench``: benchmarks of inference, the training data pipeline and the simulator.

  cliprt-bench [inference] ...   act() with the instruction cache vs naive re-encoding, and the
                                 inference backends x batch sizes (the default subcommand)
  cliprt-bench data ...          HDF5 loader samples/s against the training step
  cliprt-bench sim ...           LIBERO evaluation env steps/s with 1..N env workers
  cliprt-bench experts ...       scripted expert success over the fixed init states

  cliprt-bench                                  # cache vs naive, tiny + ViT-B-32 on CPU
  cliprt-bench --backends torch,compile,onnx --batch 1,8,32
  cliprt-bench --model cliprt-plus-vit-h-14-378 --device cuda --dtype bf16 \\
               --backends torch,compile --batch 1,8,32          # the real CLIP-RT+ on a GPU
  cliprt-bench data --workers 0 4 8 16 --data 'data/libero_spatial_no_noops/*.hdf5'
  cliprt-bench sim --workers 1 4 8 --episodes 8 --max-steps 220
  cliprt-bench experts --suite libero_goal --tasks all --init-states 0-49 --workers 2

Results are JSON (stdout; ``data`` prints readable lines and writes JSON with --json), tables go
to stderr. The ROS round-trip benchmark is ``python -m cliprt_ros.bench`` (it needs rclpy).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
from typing import Sequence

import torch

DEFAULT_MODELS = 'cliprt-tiny,cliprt-plus-vit-b-32'
COMMANDS = ('inference', 'data', 'sim', 'experts')
DEFAULT_COMMAND = 'inference'


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(',') if item.strip()]


def _batches(text: str) -> list[int]:
    try:
        values = [int(item) for item in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f'--batch takes integers like 1,8,32, got {text!r}')
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError('batch sizes must be >= 1')
    return values


def _add_inference(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--model', default=DEFAULT_MODELS,
                        help=f'model config name(s), comma separated (default {DEFAULT_MODELS})')
    parser.add_argument('--checkpoint', help='benchmark real weights (one model only)')
    parser.add_argument('--suite', choices=['cache', 'backends', 'all'],
                        help="default: 'backends' when --backends is given, else 'cache'")
    parser.add_argument('--backends', type=_csv,
                        help='comma list of torch,compile,onnx,tensorrt (torch is always run)')
    parser.add_argument('--batch', type=_batches, default=[1], help='batch sizes, e.g. 1,8,32')
    parser.add_argument('--device', default='cpu', help='cpu | cuda | cuda:N (default cpu)')
    parser.add_argument('--dtype', default='auto', choices=['auto', 'fp32', 'fp16', 'bf16'],
                        help='auto = fp32 on CPU, bf16 on GPUs that support it')
    parser.add_argument('--iters', type=int, default=30, help='timed calls per variant')
    parser.add_argument('--warmup', type=int, default=3, help='untimed calls per variant')
    parser.add_argument('--threads', type=int, help="torch intra-op threads (and ORT's)")
    parser.add_argument('--backend-options', type=json.loads, default={},
                        help='JSON per backend, e.g. \'{"compile": {"mode": "max-autotune"}}\'')
    parser.set_defaults(run=run_inference)


def _add_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--data', nargs='*', help='real LIBERO files / folders / globs '
                        '(default: synthetic LIBERO-layout files in a temporary folder)')
    parser.add_argument('--workers', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--crops', nargs='+', type=int, default=[64, 378])
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--batches', type=int, default=12, help='timed batches per setting')
    parser.add_argument('--cache-mb', type=float, default=0.0)
    parser.add_argument('--image-size', type=int, default=256, help='synthetic image size')
    parser.add_argument('--tiny-batch', type=int, default=32)
    parser.add_argument('--gpu-batch', type=int, default=32)
    parser.add_argument('--threads', type=int, default=None,
                        help="torch threads of this process (default: torch's; use 1 on a busy "
                             'shared machine, where spinning OpenMP threads distort timings)')
    parser.add_argument('--json', type=Path, help='also write the results here')
    parser.set_defaults(run=run_data)


def _add_sim(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--suite', default='libero_spatial')
    parser.add_argument('--tasks', default='0')
    parser.add_argument('--episodes', type=int, default=4, help='episodes per task')
    parser.add_argument('--max-steps', type=int, default=40, help='policy steps per episode')
    parser.add_argument('--camera-size', type=int, default=256)
    parser.add_argument('--wrist-camera', action='store_true')
    parser.add_argument('--render', nargs='+', choices=['every_step', 'consumed'],
                        default=['every_step', 'consumed'],
                        help='render paths to measure side by side (default both): every_step '
                             '= every camera at every step (before issue 14), consumed = only '
                             'the frames a query uses')
    parser.add_argument('--threads', type=int, default=None,
                        help="torch threads of the policy (default: torch's; 1 keeps a busy "
                             'machine from slowing the tiny policy down)')
    parser.add_argument('--executors', nargs='+', choices=['process', 'ray'],
                        default=['process'], help='env workers as processes and/or actors of '
                        'a local Ray instance (started once, outside the timed runs)')
    parser.add_argument('--checkpoint')
    parser.add_argument('--model-config', default=None,
                        help='random weights of this model without --checkpoint (default '
                             'cliprt-tiny); the architecture of an official checkpoint')
    parser.add_argument('--device', default='cpu')
    parser.set_defaults(run=run_sim)


def _add_experts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--suite', default='libero_goal')
    parser.add_argument('--tasks', default='all',
                        help="tasks with an expert: 'all' or e.g. '1,2,4,6,8'")
    parser.add_argument('--init-states', default='0-49', help="e.g. '0-49' or '0,3,5-7'")
    parser.add_argument('--workers', type=int, default=1, help='env worker processes')
    parser.add_argument('--camera-size', type=int, default=32,
                        help='camera size of the envs (nothing is rendered)')
    parser.add_argument('--json', type=Path, help='also write the per-task rows here')
    parser.set_defaults(run=run_experts)


def build_parser() -> argparse.ArgumentParser:
    """Return the ``cliprt-bench`` parser: one subcommand per benchmark."""
    from cliprt_core.bench import data_bench, expert_bench, sim_bench

    parser = argparse.ArgumentParser(prog='cliprt-bench', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True,
                                     metavar='{' + ','.join(COMMANDS) + '}')
    for name, add, text, description in (
            ('inference', _add_inference, 'inference latency (default)', __doc__),
            ('data', _add_data, 'data-loader throughput', data_bench.__doc__),
            ('sim', _add_sim, 'LIBERO evaluation throughput', sim_bench.__doc__),
            ('experts', _add_experts, 'scripted expert success rates', expert_bench.__doc__)):
        add(commands.add_parser(name, help=text, description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter))
    return parser


def run_inference(args: argparse.Namespace) -> int:
    """``cliprt-bench inference``: JSON lines on stdout, tables on stderr."""
    from cliprt_core.bench import run_backend_benchmark, run_cache_benchmark
    from cliprt_core.bench.report import backend_table, cache_table, write_json_line
    from cliprt_core.inference.factory import resolve_dtype

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        print('cliprt-bench: --device cuda but torch.cuda is not available', file=sys.stderr)
        return 2
    dtype = resolve_dtype(args.dtype)  # None (auto): the policy's default for the device
    models = _csv(args.model)
    if args.checkpoint and len(models) != 1:
        models = ['']  # the checkpoint carries its own config
    suite = args.suite or ('backends' if args.backends else 'cache')
    cache_records, backend_records = [], []
    for model in models:
        common = {'device': device, 'dtype': dtype, 'iters': args.iters, 'warmup': args.warmup,
                  'checkpoint': args.checkpoint}
        if suite in ('cache', 'all'):
            record = run_cache_benchmark(model, **common)
            write_json_line(record, sys.stdout)
            cache_records.append(record)
        if suite in ('backends', 'all'):
            for record in run_backend_benchmark(model, args.backends or ['torch'], args.batch,
                                                options=args.backend_options, **common):
                write_json_line(record, sys.stdout)
                backend_records.append(record)
    if cache_records:
        print('\n' + cache_table(cache_records), file=sys.stderr)
    if backend_records:
        print('\n' + backend_table(backend_records), file=sys.stderr)
    return 1 if any('error' in r for r in backend_records) else 0


def run_data(args: argparse.Namespace) -> int:
    """``cliprt-bench data``: one line per measurement on stdout; JSON in ``--json``."""
    from cliprt_core.bench.data_bench import run_data_benchmark

    if args.threads:
        torch.set_num_threads(args.threads)
    results = run_data_benchmark(args.data, workers=args.workers, crops=args.crops,
                                 batch=args.batch, batches=args.batches, cache_mb=args.cache_mb,
                                 image_size=args.image_size, tiny_batch=args.tiny_batch,
                                 gpu_batch=args.gpu_batch)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + '\n')
    return 0


def run_sim(args: argparse.Namespace) -> int:
    """``cliprt-bench sim``: one JSON row per worker count on stdout, a table on stderr."""
    from cliprt_core.bench.report import sim_table, write_json_line
    from cliprt_core.bench.sim_bench import run_sim_benchmark
    from cliprt_core.inference.factory import build_policy

    if args.threads:
        torch.set_num_threads(args.threads)
    policy = build_policy(args.checkpoint, args.model_config, device=args.device)
    rows = run_sim_benchmark(policy, args.workers, suite=args.suite, tasks=args.tasks,
                             episodes=args.episodes, max_steps=args.max_steps,
                             camera_size=args.camera_size, wrist_camera=args.wrist_camera,
                             render=args.render, executors=args.executors,
                             on_row=lambda row: write_json_line(row, sys.stdout))
    print('\n' + sim_table(rows), file=sys.stderr)
    return 0


def run_experts(args: argparse.Namespace) -> int:
    """``cliprt-bench experts``: one JSON line per episode on stdout, a table on stderr."""
    from tqdm import tqdm

    from cliprt_core.bench.expert_bench import run_expert_episodes, success_table
    from cliprt_core.bench.report import expert_table, write_json_line
    from cliprt_core.config import parse_index_ranges
    from cliprt_core.eval.config import parse_tasks
    from cliprt_core.sim import NUM_INIT_STATES, NUM_TASKS
    from cliprt_core.sim.experts import expert_tasks

    if args.suite not in NUM_TASKS:
        raise ValueError(f"unknown suite {args.suite!r}; one of {', '.join(NUM_TASKS)}")
    available = expert_tasks(args.suite)
    tasks = (available if args.tasks == 'all'
             else parse_tasks(args.tasks, NUM_TASKS[args.suite]))
    missing = sorted(set(tasks) - set(available))
    if missing:
        raise ValueError(f'no scripted expert for {args.suite} task(s) {missing}; experts '
                         f'exist for tasks {available}')
    init_states = parse_index_ranges(args.init_states, '--init-states', NUM_INIT_STATES)
    with tqdm(total=len(tasks) * len(init_states), desc='expert episodes', unit='ep') as bar:
        def on_episode(record):
            write_json_line(record, sys.stdout)
            bar.update()
        records = run_expert_episodes(args.suite, tasks, init_states, args.workers,
                                      args.camera_size, on_episode)
    rows = success_table(records)
    print('\n' + expert_table(rows), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + '\n')
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one benchmark; without a subcommand, ``inference`` (``cliprt-bench --batch 1,8``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*COMMANDS, '-h', '--help'):
        argv.insert(0, DEFAULT_COMMAND)
    args = build_parser().parse_args(argv)
    from cliprt_core.checkpoint.errors import CheckpointError
    from cliprt_core.config import ConfigError
    from cliprt_core.data.libero_hdf5 import DataError

    try:
        return args.run(args)
    except (CheckpointError, ConfigError, DataError, FileNotFoundError, ValueError) as exc:
        print(f'cliprt-bench {args.command}: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
