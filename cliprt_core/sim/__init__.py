"""
LIBERO simulation: protocol constants, a headless/offline LIBERO import, a one-task env wrapper.

Importing this package does not import LIBERO; the first :class:`LiberoTaskEnv` does.
"""
from cliprt_core.sim.libero_env import HorizonExceededError, LiberoTaskEnv, Observation, StepResult
from cliprt_core.sim.libero_setup import configure_rendering, import_libero, libero_available
from cliprt_core.sim.protocol import (DUMMY_ACTION, episode_seed, HORIZONS, NUM_DUMMY_STEPS,
                                      NUM_INIT_STATES, NUM_TASKS, STANDARD_SUITES, SUITES)

__all__ = [
    'DUMMY_ACTION', 'HORIZONS', 'HorizonExceededError', 'LiberoTaskEnv', 'NUM_DUMMY_STEPS',
    'NUM_INIT_STATES', 'NUM_TASKS', 'Observation', 'STANDARD_SUITES', 'SUITES', 'StepResult',
    'configure_rendering', 'episode_seed', 'import_libero', 'libero_available',
]
