"""The per-query graph: preprocessed pixels + cached prompt embeddings -> model output.

This is what every inference backend runs (eager torch, ``torch.compile``, ONNX Runtime,
TensorRT): one image encode plus the head. Text embeddings stay outside the graph so a new
instruction costs one text encode and nothing is re-exported.
"""
from __future__ import annotations

import torch
from torch import nn

from cliprt_core.model.modeling import CLIPRT


class QueryGraph(nn.Module):
    """``(pixels [B,3,S,S], prompt_embeddings [B,D]) -> chunk [B,T,A]`` or scores ``[B,K]``.

    For the discrete head the primitive-phrase embeddings are a buffer (computed once) and the
    output is ``sigmoid(cosine(context, primitive))`` as in the authors' inference code.
    """

    def __init__(self, model: CLIPRT, primitive_embeddings: torch.Tensor | None = None) -> None:
        super().__init__()
        self.model = model
        self.is_chunk = model.config.head == "chunk"
        if not self.is_chunk and primitive_embeddings is None:
            raise ValueError("the discrete head needs the primitive embeddings")
        self.register_buffer("primitive_embeddings", primitive_embeddings, persistent=False)

    def forward(self, pixels: torch.Tensor, prompt_embeddings: torch.Tensor) -> torch.Tensor:
        image = self.model.encode_image(pixels)
        if self.is_chunk:
            return self.model.predict_chunk(image, prompt_embeddings)
        logits = self.model.primitive_logits(image, prompt_embeddings, self.primitive_embeddings)
        return torch.sigmoid(logits)
