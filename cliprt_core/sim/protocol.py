"""
The standard LIBERO evaluation protocol (OpenVLA / OpenVLA-OFT / CLIP-RT+), as constants.

- Suites of 10 tasks (libero_90: 90); 50 fixed initial states per task; episode ``i`` is
  ``env.reset()`` then ``env.set_init_state(init_states[i])``.
- The first 10 steps send the dummy action ``[0, 0, 0, 0, 0, 0, -1]`` (objects settle); they do
  not count towards the horizon. Then at most ``HORIZONS[suite]`` policy steps.
- Cameras 256x256, ``env.seed(0)``, global seed 7; success = ``done`` of ``env.step`` (all BDDL
  goal predicates hold); stop at the first success.
"""
from __future__ import annotations

import numpy as np

#: Max policy steps per suite (the longest successful demonstration, rounded up).
HORIZONS: dict[str, int] = {
    'libero_spatial': 220,
    'libero_object': 280,
    'libero_goal': 300,
    'libero_10': 520,
    'libero_90': 400,
}
SUITES: tuple[str, ...] = tuple(HORIZONS)
#: The four suites of the headline benchmark (libero_90 is the pretraining suite).
STANDARD_SUITES: tuple[str, ...] = ('libero_spatial', 'libero_object', 'libero_goal', 'libero_10')
NUM_TASKS: dict[str, int] = {'libero_90': 90, **dict.fromkeys(STANDARD_SUITES, 10)}
NUM_INIT_STATES = 50
NUM_DUMMY_STEPS = 10
DUMMY_ACTION = np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float64)
ACTION_DIM = 7
CAMERA_SIZE = 256
GLOBAL_SEED = 7
CONTROL_FREQ_HZ = 20


def check_suite(suite: str) -> str:
    """Return ``suite`` if it is a LIBERO evaluation suite, else raise ValueError."""
    if suite not in HORIZONS:
        raise ValueError(f"unknown LIBERO suite {suite!r}; expected one of {', '.join(SUITES)}")
    return suite


def episode_seed(seed: int, suite: str, task_id: int, init_index: int) -> int:
    """
    Return the RNG seed of one episode: a pure function of (seed, suite, task, init state).

    Every episode reseeds before its reset, so its outcome never depends on which worker
    process ran it or on what that process ran before (parallel == sequential).
    """
    suite_key = sum(ord(c) * 31 ** i for i, c in enumerate(check_suite(suite))) % (2 ** 31)
    sequence = np.random.SeedSequence([int(seed), suite_key, int(task_id), int(init_index)])
    return int(sequence.generate_state(1)[0] % (2 ** 31))
