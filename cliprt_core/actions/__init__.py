"""Language motion primitives: vocabularies (JSON data), action labeling and execution."""
from .labeling import LABEL_AXES, LabelingConfig, label_action, label_actions, primitive_to_action
from .vocabulary import (
    GRIPPER_AXIS, GRIPPER_CLOSE, GRIPPER_OPEN, Primitive, Vocabulary, VocabularyError,
    available_vocabularies, load_vocabulary, vocabulary_from_dict,
)

__all__ = [
    "GRIPPER_AXIS", "GRIPPER_CLOSE", "GRIPPER_OPEN", "LABEL_AXES", "LabelingConfig", "Primitive",
    "Vocabulary", "VocabularyError", "available_vocabularies", "label_action", "label_actions",
    "load_vocabulary", "primitive_to_action", "vocabulary_from_dict",
]
