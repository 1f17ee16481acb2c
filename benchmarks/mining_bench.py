"""Mining throughput: annotated boxes per second, 1 and 10 LiDAR sweeps, on this machine's CPU.

    python benchmarks/mining_bench.py --out benchmarks/results/mining.json

Data: a generated nuScenes-format dataroot of real size (about 35k points per LIDAR_TOP sweep, 40 boxes
per sample, 9 sweeps between key frames as in nuScenes, two 800x450 cameras). Timed: blendclip-mine's
per-scene work in one process (read and aggregate sweeps, motion compensation, crop 40 boxes, image
crops, template captions, shard writing), the devkit's table loading excluded. Median of --repeats runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from machine import cpu_name  # benchmarks/machine.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))



def bench(root: Path, sweeps: int, repeats: int) -> tuple[float, int]:
    from blendclip_core.mining import run
    from blendclip_core.mining.objects import MineConfig

    db = run._STATE['db']
    scene = db.scene[0]
    rates, boxes = [], 0
    for r in range(repeats):
        out = root / f'out-{sweeps}-{r}'
        cfg = run.RunConfig(str(root), 'v1.0-mini', 'all', str(out), MineConfig(sweeps=sweeps))
        start = time.perf_counter()
        marker = run.mine_scene(cfg, scene['name'], scene['token'])
        elapsed = time.perf_counter() - start
        boxes = marker['objects'] + sum(marker['skipped'].values())
        rates.append(boxes / elapsed)
        shutil.rmtree(out)
    return statistics.median(rates), boxes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default=str(ROOT / 'benchmarks' / 'results' / 'mining.json'))
    p.add_argument('--samples', type=int, default=4, help='key frames timed per run')
    p.add_argument('--repeats', type=int, default=3)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from blendclip_core.mining import run
    from tests.helpers.nuscenes_dataroot import make_nuscenes_dataroot

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / 'root'
        make_nuscenes_dataroot(root, scenes=1, samples_per_scene=args.samples, sweeps_per_sample=9,
                               boxes_per_sample=40, ground_points=33000, points_per_box=(20, 80))
        run._init_worker(run.RunConfig(str(root), 'v1.0-mini', 'all', str(root / 'unused')))  # tables loaded
        one, boxes = bench(root, 1, args.repeats)
        ten, _ = bench(root, 10, args.repeats)
    record = {
        'device': f'cpu: {cpu_name()} ({os.cpu_count()} cores)',
        'date': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'results': {'mine_boxes_per_s_1sweep': round(one, 2), 'mine_boxes_per_s_10sweeps': round(ten, 2)},
        'setup': {'boxes_per_run': boxes, 'key_frames_per_run': args.samples, 'boxes_per_sample': 40,
                  'points_per_sweep': 'about 35k (33000 ground + 40 boxes x 20-80)', 'processes': 1,
                  'repeats': args.repeats, 'note': 'shared 2-core machine: other jobs may have been running'},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + '\n')
    print(json.dumps(record, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
