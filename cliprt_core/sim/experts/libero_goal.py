"""
Plans for the libero_goal scene.

The kitchen table holds a bowl, a plate, cream cheese, a wine bottle, a stove, a cabinet and a
wine rack. Heights are world z in metres (the table top is at about 0.90).

Each plan reads poses from the scene when it is built (after the init state has settled), so the
small per-episode placement noise of the fixed init states is absorbed.
"""
from __future__ import annotations

from cliprt_core.sim.experts.base import Phase
from cliprt_core.sim.experts.scene import Scene
from cliprt_core.sim.experts.servo import GRIPPER_CLOSED, GRIPPER_OPEN
import numpy as np

SAFE_Z = 1.05
BOWL = 'akita_black_bowl_1_main'
RIM_RADIUS = 0.034  # bowl wall, from the bowl centre
RIM_GRASP_Z = 0.915  # grip site height that pinches the wall below its top edge (0.92)


def _fixed(point) -> callable:
    point = np.asarray(point, dtype=np.float64)
    return lambda scene, eef: point


def _above(point, z: float = SAFE_Z) -> np.ndarray:
    return np.array([point[0], point[1], z])


def _lift(z: float = SAFE_Z) -> callable:
    return lambda scene, eef: np.array([eef[0], eef[1], z])


def _grasp(name: str, point: np.ndarray, yaw: float = 0.0) -> list[Phase]:
    """Approach from above, descend, close, lift."""
    return [
        Phase(f'approach {name}', _fixed(_above(point)), GRIPPER_OPEN, tolerance=0.015, yaw=yaw),
        Phase(f'descend to {name}', _fixed(point), GRIPPER_OPEN, tolerance=0.01, speed=0.5,
              yaw=yaw, max_steps=40),
        Phase(f'grasp {name}', _fixed(point), GRIPPER_CLOSED, tolerance=1.0, hold=12, yaw=yaw),
        Phase(f'lift {name}', _lift(), GRIPPER_CLOSED, tolerance=0.02, yaw=yaw),
    ]


def _place(name: str, point: np.ndarray, yaw: float = 0.0, z: float = SAFE_Z) -> list[Phase]:
    """Carry the held object above ``point`` (at height ``z``), lower, release, back off."""
    return [
        Phase(f'carry up to {z:.2f} m', _lift(z), GRIPPER_CLOSED, tolerance=0.02, yaw=yaw),
        Phase(f'transport to {name}', _fixed(_above(point, z)), GRIPPER_CLOSED, tolerance=0.015,
              yaw=yaw, max_steps=100),
        Phase(f'lower onto {name}', _fixed(point), GRIPPER_CLOSED, tolerance=0.01, speed=0.5,
              yaw=yaw, max_steps=40),
        Phase('release', _fixed(point), GRIPPER_OPEN, tolerance=1.0, hold=8, yaw=yaw),
        Phase('retreat', _lift(z), GRIPPER_OPEN, tolerance=0.02, yaw=yaw),
    ]


def _bowl_rim(scene: Scene) -> np.ndarray:
    center = scene.body_pos(BOWL)
    return np.array([center[0], center[1] + RIM_RADIUS, RIM_GRASP_Z])


def bowl_on_plate(scene: Scene) -> list[Phase]:
    """Put the bowl on the plate."""
    rim = _bowl_rim(scene)
    plate = scene.body_pos('plate_1_main')
    return (_grasp('bowl', rim)
            + _place('plate', np.array([plate[0], plate[1] + RIM_RADIUS, 0.95])))


def bowl_on_stove(scene: Scene) -> list[Phase]:
    """Put the bowl on the stove's cook region."""
    rim = _bowl_rim(scene)
    burner = scene.body_pos('flat_stove_1_burner')
    return (_grasp('bowl', rim)
            + _place('stove', np.array([burner[0], burner[1] + RIM_RADIUS, 0.97])))


def bowl_on_cabinet(scene: Scene) -> list[Phase]:
    """Put the bowl on top of the cabinet."""
    rim = _bowl_rim(scene)
    low, high = scene.extent('wooden_cabinet_1_base')
    top = (low + high) / 2
    return (_grasp('bowl', rim)
            + _place('cabinet top', np.array([top[0], top[1] + RIM_RADIUS, high[2] + 0.05]),
                     z=high[2] + 0.15))


def wine_bottle_on_cabinet(scene: Scene) -> list[Phase]:
    """Grasp the wine bottle by its neck and stand it on top of the cabinet."""
    low, high = scene.extent('wine_bottle_1_main')
    center = (low + high) / 2
    grasp_z = high[2] - 0.03
    cabinet_low, cabinet_high = scene.extent('wooden_cabinet_1_base')
    top = (cabinet_low + cabinet_high) / 2
    release_z = cabinet_high[2] + (grasp_z - low[2]) + 0.015
    return (_grasp('wine bottle', np.array([center[0], center[1], grasp_z]))
            + _place('cabinet top', np.array([top[0], top[1], release_z]), z=release_z + 0.06))


def cream_cheese_in_bowl(scene: Scene) -> list[Phase]:
    """Put the cream cheese box into the bowl."""
    low, high = scene.extent('cream_cheese_1_main')
    center = (low + high) / 2
    size = high - low
    yaw = 0.0 if size[1] <= size[0] else np.pi / 2  # fingers close across the narrow side
    bowl = scene.body_pos(BOWL)
    grasp = np.array([center[0], center[1], max(high[2] - 0.02, low[2] + 0.01)])
    return (_grasp('cream cheese', grasp, yaw)
            + _place('bowl', np.array([bowl[0], bowl[1], 0.97]), yaw))


#: task.language -> plan builder
PLANS = {
    'put the bowl on the plate': bowl_on_plate,
    'put the bowl on the stove': bowl_on_stove,
    'put the bowl on top of the cabinet': bowl_on_cabinet,
    'put the cream cheese in the bowl': cream_cheese_in_bowl,
    'put the wine bottle on top of the cabinet': wine_bottle_on_cabinet,
}
