"""Language motion primitives: vocabularies (JSON data), action labeling and execution."""
from .execution import primitive_actions
from .labeling import label_action, label_actions, LABEL_AXES, LabelingConfig, primitive_to_action
from .vocabulary import (available_vocabularies, GRIPPER_AXIS, GRIPPER_CLOSE, GRIPPER_OPEN,
                         load_vocabulary, Primitive, Vocabulary, vocabulary_from_dict,
                         VocabularyError)

__all__ = [
    'GRIPPER_AXIS', 'GRIPPER_CLOSE', 'GRIPPER_OPEN', 'LABEL_AXES', 'LabelingConfig', 'Primitive',
    'Vocabulary', 'VocabularyError', 'available_vocabularies', 'label_action', 'label_actions',
    'load_vocabulary', 'primitive_actions', 'primitive_to_action', 'vocabulary_from_dict',
]
