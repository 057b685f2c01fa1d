"""The Policy API: reset/act/act_batch, the instruction cache, and bad inputs."""
import numpy as np
import pytest
import torch

from cliprt_core.checkpoint import save_model_checkpoint
from cliprt_core.inference import DiscreteAction, NonFiniteActionError, Policy, PolicyInputError
from cliprt_core.inference.embedding_cache import EmbeddingCache


@pytest.fixture(scope="module")
def policy(tiny_policy):  # the shared one (conftest)
    return tiny_policy


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)


class TextTowerCounter:
    """Counts real forward calls of the text transformer through a forward hook."""

    def __init__(self, policy):
        self.calls = 0
        self.batch = 0
        self._handle = policy.model.clip.transformer.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.calls += 1
        self.batch += args[0].shape[0]

    def close(self):
        self._handle.remove()


def test_act_returns_a_finite_float32_chunk(policy, image):
    policy.reset("Pick up the black bowl")
    chunk = policy.act(image)
    assert chunk.shape == (8, 7) and chunk.dtype == np.float32
    assert np.isfinite(chunk).all()
    assert np.array_equal(chunk, policy.act(image))  # deterministic


def test_act_batch_equals_single_queries(policy, image):
    other = image[::-1].copy()
    batch = policy.act_batch([image, other], ["open the drawer", "close the drawer"])
    policy.reset("open the drawer")
    first = policy.act(image)
    policy.reset("close the drawer")
    second = policy.act(other)
    assert batch.shape == (2, 8, 7)
    np.testing.assert_allclose(batch[0], first, atol=1e-5)
    np.testing.assert_allclose(batch[1], second, atol=1e-5)
    assert not np.allclose(batch[0], batch[1])


def test_act_batch_accepts_mixed_image_sizes(policy, image):
    small = image[:64, :64].copy()
    out = policy.act_batch([image, small], ["a", "a"])
    policy.reset("a")
    np.testing.assert_allclose(out[1], policy.act(small), atol=1e-5)


def test_cache_skips_the_text_tower(image):
    policy = Policy.from_config("cliprt-tiny", device="cpu", cache_size=8)
    counter = TextTowerCounter(policy)
    try:
        policy.reset("put the bowl on the plate")
        assert counter.calls == 1
        for _ in range(5):
            policy.act(image)
        assert counter.calls == 1  # every query: one image encode + the head only
        policy.act_batch([image] * 3, ["put the bowl on the plate", "new one", "new one"])
        assert counter.calls == 2 and counter.batch == 2  # only "new one" was encoded, once
    finally:
        counter.close()


def test_naive_mode_reencodes_every_query(image):
    policy = Policy.from_config("cliprt-tiny", device="cpu", cache_size=0)
    counter = TextTowerCounter(policy)
    try:
        policy.reset("x")
        for _ in range(3):
            policy.act(image)
        assert counter.calls == 4
    finally:
        counter.close()


def test_cached_and_naive_agree(image):
    cached = Policy.from_config("cliprt-tiny", device="cpu", seed=5)
    naive = Policy.from_config("cliprt-tiny", device="cpu", seed=5, cache_size=0)
    for p in (cached, naive):
        p.reset("stack the blocks")
    np.testing.assert_allclose(cached.act(image), naive.act(image), atol=1e-6)


def test_lru_cache_is_bounded():
    cache = EmbeddingCache(2)
    for key in "abc":
        cache.put(key, torch.zeros(1))
    assert len(cache) == 2 and "a" not in cache
    cache.get("b")
    cache.put("d", torch.zeros(1))
    assert "b" in cache and "c" not in cache
    assert (cache.hits, cache.misses) == (1, 0)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((8, 8), np.uint8), "HxWx3"),
    (np.zeros((8, 8, 4), np.uint8), "3 \\(RGB\\) channels"),
    (np.zeros((8, 8, 3), np.float32), "uint8"),
    ([[1, 2, 3]], "numpy array"),
    (np.zeros((0, 8, 3), np.uint8), "outside"),
])
def test_bad_images(policy, bad, message):
    policy.reset("x")
    with pytest.raises(PolicyInputError, match=message):
        policy.act(bad)


@pytest.mark.parametrize("bad, message", [
    ("", "empty"), ("   ", "empty"), ("x" * 5000, "5000 characters"), (None, "string")])
def test_bad_instructions(policy, bad, message):
    with pytest.raises(PolicyInputError, match=message):
        policy.reset(bad)


def test_bad_batches(policy, image):
    with pytest.raises(PolicyInputError, match="2 images but 1 instructions"):
        policy.act_batch([image, image], ["a"])
    with pytest.raises(PolicyInputError, match="empty batch"):
        policy.act_batch([], [])
    with pytest.raises(PolicyInputError, match="sequence of strings"):
        policy.act_batch([image], "a")


def test_act_without_instruction(image):
    with pytest.raises(PolicyInputError, match="reset"):
        Policy.from_config("cliprt-tiny", device="cpu").act(image)


def test_non_finite_output_is_never_returned(image):
    policy = Policy.from_config("cliprt-tiny", device="cpu")
    with torch.no_grad():
        policy.model.action_head.fc2.bias[3] = float("nan")
    policy.reset("x")
    with pytest.raises(NonFiniteActionError, match="withheld"):
        policy.act(image)


def test_discrete_policy_returns_phrase_and_action(image):
    policy = Policy.from_config("cliprt-tiny-discrete", device="cpu")
    counter = TextTowerCounter(policy)
    policy.reset("wipe the table")
    result = policy.act(image)
    assert isinstance(result, DiscreteAction)
    assert result.phrase == policy.vocabulary.phrases[result.index]
    assert np.array_equal(result.action, policy.vocabulary.vectors[result.index])
    assert 0.0 < result.score < 1.0
    policy.act(image)
    # only the instruction (at reset): primitive phrases were encoded once, at construction
    assert counter.calls == 1
    counter.close()


def test_from_checkpoint_reproduces_the_policy(policy, image, tmp_path):
    path = tmp_path / "tiny.pt"
    save_model_checkpoint(policy.model, path)
    loaded = Policy.from_checkpoint(path, device="cpu")
    for p in (policy, loaded):
        p.reset("turn on the stove")
    np.testing.assert_array_equal(policy.act(image), loaded.act(image))


def test_build_policy_is_what_every_entry_point_uses(policy, image, tmp_path):
    from cliprt_core.checkpoint import CheckpointError
    from cliprt_core.inference.factory import build_policy

    random_policy = build_policy(device="cpu")  # no checkpoint: random cliprt-tiny
    assert random_policy.config.name == "cliprt-tiny" and random_policy.dtype == torch.float32
    path = tmp_path / "tiny.pt"
    save_model_checkpoint(policy.model, path)
    loaded = build_policy(str(path), "", device="cpu", dtype="fp32")  # carries its own config
    same = build_policy(str(path), "cliprt-tiny", device="cpu")  # agreeing config is fine
    for p in (policy, loaded, same):
        p.reset("open the top drawer")
    np.testing.assert_array_equal(loaded.act(image), policy.act(image))
    np.testing.assert_array_equal(same.act(image), policy.act(image))
    with pytest.raises(CheckpointError, match="carries its own config"):
        build_policy(str(path), "cliprt-tiny-discrete", device="cpu")
    with pytest.raises(ValueError, match="unknown dtype"):
        build_policy(device="cpu", dtype="int8")
