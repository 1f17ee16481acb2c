"""Text spaces: the frozen embedding space the point encoder is trained into.

`TextSpace` is the one interface (spec, dim, embed_texts, embed_classes); `OpenClipSpace` is the
production choice, `MiniLMSpace` the offline space of the shipped default model, `CachedTextSpace` serves
precomputed text embeddings without loading a model, `ToyTextSpace` ('toy') and `PrecomputedTextSpace`
('file:<path.npz>') serve class vectors for training. `create_text_space(spec)` builds any of them from a
spec (the registry: factory.TEXT_SPACES); `build_zero_shot_classifier` turns labels + prompt templates
into the class embeddings of the zero-shot head, for the trainer, evaluation, the node and the tools.
"""

from blendclip_core.text_space.base import (
    TextEmbeddingCacheMiss,
    TextSpace,
    TextSpaceError,
    TextSpaceUnavailableError,
    UnknownTextSpaceError,
)
from blendclip_core.text_space.cache import CachedTextSpace, TextEmbeddingCache, build_zero_shot_classifier
from blendclip_core.text_space.factory import create_text_space, parse_openclip_spec
from blendclip_core.text_space.minilm import MiniLMSpace
from blendclip_core.text_space.openclip import OpenClipSpace
from blendclip_core.text_space.precomputed import PrecomputedTextSpace
from blendclip_core.text_space.toy import ToyTextSpace

__all__ = [
    'CachedTextSpace',
    'MiniLMSpace',
    'OpenClipSpace',
    'PrecomputedTextSpace',
    'TextEmbeddingCache',
    'TextEmbeddingCacheMiss',
    'TextSpace',
    'TextSpaceError',
    'TextSpaceUnavailableError',
    'ToyTextSpace',
    'UnknownTextSpaceError',
    'build_zero_shot_classifier',
    'create_text_space',
    'parse_openclip_spec',
]
