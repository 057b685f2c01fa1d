"""
``cliprt-train``: train CLIP-RT on demonstration HDF5 files (CPU, one GPU, or torchrun DDP).

Examples::

    cliprt-train --config tiny data.paths=[data/libero_spatial_no_noops]
    cliprt-train --config cliprt-plus-libero-spatial train.max_steps=20000
    torchrun --nproc-per-node 4 -m cliprt_core.cli.train --config cliprt-plus-libero-spatial
    cliprt-train --run-dir runs/cliprt-plus-libero-spatial --resume      # continue exactly
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
import re
import signal
import sys

from cliprt_core.atomic import DiskFullError
from cliprt_core.checkpoint import CheckpointError
from cliprt_core.config import ConfigError, load_config
from cliprt_core.data import DataError

log = logging.getLogger('cliprt.train')

EXIT_FAILED, EXIT_USAGE, EXIT_IO = 1, 2, 74  # 74: EX_IOERR of sysexits.h


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='cliprt-train', description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='Overrides are dotted config keys parsed as YAML: train.max_steps=1000 '
               'optim.lr=1.0e-5 data.paths=[a.hdf5,b/]. Unknown keys are errors.')
    parser.add_argument('--config', '-c', help='config/train/<name>.yaml name or a YAML path '
                        "(with --resume: default is the run directory's config.yaml)")
    parser.add_argument('overrides', nargs='*', metavar='key=value')
    parser.add_argument('--run-dir', type=Path,
                        help='run directory (default: <log.output_dir>/<log.run_name>)')
    parser.add_argument('--resume', action='store_true',
                        help='continue the run in the run directory from checkpoints/last.pt')
    parser.add_argument('--print-config', action='store_true',
                        help='print the resolved config and exit')
    parser.add_argument('--max-steps-this-run', type=int, default=None,
                        help='stop (and save) at this step even if train.max_steps is later')
    return parser


def resolve_config(args):
    from cliprt_core.train.config import TrainConfig, load_train_config

    if args.config is None and args.resume and args.run_dir is not None:
        saved = args.run_dir / 'config.yaml'
        if not saved.is_file():
            raise ConfigError(f'--resume: {saved} not found (give --config)')
        return load_config(TrainConfig, saved, args.overrides)
    if args.config is None:
        raise ConfigError('give --config NAME_OR_PATH (or --run-dir DIR --resume)')
    return load_train_config(args.config, args.overrides)


def _one_line(exc: BaseException) -> str:
    """
    Return the message of ``exc`` (one line).

    The message of ``exc``; for an error re-raised from a DataLoader worker (whose message
    carries the worker's traceback) only the original error's own line.
    """
    text = str(exc)
    if 'Original Traceback' in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = re.sub(r'^[\w.]+(Error|Exception): ', '', last.strip())
    return text


def _kept(trainer) -> str:
    """Where a failed or interrupted run can continue from."""
    if trainer is None or not trainer.run.has_checkpoint():
        return ''
    return (f'; {trainer.run.last} is kept: continue with '
            f'cliprt-train --run-dir {trainer.run.path} --resume')


def main(argv: list[str] | None = None) -> int:
    """
    Exit codes: 0 finished, 2 invalid config / data / checkpoint, 1 training failed (e.g.

    non-finite loss), 74 no space left (or another I/O error) while writing, 128 + N stopped by
    signal N after saving ``last.pt`` (130 SIGINT, 143 SIGTERM).
    """
    args = build_parser().parse_intermixed_args(argv)  # key=value may follow any flag
    rank = int(os.environ.get('RANK', '0'))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f'%(asctime)s [rank {rank}] %(levelname)s %(message)s')
    from cliprt_core.config import to_dict
    from cliprt_core.train import distributed
    from cliprt_core.signals import exit_code, Interrupted, interrupt_on_signals

    trainer = None
    try:
        with interrupt_on_signals():  # during set-up and close; training handles its own
            config = resolve_config(args)
            if args.print_config:
                import yaml
                print(yaml.safe_dump(to_dict(config), sort_keys=False), end='')
                return 0
            from cliprt_core.train.trainer import Trainer

            trainer = Trainer(config, run_dir=args.run_dir, resume=args.resume)
            try:
                result = trainer.train(until_step=args.max_steps_this_run)
            finally:
                trainer.close()
    except Interrupted as exc:
        when = 'before training started' if trainer is None else 'while closing'
        print(f'cliprt-train: stopped by {exc} {when}{_kept(trainer)}', file=sys.stderr)
        return exit_code(exc.signum)
    except KeyboardInterrupt:  # Ctrl-C twice: out now, without the final save
        print(f'cliprt-train: interrupted; not saved{_kept(trainer)}', file=sys.stderr)
        return exit_code(signal.SIGINT)
    except DiskFullError as exc:
        print(f'cliprt-train: error: {exc}{_kept(trainer)}', file=sys.stderr)
        return EXIT_IO
    except FloatingPointError as exc:  # diverged (too high a learning rate? bad data?)
        print(f'cliprt-train: error: {exc}{_kept(trainer)}', file=sys.stderr)
        return EXIT_FAILED
    except (ConfigError, DataError, CheckpointError, FileExistsError, FileNotFoundError,
            ValueError) as exc:
        print(f'cliprt-train: error: {_one_line(exc)}{_kept(trainer)}', file=sys.stderr)
        return EXIT_USAGE
    finally:
        distributed.cleanup()
    if result['stopped_by']:
        if rank == 0:
            log.warning('stopped by %s at step %d; continue with cliprt-train --run-dir %s '
                        '--resume', result['stopped_by'], result['step'], result['run_dir'])
        return exit_code(signal.Signals[result['stopped_by']])
    if rank == 0:
        log.info('finished at step %d: %s', result['step'], result['run_dir'])
    return 0


if __name__ == '__main__':
    sys.exit(main())
