"""Typed configuration of a CLIP-RT model (discrete head or CLIP-RT+ action-chunk decoder)."""
from __future__ import annotations

from dataclasses import dataclass, field
import os
from pathlib import Path
from typing import Any, Literal

from cliprt_core.config import ConfigError, load_config
from cliprt_core.paths import config_names, resolve_config_file

#: One YAML per architecture, shipped inside the package (as open_clip ships its model configs).
MODEL_CONFIG_DIR = Path(__file__).resolve().parent / 'configs'
DEFAULT_PROMPT = "what motion should the robot arm perform to complete the instruction '{}'?"


@dataclass(frozen=True)
class DecoderConfig:
    """The CLIP-RT+ action decoder: a second, bidirectional text transformer."""

    layers: int = 24
    heads: int = 16
    mlp_ratio: float = 4.0


@dataclass(frozen=True)
class HeadConfig:
    """The MLP-ResNet action head on top of the decoder's chunk tokens."""

    hidden_dim: int = 1024
    blocks: int = 2


@dataclass(frozen=True)
class CLIPRTConfig:
    """
    Architecture of a CLIP-RT policy.

    ``backbone`` names an open_clip architecture; ``backbone_config`` (an open_clip model config
    dict with ``embed_dim``, ``vision_cfg``, ``text_cfg``, ``quick_gelu``) overrides it for custom
    models such as the tiny test model. ``head='chunk'`` is CLIP-RT+ (continuous 8x7 chunks);
    ``head='discrete'`` scores language motion primitives of ``vocabulary``.
    """

    name: str = 'cliprt'
    backbone: str = 'ViT-H-14-378-quickgelu'
    backbone_config: dict[str, Any] | None = None
    head: Literal['chunk', 'discrete'] = 'chunk'
    chunk_size: int = 8
    action_dim: int = 7
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    action_head: HeadConfig = field(default_factory=HeadConfig)
    vocabulary: str = 'pretrain_50'
    prompt_template: str = DEFAULT_PROMPT

    def __post_init__(self) -> None:
        if self.chunk_size < 1 or self.action_dim < 1:
            raise ConfigError('chunk_size and action_dim must be >= 1')
        if '{}' not in self.prompt_template:
            raise ConfigError("prompt_template must contain '{}' for the instruction")

    @property
    def num_action_tokens(self) -> int:
        return self.chunk_size * self.action_dim

    def prompt(self, instruction: str) -> str:
        """Return the text prompt for an instruction (lower-cased, as in CLIP-RT)."""
        return self.prompt_template.format(instruction.strip().lower())


def list_model_configs() -> list[str]:
    """Names of the model configs shipped with cliprt (``cliprt-tiny``, ...), sorted."""
    return config_names(MODEL_CONFIG_DIR)


def model_config_path(name_or_path: str | os.PathLike) -> Path:
    """Return the YAML of a shipped model config name, or ``name_or_path`` if it is a file."""
    return resolve_config_file('model', name_or_path, MODEL_CONFIG_DIR)


def load_model_config(name_or_path: str | os.PathLike, overrides: list[str] | None = None
                      ) -> CLIPRTConfig:
    """Load a model config by name (one of :func:`list_model_configs`) or path."""
    return load_config(CLIPRTConfig, model_config_path(name_or_path), overrides or [])
