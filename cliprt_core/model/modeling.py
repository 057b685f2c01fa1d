"""
The CLIP-RT policy network: open_clip towers + discrete primitive scoring or CLIP-RT+ chunks.

What the outputs are trained on and turned into is the job of the heads (cliprt_core.heads); the
network only knows whether it has the CLIP-RT+ action decoder.
"""
from __future__ import annotations

import math

from cliprt_core.model.action_decoder import ActionDecoder, MLPResNetHead
from cliprt_core.model.backbone import build_backbone
from cliprt_core.model.configuration import CLIPRTConfig
import torch
from torch import nn
import torch.nn.functional as F

LOGIT_SCALE_MAX = math.log(100.0)


class CLIPRT(nn.Module):
    """
    CLIP-RT / CLIP-RT+.

    The per-query work is split so that text embeddings can be cached: ``encode_text`` runs once
    per instruction (or primitive phrase); ``predict_chunk`` / ``primitive_logits`` take the raw
    (unnormalised, projected) image and prompt embeddings.
    """

    def __init__(self, config: CLIPRTConfig) -> None:
        super().__init__()
        self.config = config
        backbone = build_backbone(config)
        self.clip = backbone.clip
        self.tokenize = backbone.tokenize
        self.image_size = backbone.image_size
        self.embed_dim = backbone.embed_dim
        self.decoder: ActionDecoder | None = None
        self.action_head: MLPResNetHead | None = None
        if config.head == 'chunk':  # CLIP-RT+: the network of the chunk head
            self.decoder = ActionDecoder(
                vocab_size=backbone.vocab_size, width=backbone.text_width,
                embed_dim=backbone.embed_dim, layers=config.decoder.layers,
                heads=config.decoder.heads, mlp_ratio=config.decoder.mlp_ratio,
                num_action_tokens=config.num_action_tokens, quick_gelu=backbone.quick_gelu)
            self.action_head = MLPResNetHead(
                config.action_dim * backbone.embed_dim, config.action_head.hidden_dim,
                config.action_dim, config.action_head.blocks)

    # --- towers -------------------------------------------------------------------------------
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """Preprocessed ``[B, 3, S, S]`` pixels -> raw image embeddings ``[B, D]``."""
        return self.clip.encode_image(pixels)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids ``[B, L]`` -> raw text embeddings ``[B, D]``."""
        return self.clip.encode_text(tokens)

    def tokenize_prompts(self, instructions: list[str]) -> torch.Tensor:
        """Instructions -> token ids of their CLIP-RT prompts."""
        return self.tokenize([self.config.prompt(text) for text in instructions])

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale

    def clamp_logit_scale(self) -> None:
        """Keep the learnable temperature in [0, ln 100] (called after each optimizer step)."""
        with torch.no_grad():
            self.clip.logit_scale.clamp_(0, LOGIT_SCALE_MAX)

    # --- heads --------------------------------------------------------------------------------
    @staticmethod
    def context(image_embedding: torch.Tensor, prompt_embedding: torch.Tensor) -> torch.Tensor:
        """CLIP-RT context: normalize(image + prompt) of the raw embeddings."""
        return F.normalize(image_embedding + prompt_embedding, dim=-1)

    def predict_chunk(self, image_embedding: torch.Tensor, prompt_embedding: torch.Tensor
                      ) -> torch.Tensor:
        """CLIP-RT+: raw embeddings ``[B, D]`` -> action chunk ``[B, chunk_size, action_dim]``."""
        if self.decoder is None or self.action_head is None:
            raise RuntimeError(f'model {self.config.name!r} has a discrete head, not a chunk '
                               'decoder')
        tokens = self.decoder(F.normalize(image_embedding, dim=-1),
                              F.normalize(prompt_embedding, dim=-1))
        batch = tokens.shape[0]
        steps = tokens.reshape(batch, self.config.chunk_size, -1)
        return self.action_head(steps)

    def primitive_logits(self, image_embedding: torch.Tensor, prompt_embedding: torch.Tensor,
                         primitive_embeddings: torch.Tensor) -> torch.Tensor:
        """Discrete CLIP-RT: cosine(context, primitive) ``[B, K]`` (unscaled, pre-sigmoid)."""
        context = self.context(image_embedding, prompt_embedding)
        return context @ F.normalize(primitive_embeddings, dim=-1).to(context.dtype).T

    def forward(self, pixels: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Full forward: chunk ``[B, T, A]`` (with the action decoder) or context ``[B, D]``."""
        image = self.encode_image(pixels)
        prompt = self.encode_text(tokens)
        if self.decoder is not None:
            return self.predict_chunk(image, prompt)
        return self.context(image, prompt)


def create_model(config: CLIPRTConfig) -> CLIPRT:
    """Build a CLIP-RT model with random weights (load a checkpoint for real weights)."""
    return CLIPRT(config)
