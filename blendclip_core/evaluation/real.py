"""Real-data accuracy: every box of a real split labelled through `label_frame` (what the node runs)
with the nuScenes-10 vocabulary, scored at point-count floors beside the "always the majority class"
baseline (the best constant answer for that very set: its most frequent class; class-mean 1 / classes).

An object seen in several sweeps (same AV2 track_uuid) counts once: the sweep where its box holds the
most points is kept (ties: the first sweep read).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from blendclip_core.evaluation.metrics import ZeroShotResult, metrics_from_ranked
from blendclip_core.evaluation.protocol import NUSCENES, Protocol

MIN_POINTS = (1, 5, 20)  # the floors every source is scored at
POINT_BUCKETS = ((1, 2), (3, 4), (5, 19), (20, None))  # inclusive point-count ranges (None: no bound)
TOPK = (1, 3)


@dataclass(frozen=True)
class RealObject:
    """One labelled box of the ground truth and what label_frame ranked for it."""

    source: str  # 'av2', 'nuscenes', 'kitti'
    frame: str
    track: str  # the same object across sweeps (AV2 track_uuid; else frame/box id)
    target: int  # protocol class index
    num_points: int  # points the crop held (what the encoder saw, before its cap)
    ranked: tuple[int, ...]  # protocol class indices, best first (-1: not labelled)


def label_objects(frames: Iterable[tuple[str, object]], classifier, config=None,
                  protocol: Protocol = NUSCENES) -> list[RealObject]:
    """(source, datasets.Frame) pairs -> the boxes of a protocol class, labelled by `label_frame`."""
    from blendclip_core.pipeline import PipelineConfig, label_frame

    config = config or PipelineConfig(top_k=max(TOPK), min_points=1)  # scored at every count
    out = []
    for source, frame in frames:
        pred = label_frame(frame.points, frame.boxes, classifier, config)
        vocab = np.array([protocol.class_index(v) for v in pred.vocabulary] + [-1])
        for i, (label, ann) in enumerate(zip(frame.labels, frame.annotations)):
            target = protocol.class_index(label) if label else -1
            if target < 0:
                continue
            ranked = tuple(int(c) for c in vocab[pred.indices[i]])  # index -1 -> the appended -1
            out.append(RealObject(source, frame.token, ann.instance_token or f'{frame.token}/{ann.token}',
                                  target, int(pred.num_points[i]), ranked))
    return out


def once_per_track(objects: Sequence[RealObject]) -> list[RealObject]:
    """One object per track: the sighting with the most points (the first read on a tie)."""
    best: dict[str, RealObject] = {}
    for o in objects:
        if o.track not in best or o.num_points > best[o.track].num_points:
            best[o.track] = o
    return list(best.values())


def metrics(objects: Sequence[RealObject], class_names: Sequence[str] = NUSCENES.class_names
            ) -> ZeroShotResult:
    k = max(TOPK)
    order = np.array([(list(o.ranked) + [-1] * k)[:k] for o in objects], np.int64).reshape(-1, k)
    return metrics_from_ranked(order, np.array([o.target for o in objects], np.int64), class_names, TOPK)


def majority_baseline(counts: np.ndarray) -> dict[str, float]:
    """Always answering the set's most frequent classes: top-1, top-3 and class-mean top-1."""
    counts = np.sort(np.asarray(counts))[::-1]
    n, present = counts.sum(), int((counts > 0).sum())
    return {'top1': counts[0] / n, 'top3': counts[:3].sum() / n, 'classmean': 1.0 / present}


def score(objects: Sequence[RealObject], min_points: int) -> dict[str, float]:
    """n, top1, top3, classmean and their *_majority of the objects with >= min_points points."""
    kept = [o for o in objects if o.num_points >= min_points]
    if not kept:
        return {'n': 0}
    result = metrics(kept)
    ours = {'top1': result.overall[1], 'top3': result.overall[3], 'classmean': result.mean_per_class[1]}
    base = majority_baseline(result.counts)
    return {'n': len(kept), **{k: float(v) for k, v in ours.items()},
            **{f'{k}_majority': float(v) for k, v in base.items()}}


def by_points(objects: Sequence[RealObject]) -> dict[str, float | None]:
    """Count, top-1 and its majority baseline per point-count bucket ('points_1_2', ..., 'points_20_up')."""
    out = {}
    for lo, hi in POINT_BUCKETS:
        name = f'points_{lo}_{hi}' if hi else f'points_{lo}_up'
        kept = [o for o in objects if o.num_points >= lo and (hi is None or o.num_points <= hi)]
        counts = np.bincount([o.target for o in kept], minlength=1)
        out[f'{name}_n'] = len(kept)
        out[f'{name}_top1'] = float(np.mean([o.ranked[0] == o.target for o in kept])) if kept else None
        out[f'{name}_top1_majority'] = float(majority_baseline(counts)['top1']) if kept else None
    return out
