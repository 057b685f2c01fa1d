"""The settings of teleoperation (``TeleopConfig``) and of its recorder (``RecorderConfig``)."""
from __future__ import annotations

from dataclasses import dataclass
import importlib

from cliprt_core.config import ConfigError, setting

__all__ = ['RecorderConfig', 'TeleopConfig', 'load_translator']


@dataclass(frozen=True)
class TeleopConfig:
    """Vocabulary, acceptance thresholds, translator plug-in and chunk shaping of teleop."""

    vocabulary: str = setting('pretrain_50', 'active primitive vocabulary: pretrain_50 | '
                              'finetune_58 | a vocabulary JSON path')
    text_similarity: bool = setting(True, 'map commands the parser cannot read with the CLIP '
                                    'text encoder (of checkpoint / model_config)')
    min_similarity: float = setting(0.9, 'cosine a command needs to its best phrase to be '
                                    'executed (text similarity)')
    min_margin: float = setting(0.02, 'cosine lead the best phrase needs over the runner-up '
                                '(else the command is ambiguous)')
    top_k: int = setting(3, 'candidates reported with a refused command')
    translator: str = setting('', "'module:factory' returning a Translator (e.g. an LLM client; "
                              'none is bundled); empty = none')
    max_action: float = setting(1.0, 'largest LIBERO action per step (1.0 = 5 cm / 0.5 rad); '
                                'longer primitives are split into equal steps')
    gripper_steps: int = setting(10, 'control steps an open / close primitive lasts')
    metres_per_unit: float = setting(0.05, 'end-effector travel per step of action 1.0 on x/y/z '
                                     "(the arm's real response; LIBERO's nominal scale is "
                                     '0.05, its OSC controller moves ~0.013)')
    radians_per_unit: float = setting(0.5, 'rotation per step of action 1.0 on roll/pitch/yaw '
                                      "(LIBERO's nominal scale is 0.5)")

    def __post_init__(self) -> None:
        """Reject values that cannot work."""
        if not 0 < self.max_action <= 1.0:
            raise ConfigError(f'max_action must be in (0, 1], got {self.max_action}')
        if not (self.metres_per_unit > 0 and self.radians_per_unit > 0):
            raise ConfigError('metres_per_unit and radians_per_unit must be > 0')
        if self.gripper_steps < 1:
            raise ConfigError(f'gripper_steps must be >= 1, got {self.gripper_steps}')
        if self.top_k < 1:
            raise ConfigError(f'top_k must be >= 1, got {self.top_k}')
        if not -1.0 <= self.min_similarity <= 1.0:
            raise ConfigError(f'min_similarity must be a cosine in [-1, 1], got '
                              f'{self.min_similarity}')
        if self.min_margin < 0:
            raise ConfigError(f'min_margin must be >= 0, got {self.min_margin}')


def load_translator(spec: str):
    """Return ``factory()`` of ``'package.module:factory'`` (ConfigError if it cannot)."""
    module_name, sep, name = spec.partition(':')
    if not sep or not module_name or not name:
        raise ConfigError(f"translator {spec!r}: expected 'package.module:factory'")
    try:
        factory = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f'translator {spec!r} cannot be loaded: {exc}') from None
    translator = factory()
    if not callable(getattr(translator, 'translate', None)):
        raise ConfigError(f'translator {spec!r}: {type(translator).__name__} has no '
                          f'translate(command, vocabulary) method')
    return translator


@dataclass(frozen=True)
class RecorderConfig:
    """Where and what the recorder records."""

    output_dir: str = setting('recordings', 'folder of the task files '
                              '({instruction}_demo.hdf5)')
    instruction: str = setting('', 'task instruction of the episodes; empty = the latest '
                               'message on the instruction topic')
    wrist: bool = setting(True, 'record the wrist camera (wrist/image_raw): steps wait for a '
                          'wrist frame')
    suite: str = setting('', 'LIBERO suite the episodes run in (for replay and '
                         'diversification); empty = a real robot')
    task_id: int = setting(-1, 'LIBERO task id of the episodes (-1 = unknown)')
    init_state: int = setting(-1, 'LIBERO init state the episodes start from (-1 = unknown)')
    max_episode_steps: int = setting(0, 'save and stop an episode after this many steps; 0 = '
                                     'no limit')
    max_observation_age: float = setting(1.0, 'seconds; an action that arrives when the latest '
                                         'observation is older is not recorded (counted)')
