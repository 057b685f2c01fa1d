"""The open_clip backbone (image and text towers) of a CLIP-RT model, built offline."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from cliprt_core.config import ConfigError
from cliprt_core.model.configuration import CLIPRTConfig
from cliprt_core.model.torchvision_compat import import_open_clip
import torch
from torch import nn


@dataclass
class Backbone:
    """An open_clip model with random weights plus its tokenizer and geometry."""

    clip: nn.Module
    tokenize: Callable[[list[str]], torch.Tensor]
    image_size: int
    embed_dim: int
    text_width: int
    vocab_size: int
    quick_gelu: bool


def build_backbone(config: CLIPRTConfig) -> Backbone:
    """
    Build the open_clip model named by ``config.backbone`` or described by ``backbone_config``.

    Weights are random: real weights come from a checkpoint (nothing is downloaded here).
    """
    open_clip = import_open_clip()
    if config.backbone_config is not None:
        model_cfg: dict[str, Any] = dict(config.backbone_config)
        if 'hf_model_name' in model_cfg.get('text_cfg', {}):
            raise ConfigError('backbone_config with a Hugging Face text tower is not supported')
        try:
            clip = open_clip.model.CLIP(**model_cfg)
        except TypeError as exc:
            raise ConfigError(f'invalid backbone_config for model {config.name!r}: {exc}') from exc
        context_length = int(model_cfg.get('text_cfg', {}).get('context_length', 77))
        tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=context_length)
    else:
        if open_clip.get_model_config(config.backbone) is None:
            raise ConfigError(
                f'unknown open_clip architecture {config.backbone!r}; '
                f'see open_clip.list_models() or give backbone_config')
        model_cfg = open_clip.get_model_config(config.backbone)
        clip = open_clip.create_model(config.backbone, pretrained=None,
                                      device=torch.get_default_device())
        tokenizer = open_clip.get_tokenizer(config.backbone)
    if not hasattr(clip, 'token_embedding'):
        raise ConfigError(f'{config.backbone!r}: only open_clip CLIP models with the built-in '
                          'text transformer are supported')
    image_size = clip.visual.image_size
    image_size = int(image_size[0] if isinstance(image_size, (tuple, list)) else image_size)
    return Backbone(
        clip=clip,
        tokenize=tokenizer,
        image_size=image_size,
        embed_dim=int(model_cfg['embed_dim']),
        text_width=int(clip.token_embedding.weight.shape[1]),
        vocab_size=int(clip.token_embedding.weight.shape[0]),
        quick_gelu=bool(model_cfg.get('quick_gelu', False)),
    )
