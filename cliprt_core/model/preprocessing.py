"""
Image preprocessing as batched torch ops (runs on the model's device; no torchvision).

Eval: resize the shortest side to the model's size (bicubic, antialiased), center crop, CLIP
normalisation. Training: RandomResizedCrop(scale 0.9-1.0, ratio 3/4-4/3, bicubic) instead.
Inputs are uint8 RGB images in the upright orientation convention (see cliprt_core.orientation).
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def to_float_chw(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[..., H, W, 3]`` -> float32 ``[..., 3, H, W]`` in [0, 1]."""
    return images.movedim(-1, -3).float().div_(255.0)


def resize_shortest_side(images: torch.Tensor, size: int) -> torch.Tensor:
    """
    Bicubic antialiased resize of ``[B, 3, H, W]`` so that min(H, W) == size.

    The long side is ``int(size * long / short)``, as in torchvision's ``Resize(size)``.
    """
    height, width = images.shape[-2:]
    short, long = min(height, width), max(height, width)
    if short == size:
        return images
    new_long = int(size * long / short)
    new_hw = (size, new_long) if height <= width else (new_long, size)
    return F.interpolate(images, size=new_hw, mode='bicubic', antialias=True, align_corners=False)


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """Crop the central ``size x size`` window of ``[B, 3, H, W]``."""
    height, width = images.shape[-2:]
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return images[..., top:top + size, left:left + size]


def random_resized_crop(image: torch.Tensor, size: int, scale: tuple[float, float] = (0.9, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply RandomResizedCrop to one ``[3, H, W]`` image (torchvision's rule), bicubic."""
    height, width = image.shape[-2:]
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    top, left, crop_h, crop_w = 0, 0, height, width
    for _ in range(10):
        target_area = area * _uniform(scale[0], scale[1], generator)
        aspect = math.exp(_uniform(log_ratio[0], log_ratio[1], generator))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            crop_h, crop_w = h, w
            break
    else:  # fall back to a central crop at the clamped aspect ratio
        in_ratio = width / height
        if in_ratio < ratio[0]:
            crop_w, crop_h = width, int(round(width / ratio[0]))
        elif in_ratio > ratio[1]:
            crop_h, crop_w = height, int(round(height * ratio[1]))
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
    crop = image[None, :, top:top + crop_h, left:left + crop_w]
    return F.interpolate(crop, size=(size, size), mode='bicubic', antialias=True,
                         align_corners=False)[0]


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return float(torch.empty(1).uniform_(low, high, generator=generator))


@functools.lru_cache(maxsize=16)
def _mean_std(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device,
              dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    # Made once per device/dtype (no host->device copy per query), outside inference mode so
    # the same tensors also serve training.
    with torch.inference_mode(False):
        return (torch.tensor(mean, device=device, dtype=dtype).view(-1, 1, 1),
                torch.tensor(std, device=device, dtype=dtype).view(-1, 1, 1))


def normalize(images: torch.Tensor, mean: tuple[float, ...] = CLIP_MEAN,
              std: tuple[float, ...] = CLIP_STD) -> torch.Tensor:
    """CLIP mean/std normalisation of ``[B, 3, H, W]`` floats in [0, 1]."""
    mean_t, std_t = _mean_std(tuple(mean), tuple(std), images.device, images.dtype)
    return (images - mean_t) / std_t


def preprocess_eval(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` (any device) -> normalised model input ``[B, 3, size, size]``."""
    pixels = to_float_chw(images)
    pixels = center_crop(resize_shortest_side(pixels, size), size)
    return normalize(pixels)


def preprocess_train(image: torch.Tensor, size: int, generator: torch.Generator | None = None,
                     scale: tuple[float, float] = (0.9, 1.0)) -> torch.Tensor:
    """
    uint8 ``[H, W, 3]`` -> augmented, *unnormalised* float ``[3, size, size]`` (for workers).

    Normalisation is left to the training step on the GPU (``normalize``).
    """
    return random_resized_crop(to_float_chw(image), size, scale=scale, generator=generator)
