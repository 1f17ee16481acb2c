"""Zero-shot classification metrics: top-k overall (sample-weighted) and mean per class, the per-class
table and the confusion matrix. Pure numpy; inputs are scores (N, K) or ranked predictions (N, k)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def ranked(scores: np.ndarray, k: int) -> np.ndarray:
    """(N, K) scores -> (N, min(k, K)) class indices, best first (stable for ties)."""
    scores = np.asarray(scores)
    k = min(k, scores.shape[1])
    return np.argsort(-scores, axis=1, kind='stable')[:, :k]


def topk_hits(predictions: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(N,) bool: label among the first k ranked predictions. Labels < 0 (not in vocabulary) never hit."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    return (predictions[:, :k] == labels[:, None]).any(axis=1) & (labels >= 0)


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts, rows = true class, columns = predicted; samples with label < 0 are left out."""
    pred, labels = np.asarray(pred, np.int64), np.asarray(labels, np.int64)
    ok = (labels >= 0) & (labels < num_classes) & (pred >= 0) & (pred < num_classes)
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (labels[ok], pred[ok]), 1)
    return cm


@dataclass
class ZeroShotResult:
    """Everything one evaluation set yields. Per-class values are NaN for classes with no sample."""

    class_names: tuple[str, ...]
    topk: tuple[int, ...]
    overall: dict[int, float]  # k -> sample-weighted top-k accuracy
    mean_per_class: dict[int, float]  # k -> mean over classes present of per-class top-k
    per_class: dict[int, np.ndarray]  # k -> (K,) per-class top-k accuracy
    counts: np.ndarray  # (K,) samples per class
    confusion: np.ndarray  # (K, K) top-1 confusion
    num_samples: int
    extra: dict = field(default_factory=dict)

    def scalars(self, prefix: str = '') -> dict[str, float]:
        out = {}
        for k in self.topk:
            out[f'{prefix}top{k}'] = self.overall[k]
            out[f'{prefix}mean_class_top{k}'] = self.mean_per_class[k]
        return out

    def table(self) -> str:
        """Markdown per-class table."""
        head = '| class | n | ' + ' | '.join(f'top-{k} %' for k in self.topk) + ' |'
        lines = [head, '|' + '---|' * (2 + len(self.topk))]
        for i, name in enumerate(self.class_names):
            vals = ' | '.join('-' if np.isnan(self.per_class[k][i]) else f'{100 * self.per_class[k][i]:.1f}'
                              for k in self.topk)
            lines.append(f'| {name} | {int(self.counts[i])} | {vals} |')
        overall = ' | '.join(f'{100 * self.overall[k]:.1f}' for k in self.topk)
        mean = ' | '.join(f'{100 * self.mean_per_class[k]:.1f}' for k in self.topk)
        lines += [f'| **overall** | {self.num_samples} | {overall} |', f'| **mean per class** | | {mean} |']
        return '\n'.join(lines)

    def to_dict(self) -> dict:
        return {'class_names': list(self.class_names), 'num_samples': self.num_samples,
                'overall': {f'top{k}': v for k, v in self.overall.items()},
                'mean_per_class': {f'top{k}': v for k, v in self.mean_per_class.items()},
                'per_class': {name: {'n': int(self.counts[i]),
                                     **{f'top{k}': _none_if_nan(self.per_class[k][i]) for k in self.topk}}
                              for i, name in enumerate(self.class_names)},
                'confusion': self.confusion.tolist(), **self.extra}


def _none_if_nan(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


TOPK = (1, 5)  # what every evaluation reports


def zero_shot_metrics(scores: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                      topk: Sequence[int] = TOPK) -> ZeroShotResult:
    """scores (N, K) similarity to each class text; labels (N,) class indices (-1: not in vocabulary,
    counted as a miss overall and left out of the per-class numbers)."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, np.int64)
    num_classes = len(class_names)
    if scores.ndim != 2 or scores.shape[1] != num_classes or len(scores) != len(labels):
        raise ValueError(f'scores {scores.shape} must be (N={len(labels)}, K={num_classes})')
    topk = tuple(sorted(set(int(k) for k in topk)))
    order = ranked(scores, max(topk)) if len(scores) else np.zeros((0, 1), np.int64)
    return _from_order(order, labels, class_names, topk)


def metrics_from_ranked(order: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                        topk: Sequence[int] = TOPK) -> ZeroShotResult:
    """Like zero_shot_metrics, but from ranked class indices (N, k) with -1 for 'no class' (a label
    outside the protocol or no label at all): what a labelled bag holds, scores of only k."""
    labels = np.asarray(labels, np.int64)
    order = np.asarray(order, np.int64).reshape(len(labels), -1)
    return _from_order(order, labels, class_names, tuple(topk))


def _from_order(order: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                topk: tuple[int, ...]) -> ZeroShotResult:
    num_classes = len(class_names)
    counts = np.bincount(labels[labels >= 0], minlength=num_classes)[:num_classes]
    overall, mean_pc, per_class = {}, {}, {}
    for k in topk:
        hits = topk_hits(order, labels, k) if len(labels) else np.zeros(0, bool)
        overall[k] = float(hits.mean()) if len(hits) else float('nan')
        per_hits = np.bincount(labels[hits], minlength=num_classes)[:num_classes]
        with np.errstate(invalid='ignore', divide='ignore'):
            per_class[k] = np.where(counts > 0, per_hits / np.maximum(counts, 1), np.nan)
        present = counts > 0
        mean_pc[k] = float(per_class[k][present].mean()) if present.any() else float('nan')
    top1 = order[:, 0] if order.shape[1] else np.full(len(labels), -1)
    return ZeroShotResult(tuple(class_names), topk, overall, mean_pc, per_class, counts,
                          confusion_matrix(top1, labels, num_classes), int(len(labels)))
