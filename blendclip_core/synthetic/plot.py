"""A picture of what the generator makes: each class as dense surface samples, a second sub-type, and
the first object as five of the simulated LiDARs see it.

    python -m blendclip_core.synthetic.plot docs/synthetic_examples.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from blendclip_core.evaluation.plots import save_figure

SENSOR_ROWS = ('VLP-16', 'HDL-32E', 'VLP-32C x2', 'HDL-64E', '128-beam')  # nuScenes, AV2, KITTI among them


def _examples(seed: int) -> list:
    """Per class: one drawn object and one of another variant (drawn from the class's other variants)."""
    from blendclip_core.synthetic import shapes

    out = []
    for c, spec in enumerate(shapes.CLASSES):
        rng = np.random.default_rng([seed, c])
        first = shapes.make_object(spec, rng)
        others = [v for v in spec.variants if v.name != first.variant] or list(spec.variants)
        out.append((first, shapes.build_variant(spec, others[int(rng.integers(len(others)))], rng)))
    return out


def _sensor_view(obj, sensor: str, range_m: float, seed: int) -> np.ndarray:
    """The object 30 deg off broadside, range_m away, as `sensor` at 1.8 m sees it, cropped to its box."""
    from blendclip_core.preprocess import crop_objects
    from blendclip_core.synthetic import lidar

    cfg = lidar.LidarConfig(occlusion_prob=0.0, truncation_prob=0.0)
    scan = lidar.scan_object(obj.mesh, obj.size_lwh, np.random.default_rng(seed), cfg, range_m=range_m,
                             yaw=np.radians(120.0), sensor=sensor, height=1.8)
    return crop_objects(scan.points, scan.box, max_points=4096, canonical_yaw=True).batch.object(0)


def _draw(ax, pts: np.ndarray, label: str, dense: bool, side_axis: int, size_lwh: np.ndarray) -> None:
    """Points on fixed box-sized axes, so that sparse views keep the scale of the dense ones."""
    ax.scatter(pts[:, side_axis], pts[:, 2], s=0.5 if dense else 2.5, c=pts[:, 1 - side_axis],
               cmap='viridis', linewidths=0)
    half = 0.55 * np.asarray(size_lwh)
    ax.set_xlim(-half[side_axis], half[side_axis])
    ax.set_ylim(-half[2], half[2])
    ax.set_aspect('equal', adjustable='datalim')
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(label, fontsize=6)


def plot_examples(path: str | Path, seed: int = 0, range_m: float = 15.0) -> Path:
    """Side views in the box frame (barriers from the front: they are long across their heading)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from blendclip_core.synthetic import shapes

    examples = _examples(seed)
    rows = ['dense ("CAD")', 'another sub-type'] + [f'{s}, {range_m:.0f} m' for s in SENSOR_ROWS]
    fig, axes = plt.subplots(len(rows), len(examples), figsize=(1.6 * len(examples), 1.75 * len(rows)))
    for c, (first, second) in enumerate(examples):
        rng = np.random.default_rng([seed, c, 1])
        side = 1 if first.spec.name == 'barrier' else 0
        _draw(axes[0, c], shapes.sample_surface(first.mesh, 768, rng), first.variant, True, side,
              first.size_lwh)
        _draw(axes[1, c], shapes.sample_surface(second.mesh, 768, rng), second.variant, True, side,
              second.size_lwh)
        for r, sensor in enumerate(SENSOR_ROWS, start=2):
            pts = _sensor_view(first, sensor, range_m, seed + c)
            _draw(axes[r, c], pts, f'{len(pts)} pts', False, side, first.size_lwh)
        axes[0, c].text(0.5, 1.3, first.spec.name, transform=axes[0, c].transAxes, ha='center', fontsize=8,
                        weight='bold')
    for r, title in enumerate(rows):
        axes[r, 0].set_ylabel(title, fontsize=7)
    fig.suptitle('Generated driving objects (blendclip_core.synthetic), side views in the box frame; '
                 'rows 3-7: the first object seen by five simulated LiDARs mounted 1.8 m high '
                 '(per-object dropout as in training; no occluder, no field-of-view cut)',
                 fontsize=9, y=0.998)
    return save_figure(fig, path)


if __name__ == '__main__':
    print(plot_examples(sys.argv[1] if len(sys.argv) > 1 else 'docs/synthetic_examples.png'))
