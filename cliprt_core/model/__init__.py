"""The CLIP-RT network: configuration, open_clip backbone, action decoder, preprocessing."""
from cliprt_core.model.configuration import CLIPRTConfig, list_model_configs, load_model_config
from cliprt_core.model.modeling import CLIPRT, create_model

__all__ = ['CLIPRT', 'CLIPRTConfig', 'create_model', 'list_model_configs', 'load_model_config']
