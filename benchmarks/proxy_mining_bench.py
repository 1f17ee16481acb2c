"""Proxy lifting (CLIP2) on the real nuScenes sample, with its own 2D boxes as the detector.

    python benchmarks/proxy_mining_bench.py --out benchmarks/results/proxy_mining.json

Detector: the sample's `cam_instances` (the 2D boxes nuScenes projects from its annotations, mmdet3d
info .pkl) through `GivenBoxes`, so what is measured is the lifting alone (frustum, ground removal,
clustering, rectangle fit, cross-camera NMS), not a detector. Recall: the ground-truth objects with
>= 20 LiDAR points (the key sweep: this sample has one) matched by a proxy box at bird's-eye IoU >= 0.25
(each proxy matches at most one object, greedy by IoU). Precision: proxies matching any ground-truth
object (any point count) at that IoU.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from machine import cpu_name  # benchmarks/machine.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLE = ROOT.parent / 'shared' / 'data' / 'nuscenes_sample'
IOU = 0.25
MIN_POINTS = 20


def given_boxes(sample: Path, token: str):
    from blendclip_core.mining.proxy import Detection2D, GivenBoxes

    info = pickle.load(open(next(sample.glob('*.pkl')), 'rb'))  # noqa: SIM115 - read once
    names = {v: k for k, v in info['metainfo']['categories'].items()}
    record = info['data_list'][0]
    return GivenBoxes({(token, chan): [Detection2D(tuple(d['bbox']), names[d['bbox_label']], 1.0)
                                       for d in dets]
                       for chan, dets in record['cam_instances'].items()})


def match(proxies, truth) -> tuple[set[int], set[int]]:
    """Greedy one-to-one matching by bird's-eye IoU >= IOU: (matched truth indices, matched proxies)."""
    from blendclip_core.mining.lifting import bev_iou

    pairs = []
    for i, p in enumerate(proxies):
        for j, a in enumerate(truth):
            iou = bev_iou(p, a.center, a.size_lwh, float(np.arctan2(a.rotation[1, 0], a.rotation[0, 0])))
            if iou >= IOU:
                pairs.append((iou, i, j))
    used_p, used_t = set(), set()
    for _, i, j in sorted(pairs, reverse=True):
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    return used_t, used_p


def run(sample: Path) -> dict:
    from blendclip_core.datasets.nuscenes_sample import read_frame
    from blendclip_core.mining.lifting import lift_frame
    from blendclip_core.mining.proxy import ProxyConfig
    from blendclip_core.mining.sweeps import frame_sweeps

    frame = read_frame(sample)
    xyz = frame_sweeps(frame).points[:, :3].astype(np.float64)
    counts = json.loads((sample / 'annotations_lidar.json').read_text())['objects']
    truth = list(frame.annotations)
    dense = {j for j, o in enumerate(counts) if o['points_in_box_recount'] >= MIN_POINTS}
    start = time.perf_counter()
    proxies, dropped = lift_frame(xyz, frame, given_boxes(sample, frame.token), ProxyConfig())
    seconds = time.perf_counter() - start
    matched_t, matched_p = match(proxies, truth)
    return {
        'proxy_recall_20pts': round(len(matched_t & dense) / max(len(dense), 1), 4),
        'proxy_precision': round(len(matched_p) / max(len(proxies), 1), 4),
        'objects_20pts': len(dense), 'objects': len(truth), 'proxies': len(proxies),
        'detections_dropped': dropped, 'iou_threshold': IOU, 'lift_seconds': round(seconds, 3),
        'missed_20pts': sorted(counts[j]['label'] for j in dense - matched_t),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sample', type=Path, default=SAMPLE)
    p.add_argument('--out', type=Path, default=ROOT / 'benchmarks' / 'results' / 'proxy_mining.json')
    args = p.parse_args(argv)
    date = datetime.now(timezone.utc).isoformat(timespec='seconds')
    result = {'device': f'{cpu_name()} (CPU)', 'date': date,
              'data': 'nuScenes sample (1 key frame, 6 cameras), cam_instances as the 2D detector',
              'results': run(args.sample)}
    args.out.write_text(json.dumps(result, indent=1) + '\n')
    print(json.dumps(result, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
