"""Class embeddings precomputed elsewhere: the text space `file:<path.npz>`.

The file holds arrays 'names' and 'embeddings' (one row per class), and, when
`blendclip_core.synthetic.build --class-file` wrote it, the 'spec', 'weights_id' and 'templates' of the
space that computed them. Such a file stands for that space: its `spec` is the real one (what a model card
records), so training runs where the text model is not installed. Only those classes can be embedded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from blendclip_core.text_space.base import TextSpace, TextSpaceUnavailableError, check_texts

logger = logging.getLogger(__name__)

PREFIX = 'file:'


class PrecomputedTextSpace(TextSpace):
    """Class vectors read from a .npz (lazily: the constructor reads nothing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._data: dict | None = None

    def _load(self) -> dict:
        if self._data is None:
            try:
                with np.load(self.path, allow_pickle=False) as z:
                    names, emb = [str(n) for n in z['names']], z['embeddings'].astype(np.float32)
                    meta = {k: z[k] for k in ('spec', 'weights_id', 'templates') if k in z.files}
            except (OSError, KeyError, ValueError) as err:
                raise TextSpaceUnavailableError(f'cannot read class embeddings {self.path}: {err}') from err
            # Embedded as words, as every space is asked ('construction_vehicle' -> 'construction vehicle').
            lookup = {n.replace('_', ' '): e for n, e in zip(names, emb)}
            self._data = {'lookup': lookup, 'dim': emb.shape[1], 'spec': str(meta.get('spec', '')),
                          'weights_id': str(meta.get('weights_id', '')),
                          'templates': [str(t) for t in meta.get('templates', ())]}
        return self._data

    @property
    def spec(self) -> str:
        """The space that computed the file (recorded in it), else 'file:<path>'."""
        return self._load()['spec'] or f'{PREFIX}{self.path}'

    @property
    def dim(self) -> int:
        return int(self._load()['dim'])

    @property
    def weights_id(self) -> str:
        return self._load()['weights_id'] or f'{PREFIX}{self.path}'

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        raise TextSpaceUnavailableError(f'{self.path} holds class embeddings only, it cannot embed texts')

    def embed_classes(self, labels: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        """(V, dim) unit rows of the file for `labels`; ValueError naming the classes it lacks."""
        data = self._load()
        labels = check_texts(labels)
        missing = [n for n in labels if n not in data['lookup']]
        if missing:
            raise ValueError(f'text embeddings file lacks {missing}')
        if data['templates'] and list(templates) != data['templates']:
            logger.warning('%s was embedded with templates %s, not %s', self.path, data['templates'],
                           list(templates))
        emb = np.stack([data['lookup'][n] for n in labels]).astype(np.float32)
        return torch.from_numpy(emb / np.linalg.norm(emb, axis=1, keepdims=True))
