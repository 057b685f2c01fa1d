"""The CLIP-RT policy API: ``reset(instruction)``, ``act(image)``, ``act_batch(images, texts)``."""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

from cliprt_core.heads import DiscreteAction, Head, head_for
from cliprt_core.inference.embedding_cache import EmbeddingCache
from cliprt_core.inference.inputs import (NonFiniteActionError, PolicyInputError, validate_batch,
                                          validate_image, validate_instruction)
from cliprt_core.inference.query import QueryGraph
from cliprt_core.model.configuration import CLIPRTConfig, load_model_config
from cliprt_core.model.modeling import CLIPRT, create_model
from cliprt_core.model.preprocessing import preprocess_eval
import numpy as np
import torch

QueryFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs that support it (fp16 otherwise), fp32 on CPU."""
    if device.type == 'cuda':
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


class Policy:
    """
    Serve a CLIP-RT model: one image encode plus the head per query.

    :attr:`head` (``cliprt_core.heads``) says what a query returns: ``head.outputs_phrases`` is
    False for chunk models (``act`` returns a float32 ``(chunk, action_dim)`` array) and True for
    discrete ones (a :class:`DiscreteAction`); :attr:`action_dim` is the dimension of the actions
    either way. Instruction prompt embeddings are cached by string in a bounded LRU
    (``cache_size=0`` disables it: every query re-encodes, the naive baseline of
    ``cliprt-bench``); the head's fixed texts (the discrete head's primitive phrases) are encoded
    once at construction.
    ``backend`` (``torch | compile | onnx | tensorrt``, options in ``backend_options``) selects
    what runs the per-query graph; see :mod:`cliprt_core.inference.backends`.
    """

    def __init__(self, model: CLIPRT, device: str | torch.device | None = None,
                 dtype: torch.dtype | None = None, cache_size: int = 256,
                 backend: str = 'torch', backend_options: dict[str, Any] | None = None) -> None:
        self.device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
        self.dtype = dtype or default_dtype(self.device)
        self.model = model.eval().to(device=self.device, dtype=self.dtype)
        self.config: CLIPRTConfig = model.config
        self.cache = EmbeddingCache(cache_size)
        self.instruction: str | None = None
        self.head: Head = head_for(self.config)
        self.vocabulary = self.head.vocabulary  # the discrete head's primitives (else None)
        texts = self.head.query_texts
        text_embeddings = self._encode_texts(texts, prompt=False) if texts else None
        self.graph = QueryGraph(self.model, self.head, text_embeddings).eval()
        self.query: QueryFn = self.graph
        self.backend_name = 'torch'
        self.backend = None
        if backend != 'torch' or backend_options:
            self.use_backend(backend, **(backend_options or {}))

    def use_backend(self, name: str, **options: Any) -> None:
        """
        Run queries with backend ``name``.

        Run queries with backend ``name`` (``torch | compile | onnx | tensorrt``; see
        :mod:`cliprt_core.inference.backends` for options). Text encoding and the instruction
        cache stay in torch. Raises a ``BackendError`` subclass with a clear message.
        """
        from cliprt_core.inference.backends import create_backend

        self.backend = create_backend(name, self, **options)
        self.query = self.backend
        self.backend_name = self.backend.name

    @property
    def action_dim(self) -> int:
        """Dimension of the returned actions (a chunk's steps, or a primitive's vector)."""
        return self.head.action_dim

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path_or_id: str | os.PathLike, device: str | None = None,
                        dtype: torch.dtype | None = None,
                        model_config: CLIPRTConfig | str | None = None,
                        cache_size: int = 256, backend: str = 'torch',
                        backend_options: dict[str, Any] | None = None) -> 'Policy':
        """Load a cliprt checkpoint, an official CLIP-RT file, or a hub id."""
        from cliprt_core.checkpoint import load_model

        model, _ = load_model(path_or_id, model_config)
        return cls(model, device=device, dtype=dtype, cache_size=cache_size, backend=backend,
                   backend_options=backend_options)

    @classmethod
    def from_config(cls, config: CLIPRTConfig | str, device: str | None = None,
                    dtype: torch.dtype | None = None, seed: int = 0,
                    cache_size: int = 256, backend: str = 'torch',
                    backend_options: dict[str, Any] | None = None) -> 'Policy':
        """Return a policy with random weights (demos, tests, benchmarks) from a model config."""
        if isinstance(config, str):
            config = load_model_config(config)
        torch.manual_seed(seed)
        return cls(create_model(config), device=device, dtype=dtype, cache_size=cache_size,
                   backend=backend, backend_options=backend_options)

    # --- policy contract -------------------------------------------------------------------------
    def reset(self, instruction: str) -> None:
        """Start an episode for ``instruction`` (validated; its embedding is computed now)."""
        self.instruction = validate_instruction(instruction)
        self.prompt_embeddings([self.instruction])

    def act(self, image: np.ndarray) -> np.ndarray | DiscreteAction:
        """
        Answer one image for the current instruction.

        One query for the current instruction: a ``(chunk, action_dim)`` float32 chunk
        (CLIP-RT+) or a :class:`DiscreteAction` (``head.outputs_phrases``).
        """
        if self.instruction is None:
            raise PolicyInputError('no instruction: call reset(instruction) first')
        validate_image(image)
        return self.act_batch([image], [self.instruction])[0]

    def act_batch(self, images: Sequence[np.ndarray] | np.ndarray, instructions: Sequence[str]
                  ) -> np.ndarray | list[DiscreteAction]:
        """Many clients in one forward: ``(B, chunk, action_dim)`` or B discrete actions."""
        image_list, texts = validate_batch(images, instructions)
        with torch.inference_mode():
            pixels = self.preprocess(image_list)
            prompts = self.prompt_embeddings(texts)
            output = self.query(pixels, prompts).float().cpu().numpy()
        if not np.isfinite(output).all():
            raise NonFiniteActionError(
                f'the model produced non-finite outputs for {len(texts)} quer'
                f"{'y' if len(texts) == 1 else 'ies'}; the action was withheld")
        return self.head.decode(output)

    # --- building blocks -------------------------------------------------------------------------
    def preprocess(self, images: list[np.ndarray]) -> torch.Tensor:
        """uint8 HxWx3 images -> normalised model input on the device, in the model dtype."""
        size = self.model.image_size
        if all(img.shape == images[0].shape for img in images):
            batch = torch.from_numpy(np.stack(images)).to(self.device, non_blocking=True)
            pixels = preprocess_eval(batch, size)
        else:
            pixels = torch.cat([preprocess_eval(torch.from_numpy(img[None]).to(self.device), size)
                                for img in images])
        return pixels.to(self.dtype)

    def prompt_embeddings(self, instructions: list[str]) -> torch.Tensor:
        """Raw prompt embeddings ``[B, D]``, encoding only instructions not in the cache."""
        found: dict[str, torch.Tensor] = {}
        missing = []
        for text in dict.fromkeys(instructions):
            cached = self.cache.get(text)
            if cached is None:
                missing.append(text)
            else:
                found[text] = cached
        if missing:
            with torch.inference_mode():
                encoded = self._encode_texts(missing, prompt=True)
            for text, embedding in zip(missing, encoded):
                self.cache.put(text, embedding)
                found[text] = embedding
        return torch.stack([found[text] for text in instructions])

    def _encode_texts(self, texts: list[str], prompt: bool) -> torch.Tensor:
        tokens = self.model.tokenize_prompts(texts) if prompt else self.model.tokenize(texts)
        with torch.inference_mode():
            return self.model.encode_text(tokens.to(self.device))
