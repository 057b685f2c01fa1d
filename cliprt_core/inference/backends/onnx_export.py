"""
Export the per-query graph to ONNX: ``(pixels, prompt_embeddings) -> chunk | scores``.

The batch dimension is dynamic; the cached instruction embeddings are an *input*, so a new
instruction costs one text encode and never a re-export. The graph is exported in the policy's
dtype (fp16/bf16 ONNX is what TensorRT 11's strongly typed networks need). We use the
TorchScript exporter (``dynamo=False``): it needs no extra package (the dynamo exporter needs
``onnxscript``) and honours ``dynamic_axes``. The example batch is 2 anyway: the dynamo exporter
silently fixes a batch dimension traced at 1.

The cliprt identity of the graph (weights sha256, model, head, dtype, I/O shapes) is stored in
the ONNX ``metadata_props`` so a stale file is detected before it is used.
"""
from __future__ import annotations

from contextlib import contextmanager
import json
import os
from pathlib import Path
import shutil
import tempfile
from typing import Any, Iterator
import warnings

from cliprt_core.inference.backends.artifacts import (graph_signature, output_name,
                                                      weights_fingerprint)
from cliprt_core.inference.backends.errors import BackendUnavailableError, EngineMismatchError
import torch

META_PREFIX = 'cliprt.'
DEFAULT_OPSET = 17  # LayerNormalization is a single op from opset 17 (TensorRT fuses it)
PROTOBUF_LIMIT = 2 ** 31 - 1


def import_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise BackendUnavailableError("ONNX export needs the 'onnx' package: pip install onnx"
                                      ) from exc
    return onnx


def graph_metadata(policy: Any, fingerprint: str | None = None) -> dict[str, Any]:
    """Return the identity written into (and checked against) an exported ONNX file."""
    meta = graph_signature(policy)
    meta['weights_sha256'] = fingerprint or weights_fingerprint(policy.graph)
    return meta


class _Float32Conv(torch.nn.Module):
    """
    A Conv2d computed in fp32 inside a bf16 graph.

    A Conv2d computed in fp32 inside a bf16 graph: ONNX has no bf16 Conv before opset 22,
    and the TorchScript exporter stops at opset 20 (the patch embedding is a tiny part).
    """

    def __init__(self, conv: torch.nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        bias = None if conv.bias is None else conv.bias.float()
        out = torch.nn.functional.conv2d(x.float(), conv.weight.float(), bias, conv.stride,
                                         conv.padding, conv.dilation, conv.groups)
        return out.to(x.dtype)


@contextmanager
def _bf16_convolutions_in_fp32(graph: torch.nn.Module, dtype: torch.dtype) -> Iterator[None]:
    swapped = []
    if dtype == torch.bfloat16:
        for name, module in list(graph.named_modules()):
            for child_name, child in list(module.named_children()):
                if type(child) is torch.nn.Conv2d:
                    setattr(module, child_name, _Float32Conv(child))
                    swapped.append((module, child_name, child))
    try:
        yield
    finally:
        for module, child_name, child in swapped:
            setattr(module, child_name, child)


@contextmanager
def _exportable() -> Iterator[None]:
    """
    Trace the plain ops of nn.MultiheadAttention.

    Trace the plain ops: nn.MultiheadAttention's inference fast path (taken under no_grad /
    inference_mode) is a fused op that has no ONNX symbolic.
    """
    mha = getattr(torch.backends, 'mha', None)
    previous = mha.get_fastpath_enabled() if mha is not None else None
    try:
        if mha is not None:
            mha.set_fastpath_enabled(False)
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        if mha is not None:
            mha.set_fastpath_enabled(previous)


def export_onnx(policy: Any, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET,
                example_batch: int = 2, external_data: bool | None = None,
                fingerprint: str | None = None) -> Path:
    """
    Export ``policy.graph`` to ``path`` (atomically) and return the path.

    ``external_data``: store the weights in ``<path>.data`` next to the model (required above
    the 2 GB protobuf limit, e.g. ViT-H CLIP-RT+; ``None`` decides automatically).
    """
    onnx = import_onnx()
    if example_batch < 2:
        raise ValueError('export with an example batch >= 2 (a batch of 1 can be baked in)')
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    meta = graph_metadata(policy, fingerprint)
    size = policy.model.image_size
    pixels = torch.randn(example_batch, 3, size, size, device=policy.device, dtype=policy.dtype)
    prompts = torch.randn(example_batch, policy.model.embed_dim, device=policy.device,
                          dtype=policy.dtype)
    out = output_name(policy)
    axes = {'pixels': {0: 'batch'}, 'prompt_embeddings': {0: 'batch'}, out: {0: 'batch'}}
    tmp = Path(tempfile.mkdtemp(prefix=f'.{target.name}.', dir=target.parent))
    try:
        raw = tmp / 'raw.onnx'
        with _exportable(), _bf16_convolutions_in_fp32(policy.graph, policy.dtype), \
                warnings.catch_warnings():
            warnings.simplefilter('ignore', DeprecationWarning)  # legacy exporter notice
            warnings.simplefilter('ignore', torch.jit.TracerWarning)  # open_clip's shape checks
            torch.onnx.export(policy.graph, (pixels, prompts), str(raw), dynamo=False,
                              input_names=['pixels', 'prompt_embeddings'], output_names=[out],
                              dynamic_axes=axes, opset_version=opset, do_constant_folding=True)
        model = onnx.load(str(raw), load_external_data=True)
        model.doc_string = f"cliprt per-query graph of {meta['model']} ({meta['head']} head)"
        del model.metadata_props[:]
        for key, value in meta.items():
            entry = model.metadata_props.add()
            entry.key = META_PREFIX + key
            entry.value = value if isinstance(value, str) else json.dumps(value)
        if external_data is None:
            weight_bytes = sum(p.numel() * p.element_size() for p in policy.graph.parameters())
            external_data = weight_bytes > PROTOBUF_LIMIT // 2
        data_name = target.name + '.data'
        staged = tmp / target.name
        if external_data:
            onnx.save_model(model, str(staged), save_as_external_data=True,
                            all_tensors_to_one_file=True, location=data_name, size_threshold=1024)
            os.replace(tmp / data_name, target.parent / data_name)
        else:
            onnx.save_model(model, str(staged))
        os.replace(staged, target)  # the model file last: its presence means "complete"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Return the ``cliprt.*`` metadata of an ONNX file (weights are not loaded)."""
    onnx = import_onnx()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises various errors on garbage
        raise EngineMismatchError(f'{path}: not a readable ONNX file ({exc})') from exc
    meta: dict[str, Any] = {}
    for entry in model.metadata_props:
        if entry.key.startswith(META_PREFIX):
            key = entry.key[len(META_PREFIX):]
            try:
                meta[key] = json.loads(entry.value)
            except json.JSONDecodeError:
                meta[key] = entry.value
    return meta


def onnx_input_dtype(path: str | os.PathLike) -> str:
    """Element type of the ``pixels`` input: 'fp32' | 'fp16' | 'bf16'."""
    onnx = import_onnx()
    model = onnx.load(str(path), load_external_data=False)
    names = {onnx.TensorProto.FLOAT: 'fp32', onnx.TensorProto.FLOAT16: 'fp16',
             onnx.TensorProto.BFLOAT16: 'bf16'}
    for value in model.graph.input:
        if value.name == 'pixels':
            return names.get(value.type.tensor_type.elem_type, 'unknown')
    raise EngineMismatchError(f"{path}: no 'pixels' input; not a cliprt per-query graph")
