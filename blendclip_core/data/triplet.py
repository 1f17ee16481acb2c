"""The training record: one object's points with what CLIP says about it.

Miners write Triplets into shards, CAD readers and generators yield them, the trainer consumes them.
Embeddings are the frozen CLIP's, precomputed (blendclip-embed); a Triplet without an image has
image_embedding None and only its text term is trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SYNTHETIC = 'synthetic'
REAL = 'real'


@dataclass
class Triplet:
    """points: (N, C) float32, xyz first (then e.g. intensity), in the object's box frame, centred.
    caption: free text describing the object (one caption; several -> several Triplets or join).
    label: fine category name ('vehicle.car', 'kick scooter'); label_coarse: benchmark class
        ('car') or '' when the object belongs to no benchmark class (void).
    domain: SYNTHETIC or REAL, what the curriculum mixes.
    image: encoded JPEG/PNG bytes of the camera crop, or None.
    text_embedding / image_embedding: (D,) float32 L2-normalised CLIP embeddings, or None until
        blendclip-embed has run.
    meta: tokens, distance, visibility, timestamp... (JSON-serialisable).
    """

    key: str
    points: np.ndarray
    caption: str
    label: str
    label_coarse: str = ''
    domain: str = REAL
    image: bytes | None = None
    text_embedding: np.ndarray | None = None
    image_embedding: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_void(self) -> bool:
        return not self.label_coarse
