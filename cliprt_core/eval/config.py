"""``EvalConfig``: what to evaluate and how (YAML under ``config/eval/``, CLI flags override)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cliprt_core.config import ConfigError
from cliprt_core.sim import protocol


@dataclass
class EvalConfig:
    """A LIBERO evaluation run. Defaults are the standard protocol (DESIGN.md section 3)."""

    suite: str = "libero_spatial"  # a suite, a comma-separated list, or "all" (the 4 standard)
    tasks: str | list[int] = "all"  # "all", "0-9", "0,3,5" or a list of task ids
    episodes: int = protocol.NUM_INIT_STATES  # per task: init states 0 .. episodes-1
    workers: int = 1  # env worker processes (1: the env runs in the main process)
    max_steps: int | None = None  # cap on the per-suite horizon (smoke runs); None: protocol
    seed: int = protocol.GLOBAL_SEED
    camera_size: int = protocol.CAMERA_SIZE
    wrist_camera: bool = False  # CLIP-RT+ uses agentview only; rendering the wrist costs ~40%
    num_dummy_steps: int = protocol.NUM_DUMMY_STEPS
    clip_actions: bool = True  # to [-1, 1], as the OSC controller does anyway
    binarize_gripper: bool = False  # gripper -> sign (+1 close / -1 open), as OpenVLA-OFT does
    video: bool = False  # an MP4 per episode under <results_dir>/videos
    results_dir: str | None = None  # default: eval_results/<policy name>
    checkpoint: str | None = None  # a cliprt/official checkpoint or hub id
    # architecture: of the random weights without a checkpoint (empty: cliprt-tiny), or of an
    # official checkpoint (empty: the published ViT-H-14-378 one); see inference/factory.py
    model_config: str = ""
    device: str | None = None  # policy device (default: cuda if available)
    dtype: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | fp32 | fp16 | bf16
    backend: str = "torch"  # torch | compile | onnx | tensorrt
    progress: bool = True  # a progress bar with the running success rate

    def __post_init__(self) -> None:
        for suite in self.suites():
            if suite not in protocol.HORIZONS:
                raise ConfigError(f"suite: unknown LIBERO suite {suite!r}; expected one of "
                                  f"{', '.join(protocol.SUITES)} or 'all'")
            self.task_ids(suite)  # validates the task selection
        if not 1 <= self.episodes <= protocol.NUM_INIT_STATES:
            raise ConfigError(f"episodes: must be 1..{protocol.NUM_INIT_STATES} (one per fixed "
                              f"initial state), got {self.episodes}")
        if self.workers < 1:
            raise ConfigError(f"workers: must be >= 1, got {self.workers}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps: must be >= 1, got {self.max_steps}")
        if self.camera_size < 8:
            raise ConfigError(f"camera_size: must be >= 8, got {self.camera_size}")
        if self.num_dummy_steps < 0:
            raise ConfigError(f"num_dummy_steps: must be >= 0, got {self.num_dummy_steps}")

    # --- selection -----------------------------------------------------------------------------
    def suites(self) -> list[str]:
        if self.suite.strip() == "all":
            return list(protocol.STANDARD_SUITES)
        names = [s.strip() for s in self.suite.split(",") if s.strip()]
        if not names:
            raise ConfigError("suite: empty")
        return list(dict.fromkeys(names))

    def task_ids(self, suite: str) -> list[int]:
        n_tasks = protocol.NUM_TASKS[suite]
        ids = parse_tasks(self.tasks, n_tasks)
        bad = [t for t in ids if not 0 <= t < n_tasks]
        if bad:
            raise ConfigError(f"tasks: {bad} out of range for {suite} (0..{n_tasks - 1})")
        return ids

    def episode_keys(self) -> list[tuple[str, int, int]]:
        """Every requested episode, suite-major, task-major: ``(suite, task_id, init index)``."""
        return [(suite, task, episode) for suite in self.suites() for task in self.task_ids(suite)
                for episode in range(self.episodes)]

    def horizon(self, suite: str) -> int:
        horizon = protocol.HORIZONS[suite]
        return horizon if self.max_steps is None else min(horizon, self.max_steps)

    def policy_name(self) -> str:
        if self.checkpoint:
            return Path(self.checkpoint.rstrip("/")).name.replace(".", "_") or "checkpoint"
        return f"{self.random_model()}-random"

    def default_results_dir(self) -> Path:
        return Path(self.results_dir) if self.results_dir else Path("eval_results") / \
            self.policy_name()

    def random_model(self) -> str:
        """The model config whose random weights run when there is no checkpoint."""
        from cliprt_core.inference.factory import DEFAULT_RANDOM_MODEL

        return self.model_config or DEFAULT_RANDOM_MODEL

    def run_settings(self) -> dict[str, Any]:
        """The protocol settings plus the selection: the common part of ``run.json``."""
        return {**self.protocol_settings(), "suites": self.suites(),
                "tasks": self.tasks if isinstance(self.tasks, str) else list(self.tasks),
                "episodes_per_task": self.episodes}

    def protocol_settings(self) -> dict[str, Any]:
        """What makes episodes of two runs comparable (stored in run.json, checked on resume)."""
        return {"policy": self.checkpoint or f"random:{self.random_model()}",
                "seed": self.seed, "max_steps": self.max_steps, "camera_size": self.camera_size,
                "num_dummy_steps": self.num_dummy_steps, "clip_actions": self.clip_actions,
                "binarize_gripper": self.binarize_gripper}


def parse_tasks(tasks: str | list[int], n_tasks: int) -> list[int]:
    """``"all"`` / ``"0-9"`` / ``"0,3,5-7"`` / ``[0, 3]`` -> sorted unique task ids."""
    if isinstance(tasks, (list, tuple)):
        return sorted(dict.fromkeys(int(t) for t in tasks))
    text = str(tasks).strip()
    if text in ("all", "*", ""):
        return list(range(n_tasks))
    ids: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                first, last = (int(x) for x in part.split("-", 1))
                if last < first:
                    raise ValueError
                ids.extend(range(first, last + 1))
            else:
                ids.append(int(part))
        except ValueError:
            raise ConfigError(f"tasks: cannot parse {part!r} in {text!r} "
                              "(use 'all', '0-9' or '0,3,5')") from None
    return sorted(dict.fromkeys(ids))
