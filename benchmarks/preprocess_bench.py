"""Cropping speed: crop_objects on the real nuScenes sweep (34,688 points), the node's per-frame CPU work.

    python benchmarks/preprocess_bench.py --out benchmarks/results/preprocess.json

Frames: the 64 first real annotated boxes; 64 random boxes of nuScenes-like sizes placed over the
sweep (more points per box than the real ones); 10,000 random boxes; one box holding the whole cloud
(capped at 8,192); these two without the per-frame limits (`CropLimits.unbounded()`), to time the
algorithm itself. Side by side: the per-box loop (transform every point into each box) that reference
code uses. p50/p99 over --repeats calls, single process, numpy only.

Hostile frames (issue #14), with the default limits: 46 boxes 29 x 29 m over the ground (each holds most
of the sweep), the same 2,048 times (also tilted), the 69 real boxes in millimetres, 2,048 random huge
boxes. With --model the whole frame (crop + the shipped model on the CPU, `run_frame`) is timed too:
`worst_hostile_frame_ms` is the goal of < 1 s.
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
from blendclip_core.preprocess import CropLimits, crop_objects  # noqa: E402

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


def hostile_frames(rng, real: Boxes) -> dict[str, Boxes]:
    """Box sets that cost seconds and gigabytes per frame before the per-frame limits."""
    def ground(n, tilt=False):
        centers = np.column_stack([rng.uniform(-2, 2, (n, 2)), np.full(n, -0.8)])
        boxes = Boxes.from_yaw(centers, np.tile([29.0, 29.0, 2.3], (n, 1)), rng.uniform(-3, 3, n))
        if not tilt:
            return boxes
        return Boxes(boxes.centers, boxes.sizes, boxes.quaternions + rng.normal(0, 0.05, (n, 4)), boxes.ids)

    n = 2048
    return {'ground46': ground(46), 'ground2048': ground(n), 'ground2048_tilted': ground(n, tilt=True),
            'mm69': Boxes(real.centers, real.sizes * 1000, real.quaternions, real.ids),
            'huge2048': Boxes.from_yaw(rng.uniform(-50, 50, (n, 3)), rng.uniform(100, 1e4, (n, 3)),
                                       rng.uniform(-3, 3, n))}


def frame_times(points, frames: dict[str, Boxes], repeats: int, threads: int) -> dict[str, float]:
    """Median and worst wall time of run_frame (crop + shipped model on the CPU) per hostile frame."""
    import torch

    from blendclip_core.classifier import ZeroShotClassifier
    from blendclip_core.pipeline import run_frame

    torch.set_num_threads(threads)
    classifier = ZeroShotClassifier.from_checkpoint(None, device='cpu')
    res = {}
    for name, boxes in frames.items():
        run_frame(points, boxes, classifier)  # first call of a size allocates
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            frame = run_frame(points, boxes, classifier)
            ts.append((time.perf_counter() - t) * 1e3)
        res[f'frame_{name}_ms_p50'], res[f'frame_{name}_ms_max'] = float(np.median(ts)), max(ts)
        res[f'frame_{name}_encoder_points'] = int(frame.cropped.batch.counts.sum())
    res['worst_hostile_frame_ms'] = max(v for k, v in res.items() if k.endswith('_ms_max'))
    return res


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
    p.add_argument('--model', action='store_true',
                   help='also time whole hostile frames (crop + the shipped model on the CPU)')
    p.add_argument('--threads', type=int, default=1,
                   help="torch threads for --model (1: the node's advice on a small, shared CPU)")
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
    free = CropLimits.unbounded()
    res['boxes10k_ms_p50'], _ = timeit(lambda: crop_objects(points, many, limits=free), 3)
    res['boxes10k_points_in_boxes'] = int(crop_objects(points, many, limits=free).points_in_box.sum())
    res['whole_cloud_box_ms_p50'], _ = timeit(lambda: crop_objects(points, huge, limits=free), 20)
    hostile = hostile_frames(rng, real)
    for name, boxes in hostile.items():
        res[f'hostile_{name}_crop_ms_p50'], res[f'hostile_{name}_crop_ms_p99'] = timeit(
            lambda b=boxes: crop_objects(points, b), 5)
    if args.model:
        res.update(frame_times(points, hostile, 5, args.threads))
        res['frame_torch_threads'] = args.threads
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
