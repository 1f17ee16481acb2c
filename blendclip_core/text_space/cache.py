"""Text embeddings computed once and reused: vocabulary files on disk and a portable text cache.

Two layers, both keyed by the text space (spec + weights id) so that vectors from different weights
never mix:
- `build_zero_shot_classifier(space, labels, templates, cache_dir)`: one small .npz per (space,
  templates, label) holding the label's class vector. A vocabulary change re-embeds only new labels.
- `TextEmbeddingCache`: exact text -> vector for one space, saved as one .npz. A machine that cannot
  run the text model (the GPU trainer cannot load MiniLM) serves from it through `CachedTextSpace`,
  which loads the real space only for misses, and only if given a fallback.
Only numpy and torch are imported here, so the cache works wherever training runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from blendclip_core.atomic import atomic_write
from blendclip_core.text_space.base import (
    TextEmbeddingCacheMiss,
    TextSpace,
    TextSpaceError,
    check_texts,
    normalise,
)

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1


class TextEmbeddingCache:
    """Embeddings of exact texts in one text space; answers without loading any model."""

    def __init__(self, spec: str, weights_id: str, dim: int,
                 entries: dict[str, np.ndarray] | None = None) -> None:
        self.spec = spec
        self.weights_id = weights_id
        self.dim = int(dim)
        self._entries: dict[str, np.ndarray] = {}
        if entries:
            self.add(list(entries), np.stack(list(entries.values())))

    @property
    def cache_key(self) -> str:
        return f'{self.spec}|{self.weights_id}'

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, text: str) -> bool:
        return text in self._entries

    @property
    def texts(self) -> list[str]:
        return list(self._entries)

    def missing(self, texts: Sequence[str]) -> list[str]:
        """Texts not in the cache, unique, in first-seen order."""
        return list(dict.fromkeys(t for t in check_texts(texts) if t not in self._entries))

    def lookup(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, dim) embeddings of `texts`; raises TextEmbeddingCacheMiss naming what is missing."""
        texts = check_texts(texts)
        miss = self.missing(texts)
        if miss:
            shown = ', '.join(repr(t) for t in miss[:5]) + (' ...' if len(miss) > 5 else '')
            raise TextEmbeddingCacheMiss(
                f'{len(miss)} text(s) not in the text-embedding cache of {self.spec} ({self.weights_id}): '
                f'{shown}. Precompute them where the text space loads (TextEmbeddingCache.from_space) '
                'or give CachedTextSpace a fallback.')
        if not texts:
            return torch.zeros(0, self.dim)
        return torch.from_numpy(np.stack([self._entries[t] for t in texts]))

    def add(self, texts: Sequence[str], embeddings) -> None:
        texts = check_texts(texts)
        emb = normalise(torch.as_tensor(np.asarray(embeddings, dtype=np.float32))).numpy()
        if emb.shape != (len(texts), self.dim):
            raise ValueError(f'expected embeddings of shape ({len(texts)}, {self.dim}), got {emb.shape}')
        for text, vec in zip(texts, emb):
            self._entries[text] = vec

    @classmethod
    def from_space(cls, space: TextSpace, texts: Sequence[str], batch: int = 4096) -> TextEmbeddingCache:
        """Embed `texts` (deduplicated) with a loaded-or-loadable space into a new cache."""
        cache = cls(space.spec, space.weights_id, space.dim)
        cache.fill(space, texts, batch)
        return cache

    def fill(self, space: TextSpace, texts: Sequence[str], batch: int = 4096) -> int:
        """Embed the missing ones of `texts` with `space`; returns how many were added."""
        _check_same_space(self, space)
        miss = self.missing(texts)
        for i in range(0, len(miss), batch):
            self.add(miss[i:i + batch], space.embed_texts(miss[i:i + batch]))
        return len(miss)

    def save(self, path: str | Path) -> Path:
        """One .npz (no pickles), written atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        texts = self.texts
        emb = np.stack([self._entries[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)
        meta = json.dumps({'format': CACHE_FORMAT, 'spec': self.spec, 'weights_id': self.weights_id,
                           'dim': self.dim})
        _atomic_savez(path, meta=np.array(meta), texts=np.array(texts, dtype=str), embeddings=emb)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TextEmbeddingCache:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data['meta']))
                texts = [str(t) for t in data['texts']]
                emb = data['embeddings'].astype(np.float32)
        except (OSError, KeyError, ValueError) as err:
            raise TextSpaceError(f'cannot read text-embedding cache {path}: {err}') from err
        if meta.get('format') != CACHE_FORMAT:
            raise TextSpaceError(f'{path}: cache format {meta.get("format")}, expected {CACHE_FORMAT}')
        cache = cls(meta['spec'], meta['weights_id'], meta['dim'])
        if texts:
            cache.add(texts, emb)
        return cache


class CachedTextSpace(TextSpace):
    """A text space served from a `TextEmbeddingCache`; the real space is built only for misses.

    fallback: a TextSpace, or a zero-argument callable returning one (e.g.
    `lambda: create_text_space(spec)`), or None for cache-only use (misses raise
    TextEmbeddingCacheMiss). New embeddings from the fallback are added to the cache in memory.
    """

    def __init__(self, spec: str, cache: TextEmbeddingCache,
                 fallback: TextSpace | Callable[[], TextSpace] | None = None) -> None:
        if cache.spec != spec:
            raise TextSpaceError(f'cache holds embeddings of {cache.spec!r}, not {spec!r}')
        self._spec = spec
        self.cache = cache
        self._fallback = fallback
        self.loads = 0

    @property
    def spec(self) -> str:
        return self._spec

    @property
    def dim(self) -> int:
        return self.cache.dim

    @property
    def weights_id(self) -> str:
        return self.cache.weights_id

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        texts = check_texts(texts)
        miss = self.cache.missing(texts)
        if miss and self._fallback is not None:
            space = self._fallback_space()
            self.cache.add(miss, space.embed_texts(miss))
            logger.info('embedded %d text(s) missing from the cache with %s', len(miss), space.spec)
        return self.cache.lookup(texts)

    def _fallback_space(self) -> TextSpace:
        if not isinstance(self._fallback, TextSpace):
            self._fallback = self._fallback()
            self.loads += 1
        _check_same_space(self.cache, self._fallback)
        return self._fallback


def build_zero_shot_classifier(space: TextSpace, labels: Sequence[str], templates: Sequence[str],
                               cache_dir: str | Path | None = None) -> torch.Tensor:
    """(V, D) class embeddings, the zero-shot head: `space.embed_classes` (per label the normalised mean
    of its normalised prompt embeddings, as open_clip's build_zero_shot_classifier).

    The one way the trainer, evaluation, the node and the offline tools build it. With `cache_dir`, each
    label's vector is read from / written to a small .npz keyed by the text space (spec and weights), the
    templates and the label, so the model loads only for new labels.
    """
    labels, templates = check_texts(labels), check_texts(templates)
    if not templates:
        raise ValueError('at least one prompt template is needed')
    if not labels:
        return torch.zeros(0, space.dim)
    if cache_dir is None:
        return space.embed_classes(labels, templates)
    cache_dir = Path(cache_dir)
    files = [cache_dir / f'{_label_key(space.cache_key, templates, lab)}.npz' for lab in labels]
    out = [_read_label_file(f, space.dim) for f in files]
    todo = [i for i, vec in enumerate(out) if vec is None]
    if todo:
        means = space.embed_classes([labels[i] for i in todo], templates)
        for row, i in enumerate(todo):
            out[i] = means[row]
            _write_label_file(files[i], means[row], space, templates, labels[i])
    return torch.stack(out)


def _label_key(space_key: str, templates: Sequence[str], label: str) -> str:
    payload = json.dumps([space_key, list(templates), label], ensure_ascii=False)
    return hashlib.sha256(payload.encode('utf-8')).hexdigest()[:24]


def _read_label_file(path: Path, dim: int) -> torch.Tensor | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            vec = data['embedding'].astype(np.float32)
    except (OSError, KeyError, ValueError) as err:
        logger.warning('ignoring unreadable vocabulary cache file %s: %s', path, err)
        return None
    if vec.shape != (dim,) or not np.isfinite(vec).all():
        logger.warning('ignoring vocabulary cache file %s with shape %s', path, vec.shape)
        return None
    return torch.from_numpy(vec)


def _write_label_file(path: Path, vec: torch.Tensor, space: TextSpace, templates, label: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_savez(path, embedding=vec.numpy().astype(np.float32), spec=np.array(space.spec),
                      weights_id=np.array(space.weights_id), templates=np.array(list(templates), dtype=str),
                      label=np.array(label))
    except OSError as err:  # a read-only cache is a slower start, not a failure
        logger.warning('cannot write vocabulary cache file %s: %s', path, err)


def _atomic_savez(path: Path, **arrays) -> None:
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def _check_same_space(cache: TextEmbeddingCache, space: TextSpace) -> None:
    if space.cache_key != cache.cache_key:
        raise TextSpaceError(f'text space {space.cache_key!r} cannot extend a cache of {cache.cache_key!r}')
