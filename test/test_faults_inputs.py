"""Fault injection for policy inputs: wrong argument types and numpy views torch cannot wrap
give a PolicyInputError (or just work), never a raw TypeError or numpy error."""
import numpy as np
import pytest

from cliprt_core.inference import Policy
from cliprt_core.inference.inputs import PolicyInputError


@pytest.fixture(scope="module")
def policy():
    return Policy.from_config("cliprt-tiny", device="cpu")


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)


@pytest.mark.parametrize("instructions", [None, 3, {"a": 1}.keys(), "one string"])
def test_instructions_that_are_not_a_sequence(policy, image, instructions):
    with pytest.raises(PolicyInputError, match="instructions must be a sequence of strings"):
        policy.act_batch([image], instructions)


@pytest.mark.parametrize("images", [None, 7, "image.png"])
def test_images_that_are_not_a_list(policy, images):
    with pytest.raises(PolicyInputError, match="images must be a list of HxWx3 arrays"):
        policy.act_batch(images, ["go"])


def test_flipped_views_in_a_mixed_size_batch(policy, image):
    flipped = image[::-1, ::-1]                               # negative strides
    tiny = np.zeros((1, 1, 3), np.uint8)[::-1, ::-1]           # "contiguous" to numpy, not torch
    strided = np.zeros((80, 80, 3), np.uint8)[::2, ::-1]       # negative and non-contiguous
    chunks = policy.act_batch([image, flipped[:40], tiny, strided], ["go"] * 4)
    assert chunks.shape == (4, 8, 7) and np.isfinite(chunks).all()
    single = policy.act_batch([np.ascontiguousarray(flipped[:40])], ["go"])
    np.testing.assert_allclose(chunks[1], single[0], atol=1e-5)
    policy.reset("go")
    assert policy.act(tiny).shape == (8, 7)
    assert policy.act_batch([image], np.array(["go"])).shape == (1, 8, 7)  # numpy strings
