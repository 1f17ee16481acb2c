"""Bird's-eye-view PNG of one frame: LiDAR points from above, boxes coloured by correctness, labels.

What a person opens first when an accuracy number looks wrong: which boxes were missed and as what.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from blendclip_core.evaluation.plots import save_figure
from blendclip_core.geometry import Boxes

CORRECT, WRONG, NOT_EVALUATED = 'correct', 'wrong', 'not evaluated'
COLOURS = {CORRECT: '#1a9850', WRONG: '#d73027', NOT_EVALUATED: '#999999'}


def box_footprints(boxes: Boxes) -> np.ndarray:
    """(N, 4, 2) ground-plane corners of each box (x, y), counter-clockwise from front-left."""
    half = boxes.sizes[:, :2] / 2.0
    local = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64)[None] * half[:, None, :]
    yaw = boxes.yaws
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x = local[..., 0] * c - local[..., 1] * s + boxes.centers[:, None, 0]
    y = local[..., 0] * s + local[..., 1] * c + boxes.centers[:, None, 1]
    return np.stack([x, y], -1)


def plot_bev(points: np.ndarray, boxes: Boxes, outcome: Sequence[str], texts: Sequence[str],
             path: str | Path, title: str = '', range_m: float | None = None, max_points: int = 60000,
             seed: int = 0) -> Path:
    """points: (N, >=2) in the boxes' frame; outcome[i] in (CORRECT, WRONG, NOT_EVALUATED);
    texts[i]: what to write next to box i (e.g. 'car (gt truck)'); range_m: half-width of the view
    (default: fits every box)."""
    if len(outcome) != len(boxes) or len(texts) != len(boxes):
        raise ValueError('outcome and texts need one entry per box')
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Polygon

    pts = np.asarray(points, dtype=np.float64)
    if len(pts) > max_points:  # a readable PNG needs no more; keeps the file small
        pts = pts[np.random.default_rng(seed).choice(len(pts), max_points, replace=False)]
    if range_m is None:
        extent = np.abs(boxes.centers[:, :2]).max() + 5.0 if len(boxes) else 50.0
        range_m = float(max(extent, 10.0))
    fig, ax = plt.subplots(figsize=(9, 9))
    if len(pts):
        ax.scatter(pts[:, 0], pts[:, 1], s=0.3, c='#4a6fa5', alpha=0.5, linewidths=0)
    for corners, kind, text in zip(box_footprints(boxes), outcome, texts):
        colour = COLOURS[kind]
        ax.add_patch(Polygon(corners, closed=True, fill=False, edgecolor=colour, linewidth=1.4))
        front = corners[[0, 3]].mean(0)  # heading tick: centre of the front edge
        ax.plot([corners.mean(0)[0], front[0]], [corners.mean(0)[1], front[1]], color=colour, linewidth=0.8)
        if text and np.all(np.abs(corners.mean(0)) <= range_m):
            ax.annotate(text, corners.max(0), fontsize=6.5, color=colour, xytext=(2, 2),
                        textcoords='offset points')
    ax.plot([0], [0], marker='^', color='black', markersize=8)  # the sensor
    ax.set_xlim(-range_m, range_m)
    ax.set_ylim(-range_m, range_m)
    ax.set_aspect('equal')
    ax.set_xlabel('x [m]')
    ax.set_ylabel('y [m]')
    counts = {k: sum(1 for o in outcome if o == k) for k in COLOURS}
    ax.legend(handles=[Line2D([0], [0], color=c, label=f'{k} ({counts[k]})') for k, c in COLOURS.items()],
              loc='upper right', fontsize=8)
    ax.set_title(title or "bird's-eye view")
    ax.grid(True, linewidth=0.3, alpha=0.5)
    return save_figure(fig, path, dpi=120)
