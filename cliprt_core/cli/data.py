"""
``cliprt-data``: look at, collect, replay and regenerate LIBERO demonstration HDF5 files.

    cliprt-data inspect data/libero_spatial_no_noops            # a folder, files or globs
    cliprt-data inspect 'data/*/*.hdf5' --labels --json
    cliprt-data collect --suite libero_goal --tasks 8 --init-states 0-39 --output data/goal
    cliprt-data replay data/goal/put_the_bowl_on_the_plate_demo.hdf5 --json
    cliprt-data regenerate libero_goal/*.hdf5 --output data/libero_goal_no_noops
    cliprt-data diversify data/teleop --output data/teleop_sta --per-demo 3

The tools are :mod:`cliprt_core.data.collect`, :mod:`~cliprt_core.data.replay`,
:mod:`~cliprt_core.data.regenerate` and :mod:`~cliprt_core.data.diversify`; this module only
parses arguments and prints.
"""
from __future__ import annotations

import argparse
from collections import Counter
import json
import math
from pathlib import Path
import signal
import sys

from cliprt_core.config import ConfigError, parse_index_ranges
from cliprt_core.data.libero_hdf5 import (DataError, find_hdf5_files, noop_mask, read_actions,
                                          read_file_info)
from cliprt_core.data.phrases import read_phrases
from cliprt_core.signals import exit_code, interrupt_on_signals, Interrupted, StopRequest
import numpy as np

EXIT_DISK_FULL = 74  # EX_IOERR, as cliprt-train and cliprt-eval

DIMS = ('x', 'y', 'z', 'roll', 'pitch', 'yaw', 'gripper')


def inspect_file(path, camera: str = 'agentview', labels: bool = False) -> dict:
    """Summarise one file as JSON: demos, lengths, instruction, images, action stats."""
    info = read_file_info(path, camera)
    actions = read_actions(path, [d.name for d in info.demos])
    stacked = np.concatenate(list(actions.values())).astype(np.float64)
    lengths = [d.length for d in info.demos]
    noops = sum(int(noop_mask(a).sum()) for a in actions.values())
    summary = {
        'path': str(info.path), 'layout': info.layout, 'instruction': info.instruction,
        'demos': len(info.demos), 'steps': int(sum(lengths)),
        'length': {'min': min(lengths), 'mean': float(np.mean(lengths)), 'max': max(lengths)},
        'image_shape': list(info.image_shape), 'camera': camera,
        'stored_upside_down': info.upside_down, 'noop_steps': noops,
        'actions': {name: {'mean': float(stacked[:, i].mean()), 'std': float(stacked[:, i].std()),
                           'min': float(stacked[:, i].min()), 'max': float(stacked[:, i].max())}
                    for i, name in enumerate(DIMS)},
    }
    if labels:
        from cliprt_core.actions import LabelingConfig, label_actions, load_vocabulary

        vocabulary = load_vocabulary('pretrain_50')
        counts = Counter()
        for a in actions.values():
            counts.update(label_actions(a, None, vocabulary, LabelingConfig.libero()).tolist())
        summary['primitive_labels'] = {
            ('(unlabeled)' if k < 0 else vocabulary.phrases[k]): v
            for k, v in counts.most_common()}
        recorded = read_phrases(path, actions)
        if recorded:  # teleoperated / diversified demos: the phrases given per command
            commands = Counter(p for phrases, steps in recorded.values()
                               for p, s in zip(phrases, steps) if s == 0 and p)
            summary['recorded_phrases'] = dict(commands.most_common())
            summary['demos_with_phrases'] = len(recorded)
    return summary


def print_summary(s: dict) -> None:
    print(f"{s['path']}")
    print(f"  layout {s['layout']}, instruction: {s['instruction']!r}")
    length = s['length']
    print(f"  {s['demos']} demos, {s['steps']} steps (length min {length['min']} / mean "
          f"{length['mean']:.1f} / max {length['max']}), {s['noop_steps']} no-op steps")
    print(f"  {s['camera']} images {tuple(s['image_shape'])} uint8"
          f"{', stored upside down' if s['stored_upside_down'] else ''}")
    print(f"  {'action':>8} {'mean':>9} {'std':>9} {'min':>9} {'max':>9}")
    for name, st in s['actions'].items():
        print(f"  {name:>8} {st['mean']:9.4f} {st['std']:9.4f} {st['min']:9.4f} {st['max']:9.4f}")
    if 'primitive_labels' in s:
        total = sum(s['primitive_labels'].values())
        print('  primitive labels (pretrain_50):')
        for phrase, count in list(s['primitive_labels'].items())[:12]:
            print(f'    {100 * count / total:5.1f}%  {phrase}')
    if s.get('recorded_phrases'):
        print(f"  recorded phrases ({sum(s['recorded_phrases'].values())} commands in "
              f"{s['demos_with_phrases']} demos):")
        for phrase, count in s['recorded_phrases'].items():
            print(f'    {count:5d}  {phrase}')


def cmd_inspect(args) -> int:
    files = find_hdf5_files(args.paths)
    summaries = [inspect_file(p, args.camera, args.labels) for p in files]
    if args.json:
        json.dump(summaries, sys.stdout, indent=2)
        print()
        return 0
    for s in summaries:
        print_summary(s)
    if len(summaries) > 1:
        print(f"{len(summaries)} files, {sum(s['demos'] for s in summaries)} demos, "
              f"{sum(s['steps'] for s in summaries)} steps, "
              f"{len({s['instruction'] for s in summaries})} instructions")
    return 0


def _demo_names(tokens: list[str] | None) -> list[str] | None:
    """``demo_3`` / ``3`` / ``0-4`` / ``0,2`` tokens -> demo group names (None: all demos)."""
    if not tokens:
        return None
    names: list[str] = []
    for token in tokens:
        for part in token.split(','):
            part = part.strip()
            if part.startswith('demo_'):
                names.append(part)
            elif part:
                names += [f'demo_{i}' for i in parse_index_ranges(part, '--demos')]
    return list(dict.fromkeys(names))


def _task_override(args):
    """Return the task of ``--suite`` / ``--task`` (both or neither), or None."""
    if args.suite is None and args.task is None:
        return None
    if args.suite is None or args.task is None:
        raise DataError('--suite and --task go together (they name the task of every file)')
    from cliprt_core.data.libero_tasks import task_ref

    return task_ref(args.suite, args.task)


def _print_collect(summary: dict) -> None:
    print(f"collected into {summary['output']} ({summary['layout']} layout, "
          f"{summary['camera_size']} px, {summary['workers']} worker(s)): "
          f"{summary['wall_s']:.1f} s, {summary['steps_per_s']:.2f} recorded steps/s")
    for t in summary['tasks']:
        per_demo = f", {t['seconds_per_demo']:.1f} s per demo" if t['successes'] else ''
        rate = f", {t['steps_per_s']:.2f} steps/s per worker" if t['steps_per_s'] else ''
        print(f"  {t['suite']} task {t['task_id']} ({t['task']}): {t['successes']}/"
              f"{t['attempts']} succeeded, {t['steps']} steps recorded, {t['seconds']:.1f} s"
              f"{per_demo}{rate}; {t['skipped']} init states already finished")
        if t['failed_init_states']:
            print('    failed (no success within the horizon): init states '
                  f"{t['failed_init_states']}")
        for index, error in t['errors'].items():
            print(f'    error at init state {index}: {error}')
        if t['demos_in_file'] is not None:
            print(f"    {t['file']}: {t['demos_in_file']} demos")


def cmd_collect(args) -> int:
    from cliprt_core.data.collect import CollectionStopped, CollectSettings, run_collection
    from cliprt_core.sim import protocol

    if args.suite not in protocol.SUITES:
        raise DataError(f'unknown suite {args.suite!r}; expected one of '
                        f"{', '.join(protocol.SUITES)}")
    settings = CollectSettings(
        suite=args.suite,
        tasks=tuple(parse_index_ranges(args.tasks, '--tasks', protocol.NUM_TASKS[args.suite])),
        init_states=tuple(parse_index_ranges(args.init_states, '--init-states',
                                             protocol.NUM_INIT_STATES)),
        output=Path(args.output), workers=args.workers, layout=args.layout,
        camera_size=args.camera_size, max_steps=args.max_steps,
        retry_failed=args.retry_failed, progress=not args.no_progress)
    stop = StopRequest('stopping: episodes in flight are abandoned, finished demos are kept')
    try:
        with stop:
            summary = run_collection(settings, stop=lambda: stop.requested)
    except (CollectionStopped, KeyboardInterrupt) as exc:
        if isinstance(exc, CollectionStopped) and not args.json:
            _print_collect(exc.summary)
        print(f'cliprt-data: stopped; finished demos are kept in {settings.output}; rerun the '
              'same command to resume', file=sys.stderr)
        return exit_code(stop.signum or signal.SIGINT)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        _print_collect(summary)
    return 1 if any(t['errors'] for t in summary['tasks']) else 0


def _fmt(value: float) -> str:
    return 'n/a' if value is None or math.isnan(value) else f'{value:.3g}'


def _print_replay(d) -> None:
    outcome = 'success' if d.success else 'FAILED'
    start = '' if d.loaded_state else ' (bit-exact start from the reset)'
    print(f"  {d.name}: {outcome} ({d.steps} steps{', ' + d.error if d.error else ''}); "
          f'state divergence max {_fmt(d.max_state_divergence)}, last step '
          f'{_fmt(d.final_state_divergence)}; qpos max {_fmt(d.max_qpos_divergence)}{start}')


def cmd_replay(args) -> int:
    from cliprt_core.data.replay import EnvCache, replay_file

    demos, task = _demo_names(args.demos), _task_override(args)
    files = find_hdf5_files(args.paths)
    results = []
    show = None if args.json else _print_replay
    with interrupt_on_signals(), EnvCache() as envs:
        for path in files:
            if not args.json:
                print(path)
            results.append(replay_file(path, demos, task, envs, on_demo=show))
    if args.json:
        json.dump([r.to_dict() for r in results], sys.stdout, indent=2)
        print()
    else:
        demos_done = [d for r in results for d in r.demos]
        print(f'{sum(d.success for d in demos_done)}/{len(demos_done)} replays succeeded')
    return 0 if all(r.all_success for r in results) else 1


def cmd_regenerate(args) -> int:
    from cliprt_core.data.regenerate import regenerate_file, RegenerationStopped
    from cliprt_core.data.replay import EnvCache

    demos, task = _demo_names(args.demos), _task_override(args)
    files = find_hdf5_files(args.paths)
    if args.camera_size < 8:
        raise DataError(f'camera size must be >= 8 pixels, got {args.camera_size}')
    stop = StopRequest('stopping: the file being written is dropped, finished files are kept')
    results = []
    try:
        with stop, EnvCache() as envs:
            for path in files:
                result = regenerate_file(path, args.output, args.camera_size, demos, task,
                                         args.settle_steps, envs, lambda: stop.requested)
                results.append(result)
                if not args.json:
                    where = result.output or 'nothing written (no demo replayed successfully)'
                    print(f'{path} -> {where}: kept {len(result.kept)}/'
                          f'{len(result.kept) + len(result.dropped)} demos, {result.steps_in} '
                          f'-> {result.steps_out} steps ({result.noops_removed} no-ops removed)'
                          f', {result.seconds:.1f} s')
                    if result.dropped:
                        print(f"  dropped (replay failed): {', '.join(result.dropped)}")
                    for name, error in result.errors.items():
                        print(f'  {name}: {error}')
    except (RegenerationStopped, KeyboardInterrupt):
        print('cliprt-data: stopped; the file being written was dropped, finished files are '
              'kept', file=sys.stderr)
        return exit_code(stop.signum or signal.SIGINT)
    if args.json:
        json.dump([r.to_dict() for r in results], sys.stdout, indent=2)
        print()
    return 0 if all(r.output for r in results) else 1


def _print_attempt(a) -> None:
    outcome = 'kept' if a.kept else 'dropped'
    print(f'  {a.source} attempt {a.attempt}: {outcome} ({a.reason}); {a.primitives} '
          f'primitives, {a.steps} steps, {a.seconds:.1f} s')


def cmd_diversify(args) -> int:
    from cliprt_core.data.diversify import diversify_file, DiversifySettings
    from cliprt_core.data.replay import EnvCache

    demos, task = _demo_names(args.demos), _task_override(args)
    settings = DiversifySettings(
        per_demo=args.per_demo, seed=args.seed, vocabulary=args.vocabulary, verify=args.verify,
        metres_per_unit=args.metres_per_unit, radians_per_unit=args.radians_per_unit,
        rotate=not args.position_only, waypoint_every=args.waypoint_every,
        settle_steps=args.settle)
    files = find_hdf5_files(args.paths)
    stop = StopRequest('stopping: the file being diversified is dropped, finished files are '
                       'kept')
    results = []
    show = None if args.json else _print_attempt
    try:
        with stop, EnvCache() as envs:
            for path in files:
                if not args.json:
                    print(path)
                result = diversify_file(path, args.output, settings, demos, task, envs, show,
                                        lambda: stop.requested)
                results.append(result)
                if not args.json:
                    print(f'  -> {result.output or "nothing written (no attempt kept)"}: '
                          f'{result.kept}/{len(result.attempts)} diversified trajectories kept')
    except KeyboardInterrupt:
        print('cliprt-data: stopped; the file being diversified was dropped, finished files '
              'are kept', file=sys.stderr)
        return exit_code(stop.signum or signal.SIGINT)
    if args.json:
        json.dump([r.to_dict() for r in results], sys.stdout, indent=2)
        print()
    return 0 if all(r.output for r in results) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='cliprt-data', description='Demonstration data tools.')
    sub = parser.add_subparsers(dest='command', required=True)
    inspect = sub.add_parser('inspect', help='demos, lengths, instruction, image shape, action '
                                             'statistics of LIBERO HDF5 files')
    inspect.add_argument('paths', nargs='+', help='HDF5 files, folders or glob patterns')
    inspect.add_argument('--camera', default='agentview')
    inspect.add_argument('--labels', action='store_true',
                         help='also the discrete primitive label distribution (pretrain_50)')
    inspect.add_argument('--json', action='store_true', help='machine-readable output')
    inspect.set_defaults(func=cmd_inspect)

    collect = sub.add_parser(
        'collect', help='run the scripted experts and keep successful episodes as demos',
        description='Run the scripted experts in LIBERO and write successful episodes as '
        'LIBERO demonstration files (DIR/{task}_demo.hdf5). Resumable: rerun the same command.')
    collect.add_argument('--suite', required=True, help='LIBERO suite, e.g. libero_goal')
    collect.add_argument('--tasks', required=True, help="task ids: '8', '0-9', '0,3', 'all'")
    collect.add_argument('--init-states', default='all',
                         help="fixed initial states: '0-39', '0,5', 'all' (default: all 50)")
    collect.add_argument('--output', required=True, help='folder of the task files')
    collect.add_argument('--workers', type=int, default=1,
                         help='simulator worker processes (default: 1, in this process)')
    collect.add_argument('--layout', choices=('no_noops', 'original'), default='no_noops',
                         help="file layout (default: no_noops, OpenVLA's)")
    collect.add_argument('--camera-size', type=int, default=256, help='pixels (default: 256)')
    collect.add_argument('--max-steps', type=int, default=None,
                         help="episode horizon (default and upper bound: the suite's)")
    collect.add_argument('--retry-failed', action='store_true',
                         help='run init states again whose last attempt failed')
    collect.add_argument('--no-progress', action='store_true', help='no progress bar')
    collect.add_argument('--json', action='store_true', help='print the summary as JSON')
    collect.set_defaults(func=cmd_collect)

    def add_common(cmd) -> None:
        cmd.add_argument('paths', nargs='+', help='HDF5 files, folders or glob patterns')
        cmd.add_argument('--demos', nargs='+', default=None,
                         help="demos to use: 'demo_3', '3', '0-4' (default: all)")
        cmd.add_argument('--suite', default=None, help="the files' task (with --task), when "
                                                       'their names and attributes do not say')
        cmd.add_argument('--task', type=int, default=None, help='task id (with --suite)')
        cmd.add_argument('--json', action='store_true', help='machine-readable output')

    replay = sub.add_parser(
        'replay', help='replay stored actions in the simulator: success and state divergence',
        description='Replay the stored actions of each demo from its first stored state. '
        'Exit code 0 if every replay succeeds, 1 otherwise.')
    add_common(replay)
    replay.set_defaults(func=cmd_replay)

    regenerate = sub.add_parser(
        'regenerate', help="OpenVLA's no_noops regeneration of LIBERO files",
        description='Replay each demo without its no-op steps, re-render it and write the '
        'successful ones in the no_noops layout (OUTPUT/{task}_demo.hdf5).')
    add_common(regenerate)
    regenerate.add_argument('--output', required=True, help='folder of the regenerated files')
    regenerate.add_argument('--camera-size', type=int, default=256,
                            help='pixels (default: 256)')
    regenerate.add_argument('--settle-steps', type=int, default=10,
                            help='dummy steps after loading a stored first state (default: 10, '
                            "OpenVLA's)")
    regenerate.set_defaults(func=cmd_regenerate)

    diversify = sub.add_parser(
        'diversify', help="CLIP-RT's stochastic trajectory diversification, verified in "
        'simulation',
        description='Re-sample the primitives between the gripper changes of each demo '
        '(random axis order and step sizes, closed loop on the simulated pose), keep the '
        'trajectories the simulator verifies, and write OUTPUT/{file} = the original demos + '
        'the kept ones (with per-step phrases). Exit code 1 if a file kept none.')
    add_common(diversify)
    diversify.add_argument('--output', required=True, help='folder of the expanded files')
    diversify.add_argument('--per-demo', type=int, default=3,
                           help='diversified attempts per demo (default: 3, as the paper)')
    diversify.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    diversify.add_argument('--verify', choices=('success', 'waypoints'), default='success',
                           help='keep an attempt if the task goal holds (default) or if every '
                           'waypoint was reached')
    diversify.add_argument('--vocabulary', default='pretrain_50',
                           help='primitives to sample (default: pretrain_50)')
    diversify.add_argument('--metres-per-unit', type=float, default=0.013,
                           help="arm travel per step of action 1.0 (default: 0.013, LIBERO's "
                           'measured response)')
    diversify.add_argument('--radians-per-unit', type=float, default=0.5,
                           help='rotation per step of action 1.0 (default: 0.5)')
    diversify.add_argument('--waypoint-every', type=int, default=10,
                           help='a waypoint every N demo steps along the path besides the '
                           'gripper changes (default: 10; 0 = gripper changes and end only)')
    diversify.add_argument('--settle', type=int, default=10,
                           help='steps to hold still after the last waypoint (default: 10)')
    diversify.add_argument('--position-only', action='store_true',
                           help='re-sample translations only (rotations are not corrected)')
    diversify.set_defaults(func=cmd_diversify)
    return parser


def main(argv: list[str] | None = None) -> int:
    from cliprt_core.atomic import DiskFullError
    from cliprt_core.sim.experts.base import UnsupportedTaskError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DataError, UnsupportedTaskError, ImportError) as exc:  # no LIBERO
        print(f'cliprt-data: error: {exc}', file=sys.stderr)
        return 2
    except DiskFullError as exc:
        print(f'cliprt-data: error: {exc}', file=sys.stderr)
        return EXIT_DISK_FULL
    except Interrupted as exc:
        return exit_code(exc.signum)


if __name__ == '__main__':
    sys.exit(main())
