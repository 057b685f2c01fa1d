"""
The one image orientation convention of cliprt: **upright** (as a person sees the scene).

LIBERO / robosuite render images upside down (rotated 180 degrees), and LIBERO demonstration
HDF5 files store them that way. Every image that enters the model — training samples, simulator
observations in evaluation, and the ROS ``camera/image_raw`` topic — is upright. Conversion
happens exactly where LIBERO data enters: the HDF5 dataset and the simulator wrapper.

"Upright" is the 180-degree rotation OpenVLA, OpenVLA-OFT and CLIP-RT+ apply to LIBERO frames
for training and evaluation, so the official checkpoints see what they were trained on. Note:
MuJoCo's raw frame is only flipped vertically (OpenGL row order), so this convention is the true
camera view mirrored left-right. It matters only when mixing simulator-trained policies with
real cameras; real cameras publish their unmirrored image on ``camera/image_raw``.
"""
from __future__ import annotations

import numpy as np


def libero_to_upright(image: np.ndarray) -> np.ndarray:
    """Rotate a LIBERO image (``[..., H, W, C]``) by 180 degrees into the upright convention."""
    return np.ascontiguousarray(image[..., ::-1, ::-1, :])
