"""The one image orientation convention of cliprt: **upright** (as a person sees the scene).

LIBERO / robosuite render images upside down (rotated 180 degrees), and LIBERO demonstration
HDF5 files store them that way. Every image that enters the model — training samples, simulator
observations in evaluation, and the ROS ``camera/image_raw`` topic — is upright. Conversion
happens exactly where LIBERO data enters: the HDF5 dataset and the simulator wrapper.
"""
from __future__ import annotations

import numpy as np


def libero_to_upright(image: np.ndarray) -> np.ndarray:
    """Rotate a LIBERO image (``[..., H, W, C]``) by 180 degrees into the upright convention."""
    return np.ascontiguousarray(image[..., ::-1, ::-1, :])
