"""GPU backends: TensorRT engine build/cache/runtime, ONNX Runtime CUDA EP, compiled torch with
CUDA graphs. Skipped without CUDA (conftest) and, for TensorRT, without the tensorrt package.
Never run on CPU-only CI: the TensorRT path is verified only where a GPU is available."""
import importlib.util

import numpy as np
import pytest
import torch

from cliprt_core.inference import Policy
from cliprt_core.inference.backends import EngineMismatchError, create_backend
from cliprt_core.inference.backends.tensorrt_engine import sidecar

pytestmark = pytest.mark.gpu


def _cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")


@pytest.fixture
def trt():
    _cuda()
    if importlib.util.find_spec("tensorrt") is None:
        pytest.skip("tensorrt is not installed (make gpu-extras)")
    import tensorrt

    return tensorrt


def frames(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-3), (torch.float16, 3e-2)])
def test_tensorrt_engine_parity_cache_and_dynamic_batch(trt, tmp_path, dtype, atol):
    reference = Policy.from_config("cliprt-tiny", device="cuda", dtype=dtype, seed=0)
    options = {"cache_dir": tmp_path, "max_batch": 4}
    policy = Policy(reference.model, device="cuda", dtype=dtype, backend="tensorrt",
                    backend_options=options)
    engine = policy.backend.path
    assert engine.is_file() and sidecar(engine).is_file()
    assert policy.backend.describe()["tensorrt"] == trt.__version__
    for batch in (1, 3, 6):  # 6 > max_batch: split over two executions
        images = frames(batch, seed=batch)
        texts = [f"task {i % 2}" for i in range(batch)]
        got = policy.act_batch(images, texts)
        np.testing.assert_allclose(got, reference.act_batch(images, texts), atol=atol)
    built = engine.stat().st_mtime_ns
    again = Policy(reference.model, device="cuda", dtype=dtype, backend="tensorrt",
                   backend_options=options)
    assert again.backend.path == engine and engine.stat().st_mtime_ns == built  # cache hit


def test_tensorrt_rejects_a_stale_engine(trt, tmp_path):
    first = Policy.from_config("cliprt-tiny", device="cuda", dtype=torch.float16, seed=0,
                               backend="tensorrt", backend_options={"cache_dir": tmp_path})
    engine = first.backend.path
    other = Policy.from_config("cliprt-tiny", device="cuda", dtype=torch.float16, seed=1)
    with pytest.raises(EngineMismatchError, match="weights_sha256"):
        create_backend("tensorrt", other, engine=engine)
    ok = create_backend("tensorrt", first, engine=engine)
    assert ok.path == engine
    engine.write_bytes(engine.read_bytes()[:-16])  # truncated: sha256 check
    with pytest.raises(EngineMismatchError):
        create_backend("tensorrt", first, engine=engine)
    # in the cache (no explicit engine) a damaged entry is rebuilt instead
    rebuilt = Policy(first.model, device="cuda", dtype=torch.float16, backend="tensorrt",
                     backend_options={"cache_dir": tmp_path})
    assert rebuilt.backend.path == engine


def test_tensorrt_discrete_head(trt, tmp_path):
    reference = Policy.from_config("cliprt-tiny-discrete", device="cuda", dtype=torch.float16)
    policy = Policy(reference.model, device="cuda", dtype=torch.float16, backend="tensorrt",
                    backend_options={"cache_dir": tmp_path})
    images, texts = frames(2), ["move left", "open the gripper"]
    for a, b in zip(policy.act_batch(images, texts), reference.act_batch(images, texts)):
        assert abs(a.score - b.score) < 1e-2


def test_compiled_backend_with_cuda_graphs(tmp_path):
    _cuda()
    reference = Policy.from_config("cliprt-tiny", device="cuda", dtype=torch.float32)
    policy = Policy(reference.model, device="cuda", dtype=torch.float32, backend="compile",
                    backend_options={"warmup_batches": (1, 2)})
    assert policy.backend.describe()["cuda_graphs"]
    for batch in (1, 2, 1):
        images, texts = frames(batch), ["pick"] * batch
        np.testing.assert_allclose(policy.act_batch(images, texts),
                                   reference.act_batch(images, texts), atol=1e-3)
    # The backend's own output (on the device) must survive the next replay, which rewrites
    # the CUDA graph's static output memory.
    with torch.inference_mode():
        prompts = policy.prompt_embeddings(["pick"])
        first = policy.query(policy.preprocess(frames(1, seed=1)), prompts)
        snapshot = first.clone()
        policy.query(policy.preprocess(frames(1, seed=2)), prompts)
        torch.testing.assert_close(first, snapshot, rtol=0, atol=0)


def test_onnxruntime_cuda_execution_provider(tmp_path):
    _cuda()
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime without the CUDA execution provider")
    reference = Policy.from_config("cliprt-tiny", device="cuda", dtype=torch.float32)
    policy = Policy(reference.model, device="cuda", dtype=torch.float32, backend="onnx",
                    backend_options={"cache_dir": tmp_path})
    images, texts = frames(3), ["a", "b", "c"]
    np.testing.assert_allclose(policy.act_batch(images, texts),
                               reference.act_batch(images, texts), atol=1e-3)
