"""CLIP-RT+ action decoder (a second text transformer over 58 tokens) and MLP-ResNet head."""
from __future__ import annotations

from cliprt_core.model.torchvision_compat import import_open_clip
import torch
from torch import nn


class ActionDecoder(nn.Module):
    """
    A second text transformer without causal mask that turns [image, prompt] into chunk tokens.

    Input tokens: [normalised image embedding, normalised prompt embedding, N x embedding of token
    id 0] + a learned positional embedding; output: the N action tokens after ln_final and the
    projection, ``[B, N, embed_dim]`` (N = chunk_size * action_dim).
    """

    def __init__(self, *, vocab_size: int, width: int, embed_dim: int, layers: int, heads: int,
                 mlp_ratio: float, num_action_tokens: int, quick_gelu: bool) -> None:
        super().__init__()
        transformer = import_open_clip().transformer
        if width != embed_dim:
            raise ValueError(f'the action decoder needs text width == embed_dim '
                             f'(got {width} and {embed_dim})')
        self.num_action_tokens = num_action_tokens
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(num_action_tokens + 2, width))
        act_layer = transformer.QuickGELU if quick_gelu else nn.GELU
        self.transformer = transformer.Transformer(width, layers, heads, mlp_ratio,
                                                   act_layer=act_layer)
        self.ln_final = transformer.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        self._init_parameters(width, layers)

    def _init_parameters(self, width: int, layers: int) -> None:
        # open_clip's text-tower initialisation
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        proj_std = (width ** -0.5) * ((2 * layers) ** -0.5)
        attn_std = width ** -0.5
        fc_std = (2 * width) ** -0.5
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=width ** -0.5)

    def forward(self, image_embedding: torch.Tensor,
                prompt_embedding: torch.Tensor) -> torch.Tensor:
        """Normalised ``[B, D]`` embeddings -> action tokens ``[B, N, D]``."""
        batch = image_embedding.shape[0]
        pad = self.token_embedding.weight[0].to(image_embedding.dtype)
        pad = pad.expand(batch, self.num_action_tokens, pad.shape[-1])
        x = torch.cat([image_embedding[:, None], prompt_embedding[:, None], pad], dim=1)
        x = x + self.positional_embedding.to(x.dtype)
        x = self.transformer(x)
        x = self.ln_final(x)
        x = x @ self.text_projection
        return x[:, 2:]


class ResidualMLPBlock(nn.Module):
    """Pre-LN residual block: x + ReLU(Linear(LayerNorm(x)))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ffn(x)


class MLPResNetHead(nn.Module):
    """LayerNorm -> Linear -> ReLU -> residual blocks -> LayerNorm -> Linear, per chunk step."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, blocks: int) -> None:
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(in_dim)
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.relu = nn.ReLU()
        self.mlp_resnet_blocks = nn.ModuleList(ResidualMLPBlock(hidden_dim) for _ in range(blocks))
        self.layer_norm2 = nn.LayerNorm(hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.fc1(self.layer_norm1(x)))
        for block in self.mlp_resnet_blocks:
            x = block(x)
        return self.fc2(self.layer_norm2(x))
