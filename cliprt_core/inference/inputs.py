"""Validation of policy inputs: clear, specific errors for bad images and instructions."""
from __future__ import annotations

from typing import Sequence

import numpy as np

MAX_INSTRUCTION_CHARS = 1000
MAX_IMAGE_SIDE = 4096


class PolicyInputError(ValueError):
    """An image or instruction given to the policy is invalid."""


class NonFiniteActionError(RuntimeError):
    """The model produced NaN/inf; the action is withheld (never returned or published)."""


def validate_instruction(instruction: object) -> str:
    """Return the instruction stripped; reject non-strings, empty and huge instructions."""
    if not isinstance(instruction, str):
        raise PolicyInputError(f'instruction must be a string, got {type(instruction).__name__}')
    text = instruction.strip()
    if not text:
        raise PolicyInputError('instruction is empty')
    if len(text) > MAX_INSTRUCTION_CHARS:
        raise PolicyInputError(f'instruction is {len(text)} characters long; the limit is '
                               f'{MAX_INSTRUCTION_CHARS}')
    return text


def validate_image(image: object, index: int | None = None) -> np.ndarray:
    """
    Check one RGB image: ``np.ndarray`` of shape ``(H, W, 3)`` and dtype uint8.

    Returns it with positive strides (a copy only for views such as ``img[::-1]``, which torch
    cannot wrap).
    """
    where = '' if index is None else f' #{index}'
    if not isinstance(image, np.ndarray):
        raise PolicyInputError(f'image{where} must be a numpy array, got {type(image).__name__}')
    if image.ndim != 3:
        raise PolicyInputError(f'image{where} must be HxWx3, got shape {image.shape}')
    if image.shape[2] != 3:
        raise PolicyInputError(f'image{where} must have 3 (RGB) channels, got {image.shape[2]} '
                               f'(shape {image.shape})')
    if image.dtype != np.uint8:
        raise PolicyInputError(f'image{where} must be uint8, got {image.dtype}')
    height, width = image.shape[:2]
    if min(height, width) < 1 or max(height, width) > MAX_IMAGE_SIDE:
        raise PolicyInputError(f'image{where} size {width}x{height} is outside '
                               f'1..{MAX_IMAGE_SIDE}')
    if not image.flags.c_contiguous or any(stride < 0 for stride in image.strides):
        return image.copy()  # C order, positive strides
    return image


def validate_batch(images: Sequence[np.ndarray] | np.ndarray, instructions: Sequence[str]
                   ) -> tuple[list[np.ndarray], list[str]]:
    """Validate a batch of images and their instructions (same length, at least one)."""
    if isinstance(images, np.ndarray) and images.ndim == 4:
        image_list = list(images)
    elif isinstance(images, (list, tuple)):
        image_list = list(images)
    else:
        raise PolicyInputError(f'images must be a list of HxWx3 arrays or a BxHxWx3 array; got '
                               f'{type(images).__name__}')
    if isinstance(instructions, str) or not isinstance(instructions, (Sequence, np.ndarray)):
        raise PolicyInputError(f'instructions must be a sequence of strings, one per image; '
                               f'got {type(instructions).__name__}')
    texts = list(instructions)
    if not image_list:
        raise PolicyInputError('empty batch')
    if len(image_list) != len(texts):
        raise PolicyInputError(f'{len(image_list)} images but {len(texts)} instructions')
    return ([validate_image(img, i) for i, img in enumerate(image_list)],
            [validate_instruction(t) for t in texts])
