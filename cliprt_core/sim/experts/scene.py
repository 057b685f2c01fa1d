"""Read-only views of the simulator state that expert plans need (poses, extents, joints)."""
from __future__ import annotations

import numpy as np


class Scene:
    """Object poses and joint positions of a running LIBERO env (MuJoCo, world frame)."""

    def __init__(self, raw_env) -> None:
        self._sim = raw_env.env.sim
        self._model = self._sim.model

    def body_pos(self, body: str) -> np.ndarray:
        """Return a body's world position."""
        return self._sim.data.body_xpos[self._model.body_name2id(body)].copy()

    def joint_qpos(self, joint: str) -> float:
        """Return a one-dof joint's position (slide: metres, hinge: radians)."""
        address = self._model.jnt_qposadr[self._model.joint_name2id(joint)]
        return float(self._sim.data.qpos[address])

    def collision_geoms(self, body: str) -> list[int]:
        """Return the ids of a body's colliding geoms (the visual meshes excluded)."""
        body_id = self._model.body_name2id(body)
        return [g for g in range(self._model.ngeom)
                if self._model.geom_bodyid[g] == body_id and self._model.geom_contype[g] != 0]

    def geom_pos(self, geom: int) -> np.ndarray:
        return self._sim.data.geom_xpos[geom].copy()

    def extent(self, body: str) -> tuple[np.ndarray, np.ndarray]:
        """Return the world axis-aligned bounds (low, high) of a body's colliding boxes."""
        corners = []
        for geom in self.collision_geoms(body):
            rotation = self._sim.data.geom_xmat[geom].reshape(3, 3)
            half = np.abs(rotation) @ self._model.geom_size[geom]
            center = self._sim.data.geom_xpos[geom]
            corners += [center - half, center + half]
        if not corners:
            raise ValueError(f'body {body!r} has no colliding geoms')
        stacked = np.array(corners)
        return stacked.min(axis=0), stacked.max(axis=0)
