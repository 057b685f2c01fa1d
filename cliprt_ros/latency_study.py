r"""
What inference latency costs a policy: lockstep vs real time, per chunk aggregation and latency.

  python -m cliprt_ros.latency_study --checkpoint runs/learn-demo/train/checkpoints/last \
      --suite libero_goal --tasks 8 --first-episode 40 --episodes 5 --output runs/latency-study

Every configuration is one ``python -m cliprt_ros.run_eval`` run (both nodes, every message over
DDS) into its own results folder, so the study resumes where it stopped (rerun the same command):
lockstep (the benchmark protocol), then real time (``--mode realtime --publish-clock`` at
``--real-time-factor``) for each aggregation and each added latency (``added_latency`` of the
policy node, on the simulated clock). ``report.md`` / ``report.json`` hold success (Wilson 95%
intervals), held steps, chunk latency and the achieved real-time factor; ``latency.png`` plots
success against the added latency.
"""

import argparse
import json
from pathlib import Path
import subprocess
import sys

from cliprt_core.atomic import atomic_write_text
from cliprt_core.eval.stats import wilson_interval
import numpy as np


def build_parser():
    """Return the study's argument parser."""
    parser = argparse.ArgumentParser(prog='python -m cliprt_ros.latency_study',
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--suite', default='libero_goal')
    parser.add_argument('--tasks', default='8')
    parser.add_argument('--first-episode', type=int, default=40)
    parser.add_argument('--episodes', type=int, default=5)
    parser.add_argument('--real-time-factor', type=float, default=0.25)
    parser.add_argument('--latencies', default='0,0.1,0.2,0.4',
                        help='added latencies in seconds (comma-separated)')
    parser.add_argument('--aggregations', default='latest,ensemble')
    parser.add_argument('--output', type=Path, default=Path('runs/latency-study'))
    return parser


def configurations(args):
    """``[(name, run_eval flags)]``: lockstep first, then every aggregation x latency."""
    runs = [('lockstep', [])]
    for aggregation in args.aggregations.split(','):
        for latency in (float(x) for x in args.latencies.split(',')):
            runs.append((f'realtime-{aggregation}-{int(round(latency * 1000))}ms', [
                '--mode', 'realtime', '--publish-clock',
                '--real-time-factor', str(args.real_time_factor),
                '--aggregation', aggregation, '--added-latency', str(latency)]))
    return runs


def run_configuration(args, name, flags):
    """Run (or resume) one configuration; return its row of the report."""
    results = args.output / name
    command = [sys.executable, '-m', 'cliprt_ros.run_eval', '--config', args.suite,
               '--checkpoint', args.checkpoint, '--tasks', args.tasks,
               '--first-episode', str(args.first_episode), '--episodes', str(args.episodes),
               '--results-dir', str(results), *flags]
    code = subprocess.call(command, stdout=subprocess.DEVNULL)
    if code != 0:
        raise RuntimeError(f'{name}: run_eval exited with code {code}; rerun to resume')
    records = [json.loads(line) for line in
               (results / 'episodes.jsonl').read_text().splitlines() if line.strip()]
    return summarize(name, records)


def summarize(name, records):
    """One report row from a configuration's episode records."""
    successes = sum(bool(r['success']) for r in records)
    low, high = wilson_interval(successes, len(records))
    row = {'config': name, 'episodes': len(records), 'successes': successes,
           'success_rate': successes / len(records) if records else 0.0,
           'wilson_95': [round(low, 3), round(high, 3)],
           'mean_steps': float(np.mean([r['steps'] for r in records])) if records else 0.0}
    realtime = [r['realtime'] for r in records if r.get('realtime')]
    if realtime:
        row.update(
            held_fraction=round(sum(r['holds'] for r in realtime)
                                / max(1, sum(r['steps'] for r in realtime)), 3),
            chunk_latency_p50_ms=float(np.median([r['chunk_latency_ms'].get('p50', np.nan)
                                                  for r in realtime])),
            achieved_real_time_factor=round(float(np.mean(
                [r['achieved_real_time_factor'] for r in realtime])), 3),
            overruns=sum(r['overruns'] for r in realtime))
    return row


def report_markdown(rows):
    """Return the study's table in Markdown."""
    lines = ['| configuration | success | 95% Wilson | mean steps | held steps | chunk latency '
             'p50 (sim) | achieved RTF |', '|---|---:|---|---:|---:|---:|---:|']
    for row in rows:
        low, high = row['wilson_95']
        lines.append(
            f"| {row['config']} | {row['successes']}/{row['episodes']} | "
            f'{100 * low:.0f}-{100 * high:.0f}% | {row["mean_steps"]:.0f} | '
            f"{_fmt(row.get('held_fraction'), '{:.1%}')} | "
            f"{_fmt(row.get('chunk_latency_p50_ms'), '{:.0f} ms')} | "
            f"{_fmt(row.get('achieved_real_time_factor'), '{:.2f}')} |")
    return '\n'.join(lines) + '\n'


def plot(rows, path):
    """Success against added latency, one line per aggregation, lockstep as a reference."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for aggregation in sorted({r['config'].split('-')[1] for r in rows if '-' in r['config']}):
        points = sorted((int(r['config'].rsplit('-', 1)[1][:-2]), r['success_rate'])
                        for r in rows if r['config'].startswith(f'realtime-{aggregation}-'))
        ax.plot(*zip(*points), marker='o', label=f'real time, {aggregation}')
    lockstep = [r for r in rows if r['config'] == 'lockstep']
    if lockstep:
        ax.axhline(lockstep[0]['success_rate'], color='gray', linestyle='--', label='lockstep')
    ax.set(xlabel='added latency (ms, simulated clock)', ylabel='success rate', ylim=(-0.05, 1.05))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    """Run the study (resumable) and write the report; exit 2 for bad flags."""
    args = build_parser().parse_args(argv)
    try:
        runs = configurations(args)
    except ValueError as exc:
        print(f'latency_study: bad --latencies: {exc}', file=sys.stderr)
        return 2
    from tqdm import tqdm

    args.output.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, flags in tqdm(runs, desc='configurations', unit='config'):
        try:
            rows.append(run_configuration(args, name, flags))
        except RuntimeError as exc:
            print(f'latency_study: {exc}', file=sys.stderr)
            return 1
        atomic_write_text(args.output / 'report.json', json.dumps(rows, indent=2) + '\n')
    atomic_write_text(args.output / 'report.md', report_markdown(rows))
    plot(rows, args.output / 'latency.png')
    print(report_markdown(rows))
    return 0


def _fmt(value, pattern):
    return '-' if value is None else pattern.format(value)


if __name__ == '__main__':
    sys.exit(main())
