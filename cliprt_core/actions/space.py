"""
The action space of CLIP-RT on LIBERO-style arms: 7-D end-effector deltas plus the gripper.

``[dx, dy, dz, droll, dpitch, dyaw, gripper]``: OSC_POSE deltas normalised to [-1, 1] (1.0 = 5 cm
or 0.5 rad per 20 Hz control step) and the gripper command (-1 open, +1 close).
"""
from __future__ import annotations

#: The 7 action dimensions, in order.
ACTION_NAMES = ('dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper')
ACTION_DIM = len(ACTION_NAMES)
#: LIBERO's normalised bounds of every dimension.
ACTION_LOW = (-1.0,) * ACTION_DIM
ACTION_HIGH = (1.0,) * ACTION_DIM
#: Seconds per control step of LIBERO (robosuite's OSC controller at 20 Hz).
CONTROL_PERIOD = 0.05
