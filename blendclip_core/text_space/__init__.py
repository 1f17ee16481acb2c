"""Text spaces: the frozen embedding space the point encoder is trained into.

`TextSpace` is the one interface (spec, dim, embed_texts); `OpenClipSpace` is the production choice,
`MiniLMSpace` the offline space of the shipped default model, `CachedTextSpace` serves precomputed
embeddings without loading a model. `create_text_space(spec)` builds one from a model card's spec;
`embed_vocabulary` turns labels + prompt templates into the classifier's text embeddings.
"""

from blendclip_core.text_space.base import (
    TextEmbeddingCacheMiss,
    TextSpace,
    TextSpaceError,
    TextSpaceUnavailableError,
    UnknownTextSpaceError,
)
from blendclip_core.text_space.cache import CachedTextSpace, TextEmbeddingCache, embed_vocabulary
from blendclip_core.text_space.factory import create_text_space, parse_openclip_spec
from blendclip_core.text_space.minilm import MiniLMSpace
from blendclip_core.text_space.openclip import OpenClipSpace

__all__ = [
    'CachedTextSpace',
    'MiniLMSpace',
    'OpenClipSpace',
    'TextEmbeddingCache',
    'TextEmbeddingCacheMiss',
    'TextSpace',
    'TextSpaceError',
    'TextSpaceUnavailableError',
    'UnknownTextSpaceError',
    'create_text_space',
    'embed_vocabulary',
    'parse_openclip_spec',
]
