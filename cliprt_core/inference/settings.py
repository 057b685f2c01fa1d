"""
``PolicySettings``: which policy to serve and how - the one definition every entry point uses.

``cliprt-eval`` flags, the ``policy_node`` parameters, the launch arguments and the evaluation
config all derive from these fields (:func:`cliprt_core.config.leaves`); :func:`build_policy`
(``cliprt_core.inference.factory``) turns them into a :class:`~cliprt_core.inference.Policy`.
Torch-free on purpose: env workers and launch files import it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cliprt_core.config import setting

#: Inference backends (``cliprt_core.inference.backends``), by name.
Backend = Literal['torch', 'compile', 'onnx', 'tensorrt']
#: Model dtypes by name; ``auto`` is bf16 (fp16 where bf16 is unsupported) on GPU, fp32 on CPU.
DType = Literal['auto', 'fp32', 'bf16', 'fp16']
#: The model config whose random weights run when no checkpoint is given.
DEFAULT_RANDOM_MODEL = 'cliprt-tiny'


@dataclass(frozen=True)
class PolicySettings:
    """The policy to load: a checkpoint (or random weights of a model config), device, backend."""

    checkpoint: str = setting('', 'cliprt checkpoint path, official CLIP-RT file or Hugging Face '
                                  'hub id; empty = random weights of model_config (smoke runs)')
    model_config: str = setting('', 'model config name or YAML path: the architecture of the '
                                    'random weights (empty = cliprt-tiny) or of an official '
                                    'checkpoint (empty = the published ViT-H-14-378 one); cliprt '
                                    'checkpoints carry their own')
    device: str = setting('', 'torch device: cpu, cuda, cuda:1; empty = cuda if available')
    dtype: DType = setting('auto', 'model dtype: auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16 '
                                   '| fp16; backend onnx needs fp32 or fp16')
    backend: Backend = setting('torch', 'inference backend: torch | compile | onnx | tensorrt')
    weights_seed: int = setting(0, 'seed of the random weights (only without a checkpoint)')

    @property
    def random_model(self) -> str:
        """Return the model config whose random weights run without a checkpoint."""
        return self.model_config or DEFAULT_RANDOM_MODEL

    def describe(self) -> str:
        """``checkpoint`` or ``random:<model config>`` (what results record as the policy)."""
        return self.checkpoint or f'random:{self.random_model}'
