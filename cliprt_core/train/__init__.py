"""Training CLIP-RT on demonstrations: config, losses, optimizer, distributed helpers, the loop."""
from cliprt_core.heads import masked_l1, sigmoid_contrastive  # the heads' losses
from cliprt_core.train.config import (load_train_config, LogConfig, OptimConfig, TrainConfig,
                                      TrainSection)
from cliprt_core.train.trainer import Trainer

__all__ = ['LogConfig', 'OptimConfig', 'TrainConfig', 'TrainSection', 'Trainer',
           'load_train_config', 'masked_l1', 'sigmoid_contrastive']
