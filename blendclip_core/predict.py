"""`predict`: labels for objects' xyz points in one call, for users outside ROS.

    labels, scores = predict([points_a, points_b], vocabulary=['car', 'pedestrian', 'tree'])

The model is a checkpoint (None: the shipped default) or an exported artefact folder
(blendclip-export); it is loaded once per (model, device) and kept, and a new vocabulary is embedded
on the classifier it already has. Objects are centred on their bounding-box midpoint, the box-less
stand-in for the box centre that cropping subtracts (pass centre=False for points already centred). A model
that takes the box size (the shipped default) gets `box_sizes` when given (the detector's l/w/h), else the
tight box of each object's points.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from blendclip_core.classifier import ZeroShotClassifier
from blendclip_core.normalization import append_box_size, box_size_input
from blendclip_core.types import ObjectBatch


class LabelledObjects(NamedTuple):
    labels: list[str]  # the best label of each object
    scores: np.ndarray  # (B,) its probability over the vocabulary


def predict(points: Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor,
            vocabulary: Sequence[str] | None = None, checkpoint: str | Path | None = None, *,
            lengths: Sequence[int] | np.ndarray | torch.Tensor | None = None, device: str = 'auto',
            centre: bool = True, classifier: str = 'points', depth_space: str | None = None,
            box_sizes: Sequence[Sequence[float]] | np.ndarray | None = None) -> LabelledObjects:
    """Best label and score per object.

    points: a list of (N_i, 3) arrays or tensors (N_i >= 1), or a padded (B, N, 3) batch with
        `lengths` (B,) (all N when None). xyz only, metres.
    vocabulary: labels (None: the model's default: the driving vocabulary, or an artefact's own).
    checkpoint: a checkpoint file, an exported artefact folder, or None for the shipped default model.
    device: 'auto' (GPU when present), 'cpu', 'cuda'; an artefact runs where it was exported for
        (AOTInductor) or on the CPU (ONNX) unless a device is named.
    classifier: 'points' (the model), 'depth_views' (OpenCLIP on depth renders, no checkpoint) or
        'both' (their mean logits); depth_space: the depth views' OpenCLIP spec (None: see
        blendclip_core.depth_views.load_classifier).
    box_sizes: (B, 3) l/w/h in metres of each object's box, for models that take the box size (ignored
        by others); None: each object's own extent (normalization.points_box_size).
    """
    batch = objects_batch(points, lengths, centre)
    model, default = _classifier(str(checkpoint or ''), device, classifier, depth_space or '')
    if box_sizes is not None and box_size_input(model.encoder):
        batch = append_box_size(batch, np.asarray(box_sizes, np.float32))
    labels = tuple(vocabulary) if vocabulary is not None else default
    if labels != model.labels:
        model.set_vocabulary(list(labels))
    pred = model.classify(batch, top_k=1)
    return LabelledObjects([pred.label(i) for i in range(len(pred))], pred.scores[:, 0].copy())


def objects_batch(points: Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor,
                  lengths: Sequence[int] | np.ndarray | torch.Tensor | None = None,
                  centre: bool = True) -> ObjectBatch:
    """predict's input as packed objects; ValueError for other shapes or objects without points."""
    if isinstance(points, (np.ndarray, torch.Tensor)) and np.ndim(points) == 3:
        padded = _numpy(points)
        n = np.full(len(padded), padded.shape[1]) if lengths is None else _numpy(lengths).astype(np.int64)
        if n.shape != (len(padded),) or (n > padded.shape[1]).any():
            raise ValueError(f'lengths must be (B,) values <= {padded.shape[1]}, got {n.tolist()}')
        objects = [padded[i, :k] for i, k in enumerate(n)]
    else:
        objects = [_numpy(p) for p in points]
    bad = [i for i, o in enumerate(objects) if o.ndim != 2 or o.shape[1] != 3]
    if bad:
        raise ValueError(f'objects must be (N, 3) xyz arrays; objects {bad[:10]} are not')
    empty = [i for i, o in enumerate(objects) if len(o) == 0]
    if empty:
        raise ValueError(f'objects {empty[:10]} have no points; every object needs at least one')
    if centre:
        objects = [o - (o.min(0) + o.max(0)) / 2 for o in objects]
    return ObjectBatch.from_list(objects)


def _numpy(x: np.ndarray | torch.Tensor | Sequence) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64 if np.asarray(x).dtype.kind == 'f' else None)


@functools.lru_cache(maxsize=4)
def _classifier(model: str, device: str, kind: str = 'points',
                depth_space: str = '') -> tuple[ZeroShotClassifier, tuple[str, ...]]:
    """One classifier per (model, device, kind, depth space), loaded on first use, and its labels."""
    if kind != 'points':
        from blendclip_core.depth_views import load_classifier

        classifier = load_classifier(model or None, classifier=kind, device=device,
                                     depth_space=depth_space or None, top_k=1)
    else:
        from blendclip_core.export import load_point_classifier

        classifier = load_point_classifier(model or None, device=device, top_k=1)
    return classifier, classifier.labels
