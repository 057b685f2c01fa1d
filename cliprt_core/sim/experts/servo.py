"""
A Cartesian servo that turns end-effector targets into LIBERO OSC_POSE delta actions.

LIBERO's controller (robosuite ``OSC_POSE``, control deltas, 20 Hz) maps an action's first three
entries from [-1, 1] to a position delta of +-5 cm per step and the next three to an axis-angle
delta of +-0.5 rad (world frame); the seventh is the gripper, -1 open and +1 closed. The servo is
a saturated proportional law on the position error plus an orientation hold towards a reference
orientation, so a plan only states where the gripper should be.
"""
from __future__ import annotations

import numpy as np

#: OSC_POSE ``output_max``: what an action of 1.0 asks for in one control step.
MAX_TRANSLATION_M = 0.05
MAX_ROTATION_RAD = 0.5
GRIPPER_OPEN = -1.0
GRIPPER_CLOSED = 1.0


def quat_xyzw_to_matrix(quat: np.ndarray) -> np.ndarray:
    """Return the rotation matrix of a unit quaternion in robosuite's (x, y, z, w) order."""
    x, y, z, w = np.asarray(quat, dtype=np.float64) / np.linalg.norm(quat)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def rotation_vector(matrix: np.ndarray) -> np.ndarray:
    """Return the axis-angle vector (axis * angle, radians) of a rotation matrix."""
    cos = np.clip((np.trace(matrix) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(cos))
    if angle < 1e-6:
        return np.zeros(3)
    axis = np.array([matrix[2, 1] - matrix[1, 2], matrix[0, 2] - matrix[2, 0],
                     matrix[1, 0] - matrix[0, 1]])
    if np.sin(angle) < 1e-6:  # 180 degrees: the axis is the column of the largest diagonal
        k = int(np.argmax(np.diag(matrix)))
        axis = (matrix[:, k] + np.eye(3)[k]) / np.sqrt(2 * (1 + matrix[k, k]))
        return axis / np.linalg.norm(axis) * angle
    return axis / (2 * np.sin(angle)) * angle


def yaw_rotation(yaw: float) -> np.ndarray:
    """Return the rotation about the world z axis by ``yaw`` radians."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def servo_action(eef_pos: np.ndarray, eef_quat: np.ndarray, target_pos: np.ndarray,
                 target_rotation: np.ndarray, gripper: float, max_speed: float = 1.0,
                 gain: float = 1.5) -> np.ndarray:
    """
    Return the 7-D action that moves the gripper towards ``target_pos`` / ``target_rotation``.

    ``max_speed`` caps the translation part (fraction of 5 cm per step) for careful phases.
    """
    error = np.asarray(target_pos, dtype=np.float64) - eef_pos
    translation = gain * error / MAX_TRANSLATION_M
    norm = np.linalg.norm(translation)
    if norm > max_speed:
        translation *= max_speed / norm
    current = quat_xyzw_to_matrix(eef_quat)
    rotation = rotation_vector(target_rotation @ current.T) / MAX_ROTATION_RAD
    action = np.concatenate([translation, np.clip(rotation, -1.0, 1.0), [gripper]])
    return np.clip(action, -1.0, 1.0)
