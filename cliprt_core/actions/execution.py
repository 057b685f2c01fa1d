"""
A primitive as a chunk of LIBERO actions: what the teleop node sends to the executor.

A movement primitive's delta (metres / radians) becomes ``n`` equal steps of at most
``max_action`` on its axis, in LIBERO units (1.0 = 5 cm or 0.5 rad per 20 Hz step): "move the
arm to the left by ten centimeters" = 0.10 m = 2.0 units = two steps of 1.0; 1 cm is one step
of 0.2; 90 degrees (3.14 units) is four steps of 0.785. ``labeling`` gives the scales (metres /
radians per unit): LIBERO's nominal 0.05 / 0.5 by default; with the arm's measured response
the steps move it by the primitive's real distance. The gripper entry of a movement step
holds the last gripper command (-1 open / +1 close), as LIBERO's demonstrations do, so the
executed actions label back to movements, never to gripper changes. A gripper primitive is
``gripper_steps`` steps without motion (the fingers need several control steps to close).
"""
from __future__ import annotations

import math

from cliprt_core.actions.labeling import LabelingConfig, primitive_to_action
from cliprt_core.actions.vocabulary import Vocabulary
import numpy as np

__all__ = ['primitive_actions']


def primitive_actions(vocabulary: Vocabulary, index: int, gripper: float,
                      max_action: float = 1.0, gripper_steps: int = 10,
                      labeling: LabelingConfig | None = None) -> np.ndarray:
    """
    Return the ``(n, 7)`` float64 LIBERO actions that execute primitive ``index``.

    ``gripper`` is the current gripper command (-1 open / +1 close). Raises ValueError for a
    primitive a 7-D action cannot express (``rotate_gripper`` of ``finetune_58``).
    """
    if not max_action > 0:
        raise ValueError(f'max_action must be > 0, got {max_action}')
    if gripper_steps < 1:
        raise ValueError(f'gripper_steps must be >= 1, got {gripper_steps}')
    labeling = labeling or LabelingConfig.libero()
    action = primitive_to_action(vocabulary, index, labeling, keep_gripper=float(gripper))
    if vocabulary.primitives[index].changes_gripper:
        return np.repeat(action[None], int(gripper_steps), axis=0)
    column = int(np.argmax(np.abs(action[:6])))
    steps = max(1, math.ceil(abs(action[column]) / max_action - 1e-9))
    row = action.copy()
    row[column] = action[column] / steps
    return np.repeat(row[None], steps, axis=0)
