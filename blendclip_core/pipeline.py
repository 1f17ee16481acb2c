"""label_frame: one LiDAR frame and its boxes -> labels. The node, the offline bag labeller, evaluation
and the demo all call this, so they cannot disagree on cropping, statuses or thresholds.

Timings are split into cropping (CPU, part of the ROS-side overhead) and model (encoder + similarity,
GPU on a vehicle), because the node reports the two separately.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from blendclip_core.geometry import Boxes
from blendclip_core.normalization import append_box_size, box_size_input
from blendclip_core.preprocess import CropLimits, CroppedObjects, crop_objects
from blendclip_core.types import ObjectStatus, Predictions


@dataclass(frozen=True)
class PipelineConfig:
    """How a frame is labelled (the node's dynamic parameters map onto these)."""

    margin: float = 0.0  # metres added to every box half-size before cropping
    # Boxes with fewer points inside are NO_POINTS (empty label), not classified: below 5 points the
    # measured top-1 is barely above always answering the majority class (docs/model_card.md).
    min_points: int = 5
    # Per-object cap of the crop (seeded uniform subset) for models whose cap is 'uniform' (metric);
    # models capped by FPS (unit_sphere) crop up to limits.max_frame_points and the classifier caps.
    max_points: int = 8192
    score_threshold: float = 0.0  # best score below this -> BELOW_THRESHOLD (labels still reported)
    canonical_yaw: bool = False  # rotate objects into their box frame (only if the model was trained so)
    top_k: int | None = None  # labels reported per object; None: the classifier's top_k
    channels: int | None = None  # point columns given to the encoder; None: what the encoder takes
    box_margin: float | None = None  # alias of margin (the node's parameter name); wins when set
    limits: CropLimits = CropLimits()  # per-frame bounds (box size, objects, pairs, points): preprocess

    def __post_init__(self) -> None:
        if self.box_margin is not None:
            object.__setattr__(self, 'margin', float(self.box_margin))
        if not math.isfinite(self.margin):
            raise ValueError(f'margin must be finite, got {self.margin}')
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f'score_threshold must be in [0, 1], got {self.score_threshold}')
        if self.min_points < 1 or self.max_points < 1 or (self.top_k is not None and self.top_k < 1):
            raise ValueError('min_points, max_points and top_k must be >= 1')


@dataclass
class FramePredictions(Predictions):
    """Predictions plus where the time went: timings = {'crop_ms', 'model_ms', 'total_ms'}."""

    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class LabelledFrame:
    predictions: FramePredictions
    cropped: CroppedObjects


def label_frame(points: np.ndarray, boxes: Boxes, classifier, config: PipelineConfig | None = None,
                ) -> FramePredictions:
    """Crop every box, classify all objects in one encoder call, merge the statuses.

    Status per box: INVALID_BOX (bad box, or beyond `config.limits`), NO_POINTS (< min_points inside),
    BELOW_THRESHOLD (classified, indices and scores kept, best score < score_threshold), else OK.
    """
    return run_frame(points, boxes, classifier, config).predictions


def run_frame(points: np.ndarray, boxes: Boxes, classifier, config: PipelineConfig | None = None,
              ) -> LabelledFrame:
    """label_frame, also returning the cropped objects (for visualisation and debugging)."""
    config = config or PipelineConfig()
    t0 = time.perf_counter()
    box_size = box_size_input(classifier.encoder)
    channels = config.channels or int(getattr(classifier.encoder, 'in_channels', 3)) - 3 * box_size
    cropped = crop_objects(points, boxes, margin=config.margin, max_points=_crop_cap(classifier, config),
                           min_points=config.min_points, canonical_yaw=config.canonical_yaw,
                           channels=channels, limits=config.limits)
    objects = append_box_size(cropped.batch, boxes.sizes) if box_size else cropped.batch
    t1 = time.perf_counter()
    pred = classifier.classify(objects, status=cropped.status, top_k=config.top_k)
    t2 = time.perf_counter()
    status = pred.status.copy()
    if config.score_threshold > 0 and pred.scores.shape[1]:
        low = (status == ObjectStatus.OK) & (pred.scores[:, 0] < config.score_threshold)
        status[low] = ObjectStatus.BELOW_THRESHOLD
    timings = {'crop_ms': (t1 - t0) * 1e3, 'model_ms': (t2 - t1) * 1e3, 'total_ms': (t2 - t0) * 1e3}
    out = FramePredictions(pred.indices, pred.scores, pred.num_points, status, pred.vocabulary,
                           pred.vocabulary_version, timings)
    return LabelledFrame(out, cropped)


def _crop_cap(classifier, config: PipelineConfig) -> int:
    """The crop's per-object cap: config.max_points, unless the model caps by FPS after normalising on
    all of an object's points (the reference's order): then the frame's point budget bounds it."""
    if getattr(classifier, 'input_cap', 'uniform') != 'fps':
        return config.max_points
    return max(config.max_points, config.limits.max_frame_points or config.max_points)
