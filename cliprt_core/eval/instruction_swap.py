"""
Does the instruction matter? Run a policy in one task's scene with other tasks' instructions.

In a suite whose tasks share one scene (libero_goal: the same bowl, plate, stove and cabinet),
a policy that reads its instruction should, in task A's scene, achieve task B's goal when told
B's instruction. :func:`run_instruction_swap` runs task A's env (its fixed init states, the
standard protocol: settle steps, 8-action chunks, the suite's horizon) once per instruction and,
after every step, evaluates the goal predicates of every listed task (parsed from their BDDL
files) on the current state. An episode ends at the first goal achieved or at the horizon; the
result is a matrix of instruction x goal achieved.
"""
from __future__ import annotations

from collections import Counter
import contextlib
import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def goal_predicates(suite: str, task_id: int) -> tuple[str, list]:
    """Return (instruction, BDDL goal predicates) of one task."""
    from cliprt_core.sim.libero_setup import import_libero

    libero = import_libero()
    from libero.libero.envs.bddl_utils import robosuite_parse_problem

    with contextlib.redirect_stdout(io.StringIO()):
        task = libero.benchmark.get_benchmark_dict()[suite]().get_task(task_id)
    bddl = Path(libero.get_libero_path('bddl_files'), task.problem_folder, task.bddl_file)
    return task.language, robosuite_parse_problem(str(bddl))['goal_state']


def achieved_goals(env, goals: dict[str, list]) -> list[str]:
    """Names of the goals whose predicates all hold in ``env`` (a LiberoTaskEnv) now."""
    domain = env.raw_env.env
    return [name for name, predicates in goals.items()
            if all(domain._eval_predicate(p) for p in predicates)]


def run_instruction_swap(policy, suite: str, scene_task: int, tasks: Sequence[int],
                         init_states: Sequence[int], camera_size: int = 256,
                         progress: bool = True) -> dict[str, Any]:
    """Roll out ``policy`` in ``scene_task``'s scene once per (instruction task, init state)."""
    from tqdm import tqdm

    from cliprt_core.sim import LiberoTaskEnv

    goals = dict(goal_predicates(suite, t) for t in tasks)
    instructions = list(goals)
    episodes = []
    with LiberoTaskEnv(suite, scene_task, camera_size=camera_size) as env, \
            tqdm(total=len(instructions) * len(init_states), desc='instruction swap',
                 unit='ep', disable=not progress) as bar:
        for instruction in instructions:
            policy.reset(instruction)
            for init_state in init_states:
                achieved, steps = _episode(env, policy, init_state, goals)
                episodes.append({'instruction': instruction, 'init_state': int(init_state),
                                 'achieved': achieved, 'steps': steps})
                bar.update()
    counts = {i: Counter(g for e in episodes if e['instruction'] == i for g in e['achieved']
                         or ['(none)']) for i in instructions}
    return {'suite': suite, 'scene_task': scene_task, 'scene': env.language,
            'goals': instructions, 'episodes': episodes,
            'matrix': {i: {g: counts[i].get(g, 0) for g in [*instructions, '(none)']}
                       for i in instructions}}


def _episode(env, policy, init_state: int, goals: dict[str, list]) -> tuple[list[str], int]:
    observation = env.reset(init_state)
    while env.steps < env.horizon:
        for action in np.clip(np.asarray(policy.act(observation.agentview)), -1.0, 1.0):
            result = env.step(action)
            observation = result.observation
            achieved = achieved_goals(env, goals)
            if achieved or result.done:
                return achieved, result.steps
    return [], env.steps


def swap_table(result: dict[str, Any]) -> str:
    """Markdown table: one row per instruction, one column per goal achieved."""
    columns = [*result['goals'], '(none)']
    lines = [f"Scene of task {result['scene_task']} ({result['scene']!r}); rows: the instruction "
             'given, columns: the goal reached (episodes)', '',
             '| instruction | ' + ' | '.join(columns) + ' |',
             '|---|' + '---|' * len(columns)]
    for instruction, row in result['matrix'].items():
        lines.append(f'| {instruction} | ' + ' | '.join(str(row[c]) for c in columns) + ' |')
    return '\n'.join(lines) + '\n'
