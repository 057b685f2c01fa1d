"""Inference backends: ONNX export + ONNX Runtime parity, dynamic batch, the instruction cache
under every backend, torch.compile, backend selection errors, stale ONNX/engine files."""
import copy
import importlib.util
import json
import sys

import numpy as np
import pytest
import torch

from cliprt_core.checkpoint import save_model_checkpoint
from cliprt_core.cli import export as export_cli
from cliprt_core.inference import Policy
from cliprt_core.inference.backends import (BackendUnavailableError, EngineMismatchError,
                                            UnknownBackendError, create_backend)
from cliprt_core.inference.backends.artifacts import weights_fingerprint
from cliprt_core.inference.backends.onnx_export import (export_onnx, onnx_input_dtype,
                                                        read_metadata)
from cliprt_core.inference.backends.onnx_verify import OnnxVerificationError, verify_onnx
from cliprt_core.inference.backends.tensorrt_engine import plan_typing, read_engine, sidecar

ort = pytest.importorskip("onnxruntime")
PARITY = 1e-4


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cliprt-cache")


@pytest.fixture(scope="module")
def torch_chunk(tiny_policy):  # the shared one (conftest)
    return tiny_policy


@pytest.fixture(scope="module")
def onnx_chunk(torch_chunk, cache_dir):
    # Same model object as the torch reference: identical weights by construction.
    return Policy(torch_chunk.model, device="cpu", backend="onnx",
                  backend_options={"cache_dir": cache_dir})


@pytest.fixture(scope="module")
def torch_discrete(tiny_discrete_policy):  # the shared one (conftest)
    return tiny_discrete_policy


@pytest.fixture(scope="module")
def onnx_discrete(torch_discrete, cache_dir):
    return Policy(torch_discrete.model, device="cpu", backend="onnx",
                  backend_options={"cache_dir": cache_dir})


def frames(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(n)]


class TextTowerCounter:
    """Counts real forward calls of the text transformer (a forward hook, no mock)."""

    def __init__(self, policy):
        self.calls = 0
        self._handle = policy.model.clip.transformer.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.calls += 1

    def close(self):
        self._handle.remove()


def test_onnx_chunk_parity_with_torch(torch_chunk, onnx_chunk):
    assert onnx_chunk.backend_name == "onnx" and torch_chunk.backend_name == "torch"
    assert weights_fingerprint(onnx_chunk.graph) == weights_fingerprint(torch_chunk.graph)
    images = frames(3)
    texts = ["pick up the black bowl", "open the top drawer", "pick up the black bowl"]
    expected = torch_chunk.act_batch(images, texts)
    got = onnx_chunk.act_batch(images, texts)
    assert got.shape == (3, 8, 7) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=PARITY, rtol=0)
    assert not np.allclose(got[0], got[1])  # a real, input-dependent output
    for policy in (torch_chunk, onnx_chunk):
        policy.reset("turn on the stove")
    np.testing.assert_allclose(onnx_chunk.act(images[0]), torch_chunk.act(images[0]),
                               atol=PARITY, rtol=0)


def test_onnx_discrete_parity_with_torch(torch_discrete, onnx_discrete):
    images = frames(3, seed=1)
    texts = ["move the arm left", "close the gripper", "move up"]
    with torch.inference_mode():
        pixels = torch_discrete.preprocess(images)
        prompts = torch_discrete.prompt_embeddings(texts)
        expected = torch_discrete.graph(pixels, prompts).numpy()
        got = onnx_discrete.query(pixels, prompts).numpy()
    assert got.shape == expected.shape == (3, len(torch_discrete.vocabulary.phrases))
    np.testing.assert_allclose(got, expected, atol=PARITY, rtol=0)
    for a, b in zip(onnx_discrete.act_batch(images, texts), torch_discrete.act_batch(images,
                                                                                     texts)):
        assert a.phrase == b.phrase and abs(a.score - b.score) < PARITY


def test_onnx_batch_dimension_is_dynamic(torch_chunk, onnx_chunk):
    session = onnx_chunk.backend.session
    assert [i.name for i in session.get_inputs()] == ["pixels", "prompt_embeddings"]
    assert all(isinstance(i.shape[0], str) for i in session.get_inputs())  # symbolic batch
    generator = torch.Generator().manual_seed(3)
    for batch in (1, 3):
        pixels = torch.randn(batch, 3, 64, 64, generator=generator)
        prompts = torch.randn(batch, 64, generator=generator)
        with torch.inference_mode():
            got = onnx_chunk.query(pixels, prompts)
            expected = torch_chunk.graph(pixels, prompts)
        assert tuple(got.shape) == (batch, 8, 7)
        np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=PARITY, rtol=0)


@pytest.mark.parametrize("backend,options", [
    ("onnx", {}),
    ("compile", {"compile_backend": "eager", "warmup_batches": (1,), "warmup_iters": 1}),
])
def test_every_backend_respects_the_instruction_cache(torch_chunk, cache_dir, backend, options):
    if backend == "onnx":
        options = {"cache_dir": cache_dir}
    policy = Policy(torch_chunk.model, device="cpu", backend=backend, backend_options=options)
    counter = TextTowerCounter(policy)
    try:
        image = frames(1)[0]
        policy.reset("put the bowl on the plate")
        for _ in range(4):
            policy.act(image)
        assert counter.calls == 1  # encoded once, at reset
        policy.act_batch(frames(3), ["put the bowl on the plate", "open the drawer",
                                     "open the drawer"])
        assert counter.calls == 2  # only the new instruction, once
        torch_chunk.reset("put the bowl on the plate")
        np.testing.assert_allclose(policy.act(image), torch_chunk.act(image), atol=PARITY)
    finally:
        counter.close()


def test_naive_policy_reencodes_under_the_onnx_backend(torch_chunk, cache_dir):
    """The counter is real: without a cache every query runs the text tower."""
    naive = Policy(torch_chunk.model, device="cpu", cache_size=0, backend="onnx",
                   backend_options={"cache_dir": cache_dir})
    counter = TextTowerCounter(naive)
    try:
        naive.reset("wipe the table")
        for _ in range(3):
            naive.act(frames(1)[0])
        assert counter.calls == 4
    finally:
        counter.close()


def test_compile_backend_matches_eager_and_recompiles_nothing(torch_chunk):
    policy = Policy(torch_chunk.model, device="cpu", backend="compile",
                    backend_options={"compile_backend": "eager", "warmup_batches": (2,),
                                     "warmup_iters": 1})
    assert policy.backend.describe()["compile_backend"] == "eager"
    images, texts = frames(2), ["stack the blocks", "stack the blocks"]
    with torch._dynamo.config.patch(error_on_recompile=True):  # warmed up: no new compile
        got = policy.act_batch(images, texts)
    np.testing.assert_allclose(got, torch_chunk.act_batch(images, texts), atol=PARITY)


def test_backend_selection_errors(torch_chunk, monkeypatch):
    with pytest.raises(UnknownBackendError, match="unknown backend 'tensorflow'"):
        Policy(torch_chunk.model, device="cpu", backend="tensorflow")
    with pytest.raises(ValueError):  # UnknownBackendError is also a ValueError
        create_backend("onnxx", torch_chunk)
    with pytest.raises(UnknownBackendError, match="no option.*'precison'"):
        create_backend("onnx", torch_chunk, precison="fp16")
    with pytest.raises(BackendUnavailableError, match="needs a CUDA"):
        create_backend("tensorrt", torch_chunk)
    bf16 = Policy.from_config("cliprt-tiny", device="cpu", dtype=torch.bfloat16)
    with pytest.raises(BackendUnavailableError, match="bf16"):
        create_backend("onnx", bf16)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(BackendUnavailableError, match="pip install onnxruntime"):
        create_backend("onnx", torch_chunk)


def test_stale_onnx_file_is_rejected(torch_chunk, tmp_path):
    path = export_onnx(torch_chunk, tmp_path / "seed0.onnx")
    meta = read_metadata(path)
    assert meta["weights_sha256"] == weights_fingerprint(torch_chunk.graph)
    assert meta["head"] == "chunk" and meta["inputs"]["pixels"] == ["batch", 3, 64, 64]
    other = Policy.from_config("cliprt-tiny", device="cpu", seed=1)
    with pytest.raises(EngineMismatchError, match="weights_sha256"):
        Policy(other.model, device="cpu", backend="onnx", backend_options={"onnx_path": path})
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not an onnx file" * 10)
    with pytest.raises(EngineMismatchError):
        create_backend("onnx", torch_chunk, onnx_path=garbage)
    ok = create_backend("onnx", torch_chunk, onnx_path=path)  # the right file is accepted
    assert ok.path == path


def test_onnx_export_is_cached_by_weights(torch_chunk, onnx_chunk, cache_dir):
    again = Policy(torch_chunk.model, device="cpu", backend="onnx",
                   backend_options={"cache_dir": cache_dir})
    assert again.backend.path == onnx_chunk.backend.path
    files = sorted(p.name for p in (cache_dir / "onnx").iterdir())
    assert len([f for f in files if f.startswith("cliprt-tiny-fp32")]) == 1


def test_external_data_and_fp16_exports_run_in_onnxruntime(torch_chunk, tmp_path):
    path = export_onnx(torch_chunk, tmp_path / "ext.onnx", external_data=True)
    assert (tmp_path / "ext.onnx.data").stat().st_size > path.stat().st_size
    backend = create_backend("onnx", torch_chunk, onnx_path=path)
    pixels, prompts = torch.randn(2, 3, 64, 64), torch.randn(2, 64)
    with torch.inference_mode():
        np.testing.assert_allclose(backend(pixels, prompts).numpy(),
                                   torch_chunk.graph(pixels, prompts).numpy(), atol=PARITY)
    half = Policy.from_config("cliprt-tiny", device="cpu", dtype=torch.float16, seed=0)
    half_onnx = Policy(half.model, device="cpu", dtype=torch.float16, backend="onnx",
                       backend_options={"cache_dir": tmp_path})
    assert onnx_input_dtype(half_onnx.backend.path) == "fp16"
    images, texts = frames(2), ["a", "b"]
    np.testing.assert_allclose(half_onnx.act_batch(images, texts), half.act_batch(images, texts),
                               atol=2e-2)


def test_from_checkpoint_selects_the_backend(torch_chunk, tmp_path):
    save_model_checkpoint(torch_chunk.model, tmp_path / "tiny.pt")
    loaded = Policy.from_checkpoint(tmp_path / "tiny.pt", device="cpu", backend="onnx",
                                    backend_options={"cache_dir": tmp_path})
    assert loaded.backend_name == "onnx"
    images, texts = frames(2), ["x", "y"]
    np.testing.assert_allclose(loaded.act_batch(images, texts),
                               torch_chunk.act_batch(images, texts), atol=PARITY)


def test_engine_metadata_is_checked_without_tensorrt(tmp_path):
    """The stale-engine checks are plain Python: exercised here, TensorRT or not."""
    import hashlib

    engine = tmp_path / "policy.engine"
    data = b"serialized engine bytes"
    engine.write_bytes(data)
    meta = {"weights_sha256": "abc", "tensorrt": "10.13.0", "gpu": "NVIDIA H200",
            "compute_capability": "9.0", "engine_sha256": hashlib.sha256(data).hexdigest()}
    sidecar(engine).write_text(json.dumps(meta))
    expected = {k: meta[k] for k in ("weights_sha256", "tensorrt", "gpu", "compute_capability")}
    assert read_engine(engine, expected)[0] == data
    with pytest.raises(EngineMismatchError, match="tensorrt: '10.13.0' != expected '11.0.0'"):
        read_engine(engine, dict(expected, tensorrt="11.0.0"))
    with pytest.raises(EngineMismatchError, match="weights_sha256"):
        read_engine(engine, dict(expected, weights_sha256="def"))
    engine.write_bytes(data[:-3])  # truncated
    with pytest.raises(EngineMismatchError, match="sha256"):
        read_engine(engine, expected)
    sidecar(engine).unlink()
    with pytest.raises(EngineMismatchError, match="metadata"):
        read_engine(engine, expected)
    with pytest.raises(EngineMismatchError, match="does not exist"):
        read_engine(tmp_path / "missing.engine", expected)


def test_tensorrt_precision_plan_for_10x_and_11x():
    assert plan_typing("bf16", "bf16", weak_typing=False) == (True, None)  # 11.x strongly typed
    assert plan_typing("fp16", "fp16", weak_typing=True) == (True, None)
    assert plan_typing("fp32", "bf16", weak_typing=True) == (False, "BF16")  # 10.x flag
    assert plan_typing("fp32", "fp32", weak_typing=True) == (True, None)
    with pytest.raises(BackendUnavailableError, match="--dtype bf16"):
        plan_typing("fp32", "bf16", weak_typing=False)  # 11.x has no BuilderFlag.BF16
    with pytest.raises(ValueError):
        plan_typing("fp32", "int8", weak_typing=True)


def test_cliprt_export_cli(tmp_path, capsys):
    out = tmp_path / "discrete.onnx"
    assert export_cli.main(["--model", "cliprt-tiny-discrete", "--output", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["onnx"] == str(out) and result["max_abs_diff_vs_torch"] < PARITY
    assert read_metadata(out)["head"] == "discrete"
    code = export_cli.main(["--onnx", str(out), "--engine", str(tmp_path / "x.engine")])
    if importlib.util.find_spec("tensorrt") is None:
        assert code == 1 and "TensorRT" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export_cli.main(["--output", str(out)])  # no source


def test_verify_onnx_returns_the_difference_and_raises_beyond_tolerance(torch_chunk, tmp_path):
    path = export_onnx(torch_chunk, tmp_path / "chunk.onnx")
    assert 0.0 <= verify_onnx(torch_chunk, path) < PARITY
    with pytest.raises(OnnxVerificationError, match="disagrees with torch"):
        verify_onnx(torch_chunk, path, tolerance=-1.0)  # any difference is too large
    half = Policy(copy.deepcopy(torch_chunk.model), device="cpu", dtype=torch.bfloat16)
    assert verify_onnx(half, path) is None  # bf16: ONNX Runtime cannot run it, nothing checked


def test_bf16_export_is_valid_onnx_with_bf16_numerics(torch_chunk, tmp_path):
    """What TensorRT 11 builds from (ONNX Runtime rejects bf16): checked with onnx's checker
    and its reference evaluator against the fp32 torch graph."""
    onnx = pytest.importorskip("onnx")
    ml_dtypes = pytest.importorskip("ml_dtypes")
    from onnx.reference import ReferenceEvaluator

    half = Policy(copy.deepcopy(torch_chunk.model), device="cpu", dtype=torch.bfloat16)
    path = export_onnx(half, tmp_path / "bf16.onnx")
    assert type(half.model.clip.visual.conv1) is torch.nn.Conv2d  # restored after export
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert onnx_input_dtype(path) == "bf16" and read_metadata(path)["dtype"] == "bf16"
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(3, 3, 64, 64, generator=generator).to(torch.bfloat16)
    prompts = (0.3 * torch.randn(3, 64, generator=generator)).to(torch.bfloat16)
    feeds = {"pixels": pixels.float().numpy().astype(ml_dtypes.bfloat16),
             "prompt_embeddings": prompts.float().numpy().astype(ml_dtypes.bfloat16)}
    (got,) = ReferenceEvaluator(str(path)).run(None, feeds)
    with torch.inference_mode():
        fp32 = torch_chunk.graph(pixels.float(), prompts.float()).numpy()
    assert got.shape == (3, 8, 7)
    np.testing.assert_allclose(got.astype(np.float32), fp32, atol=0.1)
