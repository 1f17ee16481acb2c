"""Labelled objects against ground truth: what a labeller published for each box of a frame, paired
with the annotated boxes (by box id, or by centre distance for a detector's boxes), filtered by the
protocol (classes, class ranges, points seen) and ranked for the metrics.

Pure: the frames come from any source (a labelled bag, `blendclip_ros.bag.labelled`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from blendclip_core.evaluation.metrics import TOPK, ZeroShotResult, metrics_from_ranked
from blendclip_core.evaluation.protocol import Protocol, ground_distance, rank_labels
from blendclip_core.geometry import Boxes

MATCH_DISTANCE_M = 2.0  # nuScenes detection's tightest centre-distance threshold
MATCH_MODES = ('auto', 'id', 'center')


@dataclass
class Prediction:
    labels: tuple[str, ...]  # ranked, best first ('' never appears)
    scores: tuple[float, ...]
    num_points: int
    status: int
    center: tuple[float, float, float] = (np.nan, np.nan, np.nan)  # box centre in the cloud frame


@dataclass
class LabelledFrame:
    stamp_ns: int
    gt: Boxes  # ids, poses, sizes in the cloud frame; detector_labels = fine category
    gt_classes: tuple[str, ...]
    gt_num_points: np.ndarray
    predictions: dict[str, Prediction] = field(default_factory=dict)  # by box id; empty if unlabelled
    labelled: bool = False


@dataclass
class LabelledEvaluation:
    """The metrics and what went into them: (stamp, box id) and ranked classes of every evaluated box."""

    result: ZeroShotResult | None  # set once every box is ranked
    match: str  # 'id' or 'center', as used
    keys: list[tuple[int, str]]
    order: list[list[int]]
    targets: list[int]
    skipped: dict[str, int]
    without_prediction: int
    unlabelled_frames: int

    def hits(self) -> dict[tuple[int, str], bool]:
        """(stamp, box id) -> top-1 correct."""
        return {key: bool(o[0] == t) for key, o, t in zip(self.keys, self.order, self.targets)}


def match_by_center(gt_centers: np.ndarray, predictions: dict,
                    max_distance: float = MATCH_DISTANCE_M) -> dict:
    """GT index -> prediction, greedily closest pair first, centre distance in the ground plane <= max.
    For boxes that came from a detector (ids unrelated to the ground truth's)."""
    if not predictions or not len(gt_centers):
        return {}
    preds = list(predictions.values())
    p_xy = np.array([p.center[:2] for p in preds], dtype=np.float64)
    d = np.linalg.norm(np.asarray(gt_centers)[:, None, :2] - p_xy[None], axis=-1)
    out, used_gt, used_pred = {}, set(), set()
    for flat in np.argsort(d, axis=None, kind='stable'):
        g, q = np.unravel_index(flat, d.shape)
        if d[g, q] > max_distance:
            break
        if g in used_gt or q in used_pred:
            continue
        out[int(g)] = preds[q]
        used_gt.add(g)
        used_pred.add(q)
    return out


def frame_matches(frame: LabelledFrame, match: str) -> dict:
    """GT index -> its prediction in one labelled frame ('id' or 'center' pairing)."""
    if match == 'center':
        return match_by_center(frame.gt.centers, frame.predictions)
    return {i: frame.predictions[b] for i, b in enumerate(frame.gt.ids) if b in frame.predictions}


def resolve_match(frames: Sequence[LabelledFrame], match: str) -> str:
    """'auto' -> 'id' when predictions share ids with the ground truth (ground-truth boxes replayed as
    detections keep theirs; a detector's do not) or there are none, else 'center'."""
    if match not in MATCH_MODES:
        raise ValueError(f'match must be one of {MATCH_MODES}, got {match!r}')
    if match != 'auto':
        return match
    shared = any(set(f.predictions) & set(f.gt.ids) for f in frames)
    return 'id' if shared or not any(f.predictions for f in frames) else 'center'


def evaluate_frames(frames: Sequence[LabelledFrame], ego_centers: Callable[[LabelledFrame], np.ndarray],
                    protocol: Protocol, min_points: int = 1, closed_set: bool = False,
                    match: str = 'auto') -> LabelledEvaluation:
    """Every ground-truth box of a protocol class within its range (ego ground distance of
    `ego_centers(frame)`) seen with >= min_points points; a box without a label counts as a miss."""
    match = resolve_match(frames, match)
    kmax = max(TOPK)
    ev = LabelledEvaluation(None, match, [], [], [], {'outside_classes': 0, 'out_of_range': 0,
                                                       'below_min_points': 0}, 0, 0)
    for frame in frames:
        ev.unlabelled_frames += not frame.labelled
        cls = protocol.class_indices(frame.gt_classes)
        in_range = protocol.in_range(cls, ground_distance(ego_centers(frame)))
        matched = frame_matches(frame, match)
        for i, box_id in enumerate(frame.gt.ids):
            pred = matched.get(i)
            n_points = pred.num_points if pred is not None else int(frame.gt_num_points[i])
            reason = ('outside_classes' if cls[i] < 0 else 'out_of_range' if not in_range[i]
                      else 'below_min_points' if n_points < min_points else '')
            if reason:
                ev.skipped[reason] += 1
                continue
            ev.without_prediction += pred is None
            ev.order.append(rank_labels(pred.labels if pred else (), protocol, kmax, closed_set))
            ev.targets.append(int(cls[i]))
            ev.keys.append((frame.stamp_ns, box_id))
    ev.result = metrics_from_ranked(np.array(ev.order, np.int64).reshape(-1, kmax),
                                    np.array(ev.targets, np.int64), protocol.class_names)
    return ev
