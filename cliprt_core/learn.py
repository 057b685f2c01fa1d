"""
The learning loop on one machine: scripted demonstrations -> training -> held-out evaluation.

    python -m cliprt_core.learn --suite libero_goal --tasks 8 --output runs/learn-demo
    make learn-demo                                     # the same, with the defaults below

Each stage is the user-facing command, run in its own process, and resumable (rerun the same
command after a crash or Ctrl-C: finished demos, checkpoints and episodes are kept):

1. ``collect``: ``cliprt-data collect`` runs the scripted experts on the training init states
   (default 0..39) and writes LIBERO no_noops files (256 px, both cameras);
2. ``train``: ``cliprt-train --config learn-demo`` (a CPU-sized CLIP-RT+ from scratch);
3. ``evaluate``: ``python -m cliprt_ros.run_eval --config <suite>`` on the held-out init states
   (default 40..49) with the standard protocol, through the ROS 2 policy and LIBERO bridge
   nodes (every image and chunk goes over DDS); ``--evaluator inprocess`` uses ``cliprt-eval``
   instead;
4. ``report``: ``report.md`` / ``report.json`` (expert and policy success with Wilson 95%
   intervals, each stage's wall time), next to ``train/curve.png`` and ``eval/success.png``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import subprocess
import sys
import time
from typing import Any, Sequence

from cliprt_core.atomic import atomic_write_text
from cliprt_core.eval.stats import wilson_interval

STAGES = ('collect', 'train', 'evaluate')
EVALUATORS = {'ros': 'cliprt_ros.run_eval', 'inprocess': 'cliprt_core.cli.eval'}


class StageFailed(RuntimeError):
    """A stage's command exited non-zero."""

    def __init__(self, stage: str, code: int) -> None:
        super().__init__(f'stage {stage!r} failed (exit code {code}); fix the cause and rerun '
                         'the same command: finished work is kept')
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m cliprt_core.learn', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--suite', default='libero_goal')
    parser.add_argument('--tasks', default='8',
                        help="task ids with an expert, e.g. '8' or '1,4,8'")
    parser.add_argument('--output', type=Path, default=Path('runs/learn-demo'))
    parser.add_argument('--train-states', default='0-39', help='init states to collect demos from')
    parser.add_argument('--eval-first', type=int, default=40, help='first held-out init state')
    parser.add_argument('--eval-episodes', type=int, default=10, help='held-out episodes per task')
    parser.add_argument('--workers', type=int, default=2, help='simulator processes (collect)')
    parser.add_argument('--train-config', default='learn-demo')
    parser.add_argument('--evaluator', choices=sorted(EVALUATORS), default='ros')
    parser.add_argument('--video', action='store_true', help='save an MP4 per evaluation episode')
    parser.add_argument('--swap-scene', type=int, default=None,
                        help="after the evaluation, run this task's scene with every task's "
                             'instruction (multi-task runs: does the instruction matter?)')
    parser.add_argument('--swap-episodes', type=int, default=3,
                        help='held-out init states per instruction for --swap-scene')
    parser.add_argument('overrides', nargs='*', metavar='key=value',
                        help='cliprt-train overrides, e.g. train.max_steps=3000')
    return parser


def _run(stage: str, module: str, arguments: Sequence[str], log: dict[str, Any],
         stages_file: Path) -> None:
    command = [sys.executable, '-m', module, *arguments]
    print(f"\n== {stage}: {' '.join(command[2:])}", flush=True)
    started = time.perf_counter()
    code = subprocess.call(command)
    seconds = time.perf_counter() - started
    log.setdefault(stage, []).append({'seconds': round(seconds, 1), 'exit_code': code,
                                      'command': command[2:]})
    atomic_write_text(stages_file, json.dumps(log, indent=2) + '\n')
    if code != 0:
        raise StageFailed(stage, code)


def run_loop(args: argparse.Namespace) -> dict[str, Any]:
    """Run (or resume) every stage, then write and return the report."""
    out = args.output
    data, train_dir, eval_dir = out / 'data', out / 'train', out / 'eval'
    out.mkdir(parents=True, exist_ok=True)
    stages_file = out / 'stages.json'
    log = json.loads(stages_file.read_text()) if stages_file.is_file() else {}
    _run('collect', 'cliprt_core.cli.data', [
        'collect', '--suite', args.suite, '--tasks', args.tasks, '--init-states',
        args.train_states, '--output', str(data), '--workers', str(args.workers), '--json'],
        log, stages_file)
    train_args = ['--run-dir', str(train_dir)]
    if (train_dir / 'checkpoints' / 'last.pt').is_file():
        train_args.append('--resume')
    else:
        train_args += ['--config', args.train_config, f'data.paths=[{data}]', *args.overrides]
    _run('train', 'cliprt_core.cli.train', train_args, log, stages_file)
    _run('evaluate', EVALUATORS[args.evaluator], [
        '--config', args.suite, '--checkpoint', str(train_dir / 'checkpoints' / 'last.pt'),
        '--suite', args.suite,
        '--tasks', args.tasks, '--first-episode', str(args.eval_first), '--episodes',
        str(args.eval_episodes), '--results-dir', str(eval_dir), '--no-progress',
        *(['--video'] if args.video else [])], log, stages_file)
    if args.swap_scene is not None:
        started = time.perf_counter()
        swap = instruction_swap(args, train_dir / 'checkpoints' / 'last.pt')
        atomic_write_text(out / 'swap.json', json.dumps(swap, indent=2) + '\n')
        log['swap'] = [{'seconds': round(time.perf_counter() - started, 1), 'exit_code': 0}]
        atomic_write_text(stages_file, json.dumps(log, indent=2) + '\n')
    report = build_report(out, log)
    atomic_write_text(out / 'report.json', json.dumps(report, indent=2) + '\n')
    atomic_write_text(out / 'report.md', report_markdown(report))
    return report


def instruction_swap(args: argparse.Namespace, checkpoint: Path) -> dict[str, Any]:
    """Run the trained policy in one task's scene with each task's instruction (in-process)."""
    from cliprt_core.eval.config import parse_tasks
    from cliprt_core.eval.instruction_swap import run_instruction_swap
    from cliprt_core.inference import Policy
    from cliprt_core.sim import NUM_INIT_STATES, NUM_TASKS

    print(f'\n== swap: scene of task {args.swap_scene}, instructions of tasks {args.tasks}',
          flush=True)
    first = args.eval_first
    return run_instruction_swap(
        Policy.from_checkpoint(str(checkpoint), device='cpu'), args.suite, args.swap_scene,
        parse_tasks(args.tasks, NUM_TASKS[args.suite]),
        list(range(first, min(first + args.swap_episodes, NUM_INIT_STATES))))


def build_report(out: Path, log: dict[str, Any]) -> dict[str, Any]:
    """Collect the stages' own outputs into one record."""
    from cliprt_core.atomic import read_jsonl
    from cliprt_core.data.staging import STAGING_FOLDER

    experts = []
    for log_file in sorted((out / 'data' / STAGING_FOLDER).glob('*/attempts.jsonl')):
        attempts = read_jsonl(log_file)
        successes = sum(a['success'] for a in attempts)
        low, high = wilson_interval(successes, len(attempts))
        experts.append({'task': log_file.parent.name.removesuffix('_demo').replace('_', ' '),
                        'attempts': len(attempts), 'successes': successes,
                        'ci95': [round(low, 3), round(high, 3)],
                        'seconds_per_demo': round(sum(a['seconds'] for a in attempts)
                                                  / max(len(attempts), 1), 1)})
    metrics = read_jsonl(out / 'train' / 'metrics.jsonl')
    summary = json.loads((out / 'eval' / 'summary.json').read_text())
    swap_file = out / 'swap.json'
    return {
        'swap': json.loads(swap_file.read_text()) if swap_file.is_file() else None,
        'stages_s': {stage: round(sum(r['seconds'] for r in runs), 1)
                     for stage, runs in log.items()},
        'experts': experts,
        'training': {'steps': metrics[-1]['step'] if metrics else 0,
                     'first_loss': metrics[0]['loss'] if metrics else None,
                     'final_loss': metrics[-1]['loss'] if metrics else None,
                     'curve': 'train/curve.png'},
        'evaluation': {'tasks': summary['tasks'], 'overall': summary['overall'],
                       'plot': 'eval/success.png'},
    }


def report_markdown(report: dict[str, Any]) -> str:
    """Render the report as a Markdown page (tables of numbers, links to the plots)."""
    lines = ['# Learning loop report', '', '| stage | wall time |', '|---|---|']
    lines += [f'| {stage} | {seconds / 60:.1f} min |'
              for stage, seconds in report['stages_s'].items()]
    lines += ['', '## Scripted expert (collection)', '',
              '| task | demos kept / attempts | 95% CI | s per demo (per worker) |',
              '|---|---|---|---|']
    lines += [f"| {e['task']} | {e['successes']}/{e['attempts']} | "
              f"{100 * e['ci95'][0]:.0f}-{100 * e['ci95'][1]:.0f}% | {e['seconds_per_demo']} |"
              for e in report['experts']]
    training = report['training']
    lines += ['', f"## Training: {training['steps']} steps, loss {training['first_loss']:.4f} -> "
              f"{training['final_loss']:.4f}", '', f"![training curve]({training['curve']})",
              '', '## Held-out evaluation', '', '| task | success | 95% CI | mean steps |',
              '|---|---|---|---|']
    for row in [*report['evaluation']['tasks'], {**report['evaluation']['overall'],
                                                 'task': 'overall'}]:
        lines.append(f"| {row['task']} | {row['successes']}/{row['episodes']} | "
                     f"{100 * row['ci95'][0]:.0f}-{100 * row['ci95'][1]:.0f}% | "
                     f"{row['mean_steps']:.0f} |")
    lines += ['', f"![success]({report['evaluation']['plot']})", '']
    if report.get('swap'):
        from cliprt_core.eval.instruction_swap import swap_table

        lines += ['## Does the instruction matter?', '', swap_table(report['swap'])]
    return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run_loop(args)
    except StageFailed as exc:
        print(f'learn: {exc}', file=sys.stderr)
        return exc.code
    overall = report['evaluation']['overall']
    print(f"\nheld-out success {overall['successes']}/{overall['episodes']}; report: "
          f"{args.output / 'report.md'}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
