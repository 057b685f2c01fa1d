"""
``cliprt-eval``: the standard LIBERO evaluation of a CLIP-RT+ policy (parallel, resumable).

  cliprt-eval --suite libero_spatial --checkpoint PATH --tasks 0-9 --episodes 50 --workers 8
  cliprt-eval --config libero_10 --checkpoint clip-rt/clip-rt-finetuned-libero-10 --video
  cliprt-eval --suite libero_spatial --tasks 0 --episodes 2 --max-steps 16 --camera-size 128
  cliprt-eval --results-dir eval_results/run1 --summary-only     # re-tabulate episodes.jsonl
  cliprt-eval --executor ray --ray-address auto --workers 64 --ray-policy-gpus 1 ...  # a cluster

Without --checkpoint the random-weight ``cliprt-tiny`` model runs (smoke tests; ~0% success).
A killed run resumes when started again with the same --results-dir. Extra ``key=value``
arguments override any EvalConfig field (``binarize_gripper=true``, ``policy.backend=onnx``).
"""
from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from typing import Sequence

from cliprt_core.cli import one_line_warnings
from cliprt_core.cli.options import add_config_flags, given_flags
from cliprt_core.config import ConfigError
from cliprt_core.eval.config import EvalConfig, load_eval_config
from cliprt_core.signals import exit_code, StopRequest

# Light imports only at module level: worker processes are spawned and re-import the main
# module (this file, when run as cliprt-eval); torch and the results code load inside main().


def build_parser(prog: str = 'cliprt-eval', description: str | None = __doc__,
                 exclude: Sequence[str] = ()) -> argparse.ArgumentParser:
    """
    Build the parser: ``--config``, one flag per EvalConfig setting, ``--summary-only``.

    ``exclude``: EvalConfig settings without a flag (e.g. ``CLUSTER_SETTINGS`` for a front end
    that runs one simulator).
    """
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', help='eval config: a name under config/eval/ or a YAML path')
    add_config_flags(parser, EvalConfig, exclude)
    parser.add_argument('--summary-only', action='store_true',
                        help='only rewrite summary.json, results.md, success.png from '
                        'episodes.jsonl')
    parser.add_argument('overrides', nargs='*', metavar='key=value',
                        help='EvalConfig overrides, e.g. binarize_gripper=true')
    return parser


def config_from_args(args: argparse.Namespace, exclude: Sequence[str] = ()) -> EvalConfig:
    """Return the config file (if any), then the flags, then ``key=value`` overrides."""
    return load_eval_config(args.config, given_flags(args, EvalConfig, exclude), args.overrides)


def load_policy(config: EvalConfig, prog: str = 'cliprt-eval'):
    """Return the policy to evaluate; says so loudly when it has random weights."""
    from cliprt_core.inference.factory import describe_weights, load_policy as load

    if config.executor == 'ray' and config.ray_policy_gpus > 0:
        from cliprt_core.eval.ray_hosts import RayPolicy

        print(f'{prog}: the policy runs in a Ray actor with {config.ray_policy_gpus} GPU(s)',
              file=sys.stderr)
        return RayPolicy(config.policy, config.ray_policy_gpus)
    policy = load(config.policy)
    print(f'{prog}: {describe_weights(policy, config.policy)}', file=sys.stderr)
    return policy


def summary_only(config: EvalConfig, prog: str) -> int:
    """Re-tabulate an existing results folder (no simulator, no policy)."""
    from cliprt_core.eval.report import report
    from cliprt_core.eval.results import ResultsDir

    results = ResultsDir(config.default_results_dir())
    if not results.episodes_path.exists():
        print(f'{prog}: no {results.episodes_path}', file=sys.stderr)
        return 2
    print(report(results.write_summary(expected=config.episode_keys()), results))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from cliprt_core.atomic import DiskFullError
    from cliprt_core.eval.ray_hosts import RayUnavailableError
    from cliprt_core.eval.report import report
    from cliprt_core.eval.results import ResultsDir, ResultsMismatchError
    from cliprt_core.inference.factory import PolicyLoadError

    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except (ConfigError, FileNotFoundError) as exc:
        print(f'cliprt-eval: {exc}', file=sys.stderr)
        return 2
    if args.summary_only:
        return summary_only(config, 'cliprt-eval')
    from cliprt_core.eval.runner import EvaluationStopped, run_evaluation, WorkersLost

    results = ResultsDir(config.default_results_dir())
    stop = StopRequest('stopping after the current round; finished episodes are kept')
    session = contextlib.nullcontext()
    if config.executor == 'ray':
        from cliprt_core.eval.ray_hosts import RaySession

        session = RaySession(config.ray_address)
    try:
        with one_line_warnings('cliprt-eval'):
            # Check the folder before loading a large model; write to it only once it loaded.
            results.check_run(config.protocol_settings(), write=False)
            with session:
                policy = load_policy(config)
                with stop:
                    summary = run_evaluation(config, policy, results_dir=str(results.path),
                                             stop=lambda: stop.requested)
    except (ResultsMismatchError, PolicyLoadError, RayUnavailableError,
            ConnectionError) as exc:
        print(f'cliprt-eval: {exc}', file=sys.stderr)
        return 2
    except DiskFullError as exc:
        print(f'cliprt-eval: {exc}; finished episodes are kept', file=sys.stderr)
        return 74  # EX_IOERR, as cliprt-train
    except WorkersLost as exc:
        print(f'cliprt-eval: {exc}; finished episodes are in {results.episodes_path}; rerun '
              'the same command to resume', file=sys.stderr)
        return 1
    except (EvaluationStopped, KeyboardInterrupt):
        print(f'\ncliprt-eval: stopped; finished episodes are in {results.episodes_path}; '
              'rerun the same command to resume', file=sys.stderr)
        return exit_code(stop.signum or signal.SIGINT)
    print(report(summary, results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
