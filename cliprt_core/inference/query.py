"""
The per-query graph: preprocessed pixels + cached prompt embeddings -> the head's output.

This is what every inference backend runs (eager torch, ``torch.compile``, ONNX Runtime,
TensorRT): one image encode plus the head. Text embeddings stay outside the graph so a new
instruction costs one text encode and nothing is re-exported.
"""
from __future__ import annotations

from cliprt_core.heads import Head
from cliprt_core.model.modeling import CLIPRT
import torch
from torch import nn


class QueryGraph(nn.Module):
    """
    ``(pixels [B,3,S,S], prompt_embeddings [B,D]) -> [B, *head.output_shape]``.

    ``text_embeddings`` are the raw embeddings of the head's ``query_texts`` (the discrete
    head's primitive phrases), computed once and kept as a buffer; the output is the head's
    ``query`` (a chunk ``[B,T,A]``, or primitive scores ``[B,K]``).
    """

    def __init__(self, model: CLIPRT, head: Head,
                 text_embeddings: torch.Tensor | None = None) -> None:
        super().__init__()
        if head.query_texts and text_embeddings is None:
            raise ValueError(f'the {head.name} head needs the embeddings of its query texts')
        self.model = model
        self.head = head
        self.register_buffer('text_embeddings', text_embeddings, persistent=False)

    def forward(self, pixels: torch.Tensor, prompt_embeddings: torch.Tensor) -> torch.Tensor:
        image = self.model.encode_image(pixels)
        return self.head.query(self.model, image, prompt_embeddings, self.text_embeddings)
