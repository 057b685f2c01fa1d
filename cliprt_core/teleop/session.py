"""
One teleoperation session: command text in, the decision and the LIBERO actions to run out.

Holds the mapping (:class:`~cliprt_core.teleop.CommandMapper`) and the current gripper command
(updated by gripper primitives and by :meth:`TeleopSession.observe_gripper`, e.g. from the
executor's ``gripper_command`` topic), so movement steps keep the gripper where it is.
"""
from __future__ import annotations

from dataclasses import replace

from cliprt_core.actions import LabelingConfig, load_vocabulary, VocabularyError
from cliprt_core.actions.execution import primitive_actions
from cliprt_core.teleop.mapping import CommandMapper, Decision, TextSimilarity
from cliprt_core.teleop.settings import load_translator, TeleopConfig
import numpy as np

__all__ = ['TeleopSession', 'build_mapper']


def build_mapper(config: TeleopConfig, policy=None) -> CommandMapper:
    """
    Return the mapper of ``config``; ``policy`` supplies the CLIP text encoder.

    Without a policy (or with ``text_similarity`` off) only the parser and the translator map.
    """
    vocabulary = load_vocabulary(config.vocabulary)
    similarity = None
    if config.text_similarity and policy is not None:
        similarity = TextSimilarity.from_policy(policy, vocabulary.phrases)
    translator = load_translator(config.translator) if config.translator else None
    return CommandMapper(vocabulary, similarity, translator, config.min_similarity,
                         config.min_margin, config.top_k)


class TeleopSession:
    """Map commands and shape accepted primitives into ``(n, 7)`` LIBERO action chunks."""

    def __init__(self, mapper: CommandMapper, config: TeleopConfig,
                 gripper: float = -1.0) -> None:
        self.mapper = mapper
        self.config = config
        self.gripper = float(gripper)
        self.scales = LabelingConfig(position_scale=config.metres_per_unit,
                                     rotation_scale=config.radians_per_unit)

    @property
    def vocabulary(self):
        return self.mapper.vocabulary

    def observe_gripper(self, command: float) -> None:
        """Track a gripper command executed by someone else (-1 open / +1 close by sign)."""
        if np.isfinite(command) and command != 0:
            self.gripper = 1.0 if command > 0 else -1.0

    def handle(self, command: str) -> tuple[Decision, np.ndarray | None]:
        """Return the decision and, if accepted, the actions to execute (gripper updated)."""
        decision = self.mapper.decide(command)
        if not decision.accepted:
            return decision, None
        try:
            actions = primitive_actions(self.vocabulary, decision.index, self.gripper,
                                        self.config.max_action, self.config.gripper_steps,
                                        self.scales)
        except (ValueError, VocabularyError) as exc:
            return replace(decision, index=None, phrase=None,
                           reason=f'{decision.phrase!r} cannot be executed: {exc}'), None
        self.gripper = float(actions[-1, 6])
        return decision, actions
