"""The summary a mining run ends with: counts per class, skips with reasons, a points histogram (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blendclip_core.data.shards import atomic_write_bytes, atomic_write_json

REPORT_DIR = 'report'
HISTOGRAM_NAME = 'points_per_object.png'


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
