"""The text-space interface: what the classifier, the trainer and the miners need from a text encoder.

A text space maps strings to L2-normalised vectors. Its `spec` says which space it is (what a model
card records), its `weights_id` which weights produced the vectors; both key every cache, so that
embeddings from different weights never mix.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch

from blendclip_core.vocabulary import prompts

logger = logging.getLogger(__name__)


class TextSpaceError(RuntimeError):
    """A text space that cannot be built or cannot answer."""


class TextSpaceUnavailableError(TextSpaceError):
    """The model or its weights are not available here (offline, not installed, missing file)."""


class UnknownTextSpaceError(TextSpaceError, ValueError):
    """A spec string that names no known text space."""


class TextEmbeddingCacheMiss(TextSpaceError, KeyError):
    """Texts that a cache-only text space cannot answer."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ''


class TextSpace(ABC):
    """Strings -> (N, dim) float32 L2-normalised CPU tensors.

    Implementations load their model lazily (constructors are pure), so a space whose answers all come
    from a cache never loads a model; `loads` counts real model loads.
    """

    loads: int = 0

    @property
    @abstractmethod
    def spec(self) -> str:
        """'<kind>:<details>', parseable by `create_text_space`."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Width of the embeddings."""

    @property
    @abstractmethod
    def weights_id(self) -> str:
        """Identifies the weights (pretrained tag, file hash, package version)."""

    @abstractmethod
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, dim) float32 L2-normalised embeddings on the CPU."""

    def embed_classes(self, labels: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        """(V, dim) class embeddings: per label the normalised mean of its normalised prompt embeddings
        (open_clip's zero-shot head). Spaces that hold class vectors themselves (toy, file) override it;
        callers go through `build_zero_shot_classifier`, which adds the on-disk cache."""
        texts = [p for label in labels for p in prompts(label, templates)]
        emb = self.embed_texts(texts).reshape(len(labels), len(templates), -1)
        return normalise(emb.mean(dim=1))

    @property
    def cache_key(self) -> str:
        return f'{self.spec}|{self.weights_id}'

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.spec!r})'


def check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError('texts must be a sequence of strings, not one string')
    texts = list(texts)
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise TypeError(f'texts must be strings, got {type(bad[0]).__name__}')
    return texts


def normalise(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1).cpu().contiguous()


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' -> cuda when available; a requested but unavailable cuda falls back to the CPU, logged."""
    device = str(device)
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    dev = torch.device(device)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        logger.warning('device %r requested but CUDA is not available: running on the CPU', device)
        return torch.device('cpu')
    return dev
