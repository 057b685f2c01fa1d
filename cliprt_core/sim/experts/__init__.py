"""
Scripted, state-based LIBERO experts.

They read object and fixture poses from the simulator and emit OSC_POSE delta actions in
LIBERO's convention (7-D in [-1, 1], gripper -1 open / +1 closed).

    expert = expert_for('libero_goal', 8)      # put the bowl on the plate
    observation = env.reset(0)
    expert.reset(env)
    while not done:
        result = env.step(expert.act(observation)); observation = result.observation

:func:`supported_tasks` lists what exists; success rates are in the README.
"""
from __future__ import annotations

import contextlib
import io

from cliprt_core.sim.experts import libero_goal
from cliprt_core.sim.experts.base import Phase, ScriptedExpert, UnsupportedTaskError

#: suite -> {task.language: plan builder}
_PLANS = {'libero_goal': libero_goal.PLANS}


def _task_language(suite: str, task_id: int) -> str:
    from cliprt_core.sim.libero_setup import import_libero

    with contextlib.redirect_stdout(io.StringIO()):  # LIBERO prints a task-order banner
        bench = import_libero().benchmark.get_benchmark_dict()[suite]()
    return bench.get_task(int(task_id)).language


def supported_tasks() -> dict[str, list[str]]:
    """Return suite -> the task instructions that have an expert."""
    return {suite: sorted(plans) for suite, plans in _PLANS.items()}


def expert_tasks(suite: str) -> list[int]:
    """Return the task ids of ``suite`` that have an expert."""
    from cliprt_core.sim.protocol import NUM_TASKS

    plans = _PLANS.get(suite, {})
    return [t for t in range(NUM_TASKS.get(suite, 0)) if _task_language(suite, t) in plans]


def expert_for(suite: str, task_id: int) -> ScriptedExpert:
    """Return the expert of one LIBERO task, or raise :class:`UnsupportedTaskError`."""
    language = _task_language(suite, task_id)
    plan = _PLANS.get(suite, {}).get(language)
    if plan is None:
        known = '; '.join(f"{s}: {', '.join(sorted(p))}" for s, p in _PLANS.items())
        raise UnsupportedTaskError(f'no scripted expert for {suite} task {task_id} '
                                   f'({language!r}); experts exist for {known}')
    return ScriptedExpert(language, plan)


__all__ = ['Phase', 'ScriptedExpert', 'UnsupportedTaskError', 'expert_for', 'expert_tasks',
           'supported_tasks']
