"""Cropping speed: crop_objects on the real nuScenes sweep (34,688 points), the node's per-frame CPU work.

    python benchmarks/preprocess_bench.py --out benchmarks/results/preprocess.json

Frames: the 64 first real annotated boxes; 64 random boxes of nuScenes-like sizes placed over the
sweep (more points per box than the real ones); 10,000 random boxes; one box holding the whole cloud
(capped at 8,192). Side by side: the per-box loop (transform every point into each box) that
reference code uses. p50/p99 over --repeats calls, single process, numpy only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blendclip_core.geometry import Boxes  # noqa: E402
from blendclip_core.preprocess import crop_objects  # noqa: E402

SAMPLE = ROOT / 'data' / 'nuscenes_sample'


def load_sweep():
    meta = json.loads((SAMPLE / 'annotations_lidar.json').read_text())
    points = np.fromfile(SAMPLE / meta['lidar_file'], dtype=np.float32).reshape(-1, 5)
    obj = meta['objects']
    boxes = Boxes.from_yaw([o['center_xyz'] for o in obj], [o['size_lwh'] for o in obj],
                           [o['yaw'] for o in obj])
    return points, boxes


def random_boxes(rng, n, points):
    """Boxes centred on random cloud points, sizes from pedestrian to bus, so they hold points."""
    centers = points[rng.integers(0, len(points), n), :3].astype(np.float64)
    kinds = np.array([[0.7, 0.7, 1.8], [4.5, 1.9, 1.6], [11.0, 2.9, 3.5], [0.4, 0.4, 1.0], [2.0, 0.5, 1.0]])
    sizes = kinds[rng.integers(0, len(kinds), n)] * rng.uniform(0.8, 1.2, (n, 1))
    return Boxes.from_yaw(centers, sizes, rng.uniform(-np.pi, np.pi, n))


def per_box_loop(points, boxes):
    xyz = points[:, :3].astype(np.float64)
    rot = boxes.rotations
    out = []
    for i in range(len(boxes)):
        local = (xyz - boxes.centers[i]) @ rot[i]
        out.append(xyz[(np.abs(local) <= boxes.sizes[i] / 2).all(1)] - boxes.centers[i])
    return out


def timeit(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    return float(np.percentile(ts, 50)), float(np.percentile(ts, 99))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', default=str(ROOT / 'benchmarks' / 'results' / 'preprocess.json'))
    p.add_argument('--repeats', type=int, default=500)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    points, real = load_sweep()
    real64 = real.subset(slice(0, 64))
    rand64 = random_boxes(rng, 64, points)
    many = random_boxes(rng, 10_000, points)
    huge = Boxes.from_yaw([[0, 0, 0]], [[1000, 1000, 100]], [0.3])
    res = {}
    res['real64_ms_p50'], res['real64_ms_p99'] = timeit(lambda: crop_objects(points, real64), args.repeats)
    dense = max(10, args.repeats // 10)  # these frames hold ~100k box points: slower, fewer repeats
    res['random64_ms_p50'], res['random64_ms_p99'] = timeit(lambda: crop_objects(points, rand64), dense)
    res['random64_canonical_ms_p50'], _ = timeit(lambda: crop_objects(points, rand64, canonical_yaw=True),
                                                 dense)
    res['random64_points_in_boxes'] = int(crop_objects(points, rand64).points_in_box.sum())
    res['boxes10k_ms_p50'], _ = timeit(lambda: crop_objects(points, many), 3)
    res['boxes10k_points_in_boxes'] = int(crop_objects(points, many).points_in_box.sum())
    res['whole_cloud_box_ms_p50'], _ = timeit(lambda: crop_objects(points, huge), 20)
    res['real64_per_box_loop_ms_p50'], _ = timeit(lambda: per_box_loop(points, real64), 20)
    res['cloud_points'] = len(points)
    res['load_average_1min'] = float(os.getloadavg()[0])  # this machine is shared: context for the numbers
    out = {'device': f'CPU: {platform.processor() or platform.machine()}, numpy (single thread)',
           'date': datetime.now(timezone.utc).isoformat(timespec='seconds'), 'results': res}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + '\n')
    print(json.dumps(out, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
