"""``EvalConfig``: what to evaluate and how (YAML under ``config/eval/``, CLI flags override)."""
from __future__ import annotations

from dataclasses import dataclass, field
import os
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from cliprt_core.config import (ConfigError, load_config, merge, nest, parse_index_ranges,
                                read_yaml, setting)
from cliprt_core.inference.settings import PolicySettings
from cliprt_core.sim import protocol


@dataclass(frozen=True)
class EvalConfig:
    """
    A LIBERO evaluation run.

    Defaults are the standard protocol (OpenVLA / CLIP-RT+): 50 fixed initial states per task, 256
    px agentview, seed 7, the per-suite horizon.
    """

    suite: str = setting('libero_spatial', 'LIBERO suite: libero_spatial | libero_object | '
                         'libero_goal | libero_10 | libero_90, a comma list, or all (the 4 '
                         'standard suites)')
    tasks: str | list[int] = setting('all', "task ids: 'all', '0-9' or '0,3,5'")
    episodes: int = setting(protocol.NUM_INIT_STATES, 'episodes per task: fixed initial states '
                            f'0..n-1, at most {protocol.NUM_INIT_STATES}')
    first_episode: int = setting(0, 'first fixed initial state: episodes run on init states '
                                 'first_episode .. first_episode+episodes-1 (e.g. 40 with '
                                 'episodes 10: states held out from training on 0..39)')
    workers: int = setting(1, 'env worker processes (1: the env runs in the main process), or '
                           'env worker actors with executor ray')
    executor: Literal['process', 'ray'] = setting('process', 'where env workers run: process '
                                                  '(this machine) | ray (Ray actors on a '
                                                  'cluster; needs the ray extra)')
    ray_address: str = setting('', "Ray cluster to join with executor ray (e.g. 'auto' or "
                               "'ray://head:10001'); empty = start a local Ray instance")
    ray_policy_gpus: float = setting(0.0, 'executor ray: GPUs of a Ray actor that serves the '
                                     'policy (batched); 0 = the policy runs in this process')
    ray_worker_timeout: float = setting(300.0, 'executor ray: seconds an env worker actor (e.g. '
                                        'the replacement of one lost with its node) may wait '
                                        'for a free CPU before its episodes go to the others')
    max_steps: int | None = setting(None, 'cap on the per-suite horizon (smoke runs; not the '
                                    'protocol); unset = the protocol horizon')
    seed: int = setting(protocol.GLOBAL_SEED, 'evaluation seed (protocol: 7)')
    camera_size: int = setting(protocol.CAMERA_SIZE, 'camera resolution in pixels (protocol: '
                               '256)')
    wrist_camera: bool = setting(False, 'also render the wrist camera (CLIP-RT+ does not use '
                                 'it; rendering it costs ~40% more time)')
    num_dummy_steps: int = setting(protocol.NUM_DUMMY_STEPS, 'settle steps of [0,0,0,0,0,0,-1] '
                                   'after each reset (protocol: 10)')
    clip_actions: bool = setting(True, 'clip actions to [-1, 1] before the simulator (the OSC '
                                 'controller does anyway)')
    binarize_gripper: bool = setting(False, 'gripper -> sign(gripper) (+1 close / -1 open), as '
                                     'OpenVLA-OFT does')
    render_all_steps: bool = setting(False, 'render every camera at every simulator step (the '
                                     'path before issue 14; same results, ~4x slower: for '
                                     'benchmarks). Default: only the frames a query or video '
                                     'uses')
    cache_model: bool = setting(True, 'hard resets copy the compiled MuJoCo model instead of '
                                'recompiling it (bit-identical, ~2 s less per episode); false = '
                                'recompile every episode (the path before issue 14)')
    video: bool = setting(False, 'write an MP4 per episode under <results_dir>/videos')
    results_dir: str | None = setting(None, 'results folder (reused = resumed); empty = '
                                      'eval_results/<policy>')
    progress: bool = setting(True, 'a progress bar with the running success rate')
    policy: PolicySettings = field(default_factory=PolicySettings)

    def __post_init__(self) -> None:
        for suite in self.suites():
            if suite not in protocol.HORIZONS:
                raise ConfigError(f'suite: unknown LIBERO suite {suite!r}; expected one of '
                                  f"{', '.join(protocol.SUITES)} or 'all'")
            self.task_ids(suite)  # validates the task selection
        if not 1 <= self.episodes <= protocol.NUM_INIT_STATES:
            raise ConfigError(f'episodes: must be 1..{protocol.NUM_INIT_STATES} (one per fixed '
                              f'initial state), got {self.episodes}')
        if not 0 <= self.first_episode <= protocol.NUM_INIT_STATES - self.episodes:
            raise ConfigError(f'first_episode: init states {self.first_episode}..'
                              f'{self.first_episode + self.episodes - 1} do not exist (there are '
                              f'{protocol.NUM_INIT_STATES}: 0..{protocol.NUM_INIT_STATES - 1})')
        if self.workers < 1:
            raise ConfigError(f'workers: must be >= 1, got {self.workers}')
        if self.ray_policy_gpus < 0:
            raise ConfigError(f'ray_policy_gpus: must be >= 0, got {self.ray_policy_gpus}')
        if self.ray_worker_timeout <= 0:
            raise ConfigError(f'ray_worker_timeout: must be > 0, got {self.ray_worker_timeout}')
        if self.executor != 'ray' and (self.ray_address or self.ray_policy_gpus):
            raise ConfigError('ray_address and ray_policy_gpus need executor: ray')
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f'max_steps: must be >= 1, got {self.max_steps}')
        if self.camera_size < 8:
            raise ConfigError(f'camera_size: must be >= 8, got {self.camera_size}')
        if self.num_dummy_steps < 0:
            raise ConfigError(f'num_dummy_steps: must be >= 0, got {self.num_dummy_steps}')

    # --- selection -----------------------------------------------------------------------------
    def suites(self) -> list[str]:
        if self.suite.strip() == 'all':
            return list(protocol.STANDARD_SUITES)
        names = [s.strip() for s in self.suite.split(',') if s.strip()]
        if not names:
            raise ConfigError('suite: empty')
        return list(dict.fromkeys(names))

    def task_ids(self, suite: str) -> list[int]:
        n_tasks = protocol.NUM_TASKS[suite]
        ids = parse_tasks(self.tasks, n_tasks)
        bad = [t for t in ids if not 0 <= t < n_tasks]
        if bad:
            raise ConfigError(f'tasks: {bad} out of range for {suite} (0..{n_tasks - 1})')
        return ids

    def episode_keys(self) -> list[tuple[str, int, int]]:
        """Every requested episode, suite-major, task-major: ``(suite, task_id, init index)``."""
        return [(suite, task, episode) for suite in self.suites() for task in self.task_ids(suite)
                for episode in range(self.first_episode, self.first_episode + self.episodes)]

    def horizon(self, suite: str) -> int:
        horizon = protocol.HORIZONS[suite]
        return horizon if self.max_steps is None else min(horizon, self.max_steps)

    def policy_name(self) -> str:
        checkpoint = self.policy.checkpoint
        if checkpoint:
            return Path(checkpoint.rstrip('/')).name.replace('.', '_') or 'checkpoint'
        return f'{self.policy.random_model}-random'

    def default_results_dir(self) -> Path:
        return Path(self.results_dir) if self.results_dir else Path('eval_results') / \
            self.policy_name()

    def episode_options(self) -> dict[str, Any]:
        """Return the per-episode settings of :class:`~cliprt_core.eval.episode.Episode`."""
        return {'max_steps': self.max_steps, 'clip_actions': self.clip_actions,
                'binarize_gripper': self.binarize_gripper,
                'render_all_steps': self.render_all_steps}

    def env_factory(self):
        """
        Return the (picklable) LIBERO env factory of this run's camera, seed, settle steps.

        Several env workers share the machine's cores for the software renderer instead of each
        starting one render thread per core; a Ray actor (1 CPU) renders with one thread.
        """
        from cliprt_core.eval.worker import LiberoEnvFactory

        if self.executor == 'ray':
            threads: int | None = 1
        elif self.workers > 1:
            threads = max(1, (os.cpu_count() or 1) // self.workers)
        else:
            threads = None
        return LiberoEnvFactory(camera_size=self.camera_size, seed=self.seed,
                                wrist_camera=self.wrist_camera,
                                num_dummy_steps=self.num_dummy_steps, render_threads=threads,
                                cache_model=self.cache_model)

    def run_settings(self) -> dict[str, Any]:
        """Return the protocol settings plus the selection: the common part of ``run.json``."""
        return {**self.protocol_settings(), 'suites': self.suites(),
                'tasks': self.tasks if isinstance(self.tasks, str) else list(self.tasks),
                'episodes_per_task': self.episodes, 'first_episode': self.first_episode}

    def protocol_settings(self) -> dict[str, Any]:
        """Return what makes episodes of two runs comparable (run.json, checked on resume)."""
        return {'policy': self.policy.describe(),
                'seed': self.seed, 'max_steps': self.max_steps, 'camera_size': self.camera_size,
                'num_dummy_steps': self.num_dummy_steps, 'clip_actions': self.clip_actions,
                'binarize_gripper': self.binarize_gripper}


#: Settings of the executor the env workers run on (the runner's); a single-simulator front end
#: (cliprt-demo, the ROS bridge and run_eval) does not take them.
CLUSTER_SETTINGS = ('executor', 'ray_address', 'ray_policy_gpus', 'ray_worker_timeout')


def load_eval_config(name_or_path: str | None = None, values: Mapping[str, Any] | None = None,
                     overrides: Sequence[str] = ()) -> EvalConfig:
    """
    Load an eval config.

    The eval config: a file under ``config/eval/`` (or a YAML path), then ``values`` (flat
    setting names, e.g. from CLI flags; None = unset), then ``key=value`` overrides.
    """
    data: dict[str, Any] = {}
    source = ''
    if name_or_path:
        from cliprt_core.paths import resolve_config_file

        path = resolve_config_file('eval', name_or_path)
        source, data = f'{path}: ', read_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError(f'{source}top level must be a mapping')
    given = {name: value for name, value in (values or {}).items() if value is not None}
    try:
        return load_config(EvalConfig, merge(data, nest(given, EvalConfig)), overrides)
    except ConfigError as exc:
        raise ConfigError(f'{source}{exc}') from None


def parse_tasks(tasks: str | list[int], n_tasks: int) -> list[int]:
    """``"all"`` / ``""`` / ``"0-9"`` / ``"0,3,5-7"`` / ``[0, 3]`` -> sorted unique task ids."""
    if isinstance(tasks, (list, tuple)):
        return sorted(dict.fromkeys(int(t) for t in tasks))
    return parse_index_ranges(str(tasks).strip() or 'all', 'tasks', n_tasks)
