"""
``cliprt-data``: look at demonstration HDF5 files before training on them.

    cliprt-data inspect data/libero_spatial_no_noops            # a folder, files or globs
    cliprt-data inspect 'data/*/*.hdf5' --labels --json
"""
from __future__ import annotations

import argparse
from collections import Counter
import json
import sys

from cliprt_core.data.libero_hdf5 import (DataError, find_hdf5_files, noop_mask, read_actions,
                                          read_file_info)
import numpy as np

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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DataError as exc:
        print(f'cliprt-data: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
