"""A picture of what the generator makes: each class as dense surface samples and as a simulated sweep.

    python -m blendclip_core.synthetic.plot docs/synthetic_examples.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from blendclip_core.data.triplet import REAL, SYNTHETIC
from blendclip_core.evaluation.plots import save_figure


def plot_examples(path: str | Path, seed: int = 0, range_max: float = 25.0) -> Path:
    """Side views (x-z, box frame) of one object per class: dense row, then its simulated LiDAR view."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from blendclip_core.synthetic import dataset, shapes

    names = shapes.class_names()
    rows = [(SYNTHETIC, 'dense ("CAD")'),
            (REAL, 'simulated LiDAR')]
    fig, axes = plt.subplots(2, len(names), figsize=(1.6 * len(names), 3.6))
    for r, (domain, title) in enumerate(rows):
        cfg = dataset.GeneratorConfig(per_class=1, domain=domain, seed=seed, dense_points=768,
                                      canonical_yaw=True, range_max=range_max)
        gen = dataset.generate(cfg)
        for c, (pts, variant, meta) in enumerate(zip(gen.points, gen.variants, gen.meta)):
            ax = axes[r, c]
            ax.scatter(pts[:, 0], pts[:, 2], s=0.6 if domain == SYNTHETIC else 3, c=pts[:, 1], cmap='viridis',
                       linewidths=0)
            ax.set_aspect('equal', adjustable='datalim')
            ax.set_xticks([])
            ax.set_yticks([])
            label = variant if domain == SYNTHETIC else f'{len(pts)} pts, {meta.get("range_m", np.nan):.0f} m'
            ax.set_title(label, fontsize=6)
            if c == 0:
                ax.set_ylabel(title, fontsize=7)
            if r == 0:
                ax.text(0.5, 1.25, names[c], transform=ax.transAxes, ha='center', fontsize=8, weight='bold')
    fig.suptitle('Generated driving objects (blendclip_core.synthetic), side views in the box frame',
                 fontsize=9, y=0.995)
    return save_figure(fig, path)


if __name__ == '__main__':
    print(plot_examples(sys.argv[1] if len(sys.argv) > 1 else 'docs/synthetic_examples.png'))
