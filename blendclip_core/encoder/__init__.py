"""PointBERT-style point encoder: objects' points -> CLIP-space embeddings (see docs/encoder.md)."""

from blendclip_core.encoder.config import EncoderConfig
from blendclip_core.encoder.factory import create_model, get_config, list_models
from blendclip_core.encoder.model import PointEncoder

__all__ = ['EncoderConfig', 'PointEncoder', 'create_model', 'get_config', 'list_models']
