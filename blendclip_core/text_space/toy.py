"""The toy text space of `--data synthetic`: a fixed random unit vector per text, seeded.

Nearly orthogonal for dim >= 32, so an encoder trained into it must learn geometry -> class direction,
which is what zero-shot accuracy measures, at no CLIP cost. A class's vector is its name's vector
whatever the prompt templates: the toy triplets carry exactly those vectors as their text embeddings.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import torch

from blendclip_core.text_space.base import TextSpace, check_texts

SPEC = 'toy'


def class_embeddings(names: Sequence[str], dim: int, seed: int = 0) -> np.ndarray:
    """(K, dim) float32 unit vectors, a fixed function of each class name (crc32) and seed."""
    out = np.empty((len(names), dim), np.float32)
    for i, name in enumerate(names):
        v = np.random.default_rng([zlib.crc32(name.encode()), seed]).normal(size=dim)
        out[i] = v / np.linalg.norm(v)
    return out


class ToyTextSpace(TextSpace):
    """`class_embeddings` as a text space (spec 'toy'); dim is the encoder's, seed the toy sets' text_seed."""

    def __init__(self, dim: int, seed: int = 0) -> None:
        self._dim = int(dim)
        self.seed = int(seed)

    @property
    def spec(self) -> str:
        return SPEC

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def weights_id(self) -> str:
        return f'crc32-normal:seed{self.seed}'

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return torch.from_numpy(class_embeddings(check_texts(texts), self._dim, self.seed))

    def embed_classes(self, labels: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        return self.embed_texts(labels)
