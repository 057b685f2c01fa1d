"""``cliprt-eval``: the standard LIBERO evaluation of a CLIP-RT+ policy (parallel, resumable).

  cliprt-eval --suite libero_spatial --checkpoint PATH --tasks 0-9 --episodes 50 --workers 8
  cliprt-eval --config libero_10 --checkpoint clip-rt/clip-rt-finetuned-libero-10 --video
  cliprt-eval --suite libero_spatial --tasks 0 --episodes 2 --max-steps 16 --camera-size 128
  cliprt-eval --results-dir eval_results/run1 --summary-only     # re-tabulate episodes.jsonl

Without --checkpoint the random-weight ``cliprt-tiny`` model runs (smoke tests; ~0% success).
A killed run resumes when started again with the same --results-dir. Extra ``key=value``
arguments override any EvalConfig field (``binarize_gripper=true``).
"""
from __future__ import annotations

import argparse
import signal
import sys
from typing import Any, Sequence

from cliprt_core.config import ConfigError, load_config, to_dict
from cliprt_core.eval.config import EvalConfig

# Light imports only at module level: worker processes are spawned and re-import the main
# module (this file, when run as cliprt-eval); torch and the results code load inside main().

# CLI flags that set the EvalConfig field of the same name (unset flags keep the file's value)
_FLAGS = ("suite", "tasks", "episodes", "workers", "max_steps", "seed", "camera_size", "video",
          "wrist_camera", "results_dir", "checkpoint", "model_config", "device", "dtype",
          "backend", "progress")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cliprt-eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="eval config: a name under config/eval/ or a YAML path")
    parser.add_argument("--suite", help="libero_spatial | libero_object | libero_goal | "
                        "libero_10 | libero_90, a comma list, or 'all' (the 4 standard suites)")
    parser.add_argument("--checkpoint", help="checkpoint path or hub id (default: random tiny)")
    parser.add_argument("--model-config", dest="model_config",
                        help="architecture of the random weights (no checkpoint; default "
                        "cliprt-tiny) or of an official checkpoint (default ViT-H-14-378)")
    parser.add_argument("--tasks", help="'all', '0-9', '0,3,5' (default all)")
    parser.add_argument("--episodes", type=int, help="episodes (init states) per task, <= 50")
    parser.add_argument("--workers", type=int, help="env worker processes (default 1)")
    parser.add_argument("--max-steps", dest="max_steps", type=int,
                        help="cap the per-suite horizon (smoke runs; not the protocol)")
    parser.add_argument("--seed", type=int, help="evaluation seed (default 7)")
    parser.add_argument("--camera-size", dest="camera_size", type=int,
                        help="camera resolution (default 256, the protocol)")
    parser.add_argument("--video", action=argparse.BooleanOptionalAction, default=None,
                        help="write an MP4 per episode")
    parser.add_argument("--wrist-camera", dest="wrist_camera",
                        action=argparse.BooleanOptionalAction, default=None,
                        help="also render the wrist camera (unused by CLIP-RT+)")
    parser.add_argument("--results-dir", dest="results_dir",
                        help="results folder (default eval_results/<policy>); reused = resumed")
    parser.add_argument("--device", help="policy device (default cuda if available)")
    parser.add_argument("--dtype",
                        help="auto (default: bf16 on GPU, fp32 on CPU) | fp32 | fp16 | bf16")
    parser.add_argument("--backend", help="torch (default) | compile | onnx | tensorrt")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar (default on)")
    parser.add_argument("--summary-only", action="store_true",
                        help="only rewrite summary.json, results.md, success.png from "
                        "episodes.jsonl")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="EvalConfig overrides, e.g. binarize_gripper=true")
    return parser


def eval_config(name_or_path: str | None, values: dict[str, Any],
                overrides: Sequence[str] = ()) -> EvalConfig:
    """A config under ``config/eval/`` (or a YAML path), then ``values`` (None: unset), then
    ``key=value`` overrides."""
    data: dict[str, Any] = {}
    if name_or_path:
        from cliprt_core.paths import resolve_config_file

        data = to_dict(load_config(EvalConfig, resolve_config_file("eval", name_or_path)))
    data.update({key: value for key, value in values.items() if value is not None})
    return load_config(EvalConfig, data, overrides)


def load_eval_config(args: argparse.Namespace) -> EvalConfig:
    """The config file (if any), then the flags, then ``key=value`` overrides."""
    return eval_config(args.config, {flag: getattr(args, flag, None) for flag in _FLAGS},
                       args.overrides)


def load_policy(config: EvalConfig, prog: str = "cliprt-eval"):
    """The policy to evaluate: a checkpoint, or random weights of ``model_config``."""
    from cliprt_core.inference.factory import build_policy

    if not config.checkpoint:
        print(f"{prog}: no --checkpoint: evaluating RANDOM weights of {config.random_model()} "
              "(expect ~0% success)", file=sys.stderr)
    return build_policy(config.checkpoint, config.model_config, device=config.device,
                        dtype=config.dtype, backend=config.backend)


def report(summary: dict[str, Any], results) -> str:
    """The Markdown table and where the files are."""
    lines = [results.table_path.read_text().strip(), ""]
    overall = summary["overall"]
    if overall["episodes"]:
        low, high = overall["ci95"]
        lines.append(f"overall: {overall['successes']}/{overall['episodes']} = "
                     f"{100 * overall['success_rate']:.1f}% (95% CI {100 * low:.1f}-"
                     f"{100 * high:.1f})")
    if summary.get("missing_episodes"):
        lines.append(f"not finished: {summary['missing_episodes']} episode(s); rerun the same "
                     "command to resume")
    lines += [f"episodes: {results.episodes_path}", f"summary:  {results.summary_path}",
              f"table:    {results.table_path}", f"plot:     {results.plot_path}"]
    videos = sorted(results.videos_dir.rglob("*.mp4")) if results.videos_dir.is_dir() else []
    videos = [v for v in videos if not v.name.endswith(".partial.mp4")]
    if videos:
        lines.append(f"videos:   {results.videos_dir} ({len(videos)} files)")
    return "\n".join(lines)


def _terminate(signum, frame):
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    from cliprt_core.eval.results import ResultsDir, ResultsMismatchError

    args = build_parser().parse_args(argv)
    try:
        config = load_eval_config(args)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"cliprt-eval: {exc}", file=sys.stderr)
        return 2
    results = ResultsDir(config.default_results_dir())
    if args.summary_only:
        if not results.episodes_path.exists():
            print(f"cliprt-eval: no {results.episodes_path}", file=sys.stderr)
            return 2
        summary = results.write_summary(expected=config.episode_keys())
        print(report(summary, results))
        return 0
    from cliprt_core.eval.runner import run_evaluation

    signal.signal(signal.SIGTERM, _terminate)  # same clean stop as Ctrl-C
    try:
        results.check_run(config.protocol_settings())  # fail before loading a large model
        policy = load_policy(config)
        summary = run_evaluation(config, policy, results_dir=str(results.path))
    except ResultsMismatchError as exc:
        print(f"cliprt-eval: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ncliprt-eval: interrupted; finished episodes are in {results.episodes_path}; "
              "rerun the same command to resume", file=sys.stderr)
        return 130
    print(report(summary, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
