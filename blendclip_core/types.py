"""The data that flows between cropping, the encoder and the classifier.

`crop_objects(points, boxes) -> ObjectBatch`, `encoder(ObjectBatch) -> embeddings`,
`classifier(embeddings) -> Predictions`: the node, the offline bag labeller and evaluation all go
through these three calls, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class ObjectStatus(IntEnum):
    """Why an object got (or did not get) a label. Values are mirrored in msg/LabelledObject.msg."""

    OK = 0
    NO_POINTS = 1  # too few points inside the box (below min_points)
    # non-finite pose, zero/negative size, zero/non-finite quaternion, larger than MAX_BOX_SIZE or
    # MAX_BOX_VOLUME (geometry), or a valid box after the frame's first MAX_FRAME_OBJECTS (preprocess)
    INVALID_BOX = 2
    BELOW_THRESHOLD = 3  # classified, but the best score is under the score threshold


@dataclass
class ObjectBatch:
    """Points of B objects, packed: object i is points[offsets[i]:offsets[i + 1]].

    Packed rather than padded so that a frame with 3-point and 8,000-point objects costs what its
    points cost; the encoder pads on its own device. Points are float32 (T, C) with xyz first,
    centred per object (see blendclip_core.preprocess).
    """

    points: np.ndarray
    offsets: np.ndarray

    def __post_init__(self) -> None:
        self.points = np.ascontiguousarray(self.points, dtype=np.float32)
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        if self.points.ndim != 2 or self.points.shape[1] < 3:
            raise ValueError(f'points must be (T, C>=3), got {self.points.shape}')
        if self.offsets.ndim != 1 or self.offsets[0] != 0 or self.offsets[-1] != len(self.points):
            raise ValueError('offsets must start at 0 and end at len(points)')

    @classmethod
    def from_list(cls, objects: list[np.ndarray], channels: int = 3) -> ObjectBatch:
        counts = [len(o) for o in objects]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        pts = (np.concatenate([np.asarray(o, np.float32)[:, :channels] for o in objects])
               if objects and offsets[-1] else np.zeros((0, channels), np.float32))
        return cls(pts, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def object(self, i: int) -> np.ndarray:
        return self.points[self.offsets[i]:self.offsets[i + 1]]


@dataclass
class Predictions:
    """Top-k labels for B objects.

    indices: (B, k) into `vocabulary` (-1 where the object was not labelled).
    scores: (B, k) calibrated probabilities over the vocabulary (NaN where not labelled).
    num_points: (B,) points the encoder saw per object.
    status: (B,) ObjectStatus values.
    vocabulary / vocabulary_version: what the indices refer to; the version is a content hash.
    """

    indices: np.ndarray
    scores: np.ndarray
    num_points: np.ndarray
    status: np.ndarray
    vocabulary: tuple[str, ...]
    vocabulary_version: str

    def __len__(self) -> int:
        return len(self.status)

    def top_labels(self, i: int) -> list[tuple[str, float]]:
        return [(self.vocabulary[j], float(s)) for j, s in zip(self.indices[i], self.scores[i])
                if j >= 0]

    def label(self, i: int) -> str:
        """Best label, '' for objects without one."""
        j = self.indices[i, 0] if self.indices.shape[1] else -1
        return self.vocabulary[j] if j >= 0 else ''
