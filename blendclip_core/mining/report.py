"""The summary a mining run ends with: counts per class, skips with reasons, a points histogram (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blendclip_core.atomic import atomic_write_bytes, atomic_write_json

REPORT_DIR = 'report'
HISTOGRAM_NAME = 'points_per_object.png'
EXAMPLES_NAME = 'examples.png'


def histogram(num_points: list[int]) -> tuple[list[int], list[int]]:
    """Counts over log2 bins [1, 2), [2, 4), ... (points per object); (edges, counts)."""
    n = np.asarray(num_points, dtype=np.int64)
    top = int(np.ceil(np.log2(max(int(n.max()) if len(n) else 1, 1) + 1)))
    edges = [0] + [2**i for i in range(top + 1)]
    counts, _ = np.histogram(n, bins=edges)
    return edges, counts.tolist()


def summary_markdown(index: dict, edges: list[int], counts: list[int]) -> str:
    lines = [f'# Mining summary ({index["dataset"]} {index["version"]})', '',
             f'{index["num_samples"]} objects from {index["scenes"]} scenes in '
             f'{len(index["shards"])} shards.',
             '',
             '| class | objects |', '|---|---|']
    lines += [f'| {k} | {v} |' for k, v in index['classes'].items()]
    lines += ['', '| skipped boxes: reason | boxes |', '|---|---|']
    lines += [f'| {k} | {v} |' for k, v in index['skipped'].items()] or ['| (none) | 0 |']
    lines += ['', '| unreadable older sweeps: reason | sweeps |', '|---|---|']
    lines += [f'| {k} | {v} |' for k, v in index['sweeps_skipped'].items()] or ['| (none) | 0 |']
    lines += ['', '| image crop | objects |', '|---|---|']
    lines += [f'| {k} | {v} |' for k, v in index['images'].items()]
    lines += ['', '| points per object | objects |', '|---|---|']
    lines += [f'| {lo}-{hi - 1} | {c} |' for lo, hi, c in zip(edges[:-1], edges[1:], counts) if c]
    return '\n'.join(lines) + '\n'


def write_report(out: Path, index: dict, num_points: list[int]) -> dict:
    """Write report/summary.json, summary.md and points_per_object.png; returns the summary dict."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    folder = Path(out) / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    edges, counts = histogram(num_points)
    summary = {k: index[k] for k in ('dataset', 'version', 'num_samples', 'scenes', 'classes', 'fine_classes',
                                     'splits', 'skipped', 'images', 'sweeps_skipped')}
    summary['points_histogram'] = {'edges': edges, 'counts': counts}
    summary['points_median'] = float(np.median(num_points)) if num_points else 0.0
    atomic_write_json(folder / 'summary.json', summary)
    atomic_write_bytes(folder / 'summary.md', summary_markdown(index, edges, counts).encode())
    fig, ax = plt.subplots(figsize=(7, 4))
    if num_points:
        ax.hist(np.maximum(num_points, 1), bins=np.array(edges[1:], dtype=float), color='tab:blue')
    ax.set_xscale('log', base=2)
    ax.set_xlabel('points per object (all sweeps)')
    ax.set_ylabel('objects')
    ax.set_title(f'{index["dataset"]} {index["version"]}: {index["num_samples"]} objects')
    fig.tight_layout()
    tmp = folder / f'.{HISTOGRAM_NAME}.tmp.png'
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(folder / HISTOGRAM_NAME)
    return summary


def pick_examples(root: Path, per_class: int = 1, max_rows: int = 12) -> list:
    """The first mined object(s) of each class (coarse, else fine label), preferring ones with a crop."""
    from blendclip_core.data.datasets import TripletDataset

    ds = TripletDataset(root)
    chosen: dict[str, list[int]] = {}
    for i, (_, entry) in enumerate(ds.entries):
        label = entry['label_coarse'] or entry['label']
        picks = chosen.setdefault(label, [])
        if len(picks) < per_class:
            picks.append(i)
        elif entry['has_image'] and not any(ds.entries[j][1]['has_image'] for j in picks):
            picks[-1] = i
    rows = [ds[i] for label in sorted(chosen) for i in chosen[label]][:max_rows]
    ds.close()
    return rows


def write_examples(root: Path, triplets: list) -> Path | None:
    """report/examples.png: per object its points from above and from the side (colour = time lag),
    its camera crop and its caption, so a person can check the mining at a glance."""
    import io

    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from PIL import Image

    if not triplets:
        return None
    fig, axes = plt.subplots(len(triplets), 3, figsize=(10, 2.6 * len(triplets)), squeeze=False)
    fig.subplots_adjust(left=0.05, right=0.98, top=0.97, bottom=0.03, hspace=0.45, wspace=0.25)
    for row, t in zip(axes, triplets):
        pts = np.asarray(t.points)[:: max(1, len(t.points) // 3000)]  # enough to see the shape
        colour = pts[:, 4] if pts.shape[1] > 4 else 'tab:blue'
        for ax, (a, b), name in ((row[0], (0, 1), 'top (x, y)'), (row[1], (0, 2), 'side (x, z)')):
            ax.scatter(pts[:, a], pts[:, b], c=colour, s=2, cmap='viridis')
            ax.set_aspect('equal', adjustable='datalim')
            ax.set_title(name, fontsize=8)
            ax.tick_params(labelsize=6)
        row[2].axis('off')
        if t.image:
            row[2].imshow(Image.open(io.BytesIO(t.image)).convert('RGB'))
        label = t.label_coarse or f'{t.label} (void)'
        row[2].set_title(f'{label}: {t.caption}\n{len(t.points)} points', fontsize=8)
    folder = Path(root) / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f'.{EXAMPLES_NAME}.tmp.png'
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(folder / EXAMPLES_NAME)
    return folder / EXAMPLES_NAME
