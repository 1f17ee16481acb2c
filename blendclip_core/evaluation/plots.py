"""PNG figures people look at: the confusion matrix of an evaluation and the training curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Lay out, write (creating the folder) and close a figure; returns the path."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    _pyplot().close(fig)
    return path


def plot_confusion_matrix(confusion: np.ndarray, class_names: Sequence[str], path: str | Path,
                          title: str = '') -> Path:
    """Row-normalised (recall) colours with the raw counts written in each cell."""
    plt = _pyplot()
    cm = np.asarray(confusion, np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    k = len(class_names)
    size = max(4.0, 0.55 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(norm, cmap='Blues', vmin=0, vmax=1)
    ax.set_xticks(range(k), class_names, rotation=60, ha='right', fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel('predicted')
    ax.set_ylabel('true')
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha='center', va='center', fontsize=7,
                            color='white' if norm[i, j] > 0.5 else 'black')
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label='fraction of true class')
    ax.set_title(title or 'confusion matrix (top-1)')
    return save_figure(fig, path)


def plot_training_curves(records: Sequence[dict], path: str | Path, title: str = '') -> Path:
    """records: metrics.jsonl rows. Left: loss terms per step; right: eval accuracies (top1 keys)."""
    plt = _pyplot()
    train = [r for r in records if r.get('kind') == 'train']
    evals = [r for r in records if r.get('kind') == 'eval']
    fig, (ax_l, ax_r) = plt.subplots(1, 2, figsize=(11, 4))
    keys = sorted({k for r in train for k in r if k.endswith('_loss')})
    for key in keys:
        pts = [(r['step'], r[key]) for r in train if key in r]
        if pts:
            ax_l.plot(*zip(*pts), label=key)
    ax_l.set_xlabel('step')
    ax_l.set_ylabel('loss')
    ax_l.set_title('training loss')
    if keys:
        ax_l.legend(fontsize=8)
    acc_keys = sorted({k for r in evals for k in r if k.endswith('/top1') or k.endswith('/mean_class_top1')})
    for key in acc_keys:
        pts = [(r['step'], 100 * r[key]) for r in evals if key in r]
        ax_r.plot(*zip(*pts), marker='o', ms=3, label=key)
    frac = [(r['step'], 100 * r['real_fraction']) for r in train if 'real_fraction' in r]
    if frac:
        ax_r.plot(*zip(*frac), ls=':', color='gray', label='real % of batch')
    ax_r.set_xlabel('step')
    ax_r.set_ylabel('%')
    ax_r.set_title('zero-shot accuracy')
    if acc_keys or frac:
        ax_r.legend(fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)
