"""Bag tools throughput: nuScenes -> bag conversion and offline labelling, frames per second.

    python benchmarks/bags_bench.py --out benchmarks/results/bags.json [--checkpoint model.pt]

Conversion: a generated nuScenes-format dataroot with real-sweep-sized frames (about 35k points, like
one LIDAR_TOP sweep) converted to mcap v9, without and with the two cameras; and the real keyframe
of data/nuscenes_sample (seconds for its whole one-frame bag, setup included). Offline labelling:
blendclip-label-bag's frame loop (deserialise, pair, crop, encode, classify, build and serialise
labels + markers, write), model loading excluded, with the packaged default model when there is
one, else an untrained tiny PointBERT (the record's setup.model says which). Median of --repeats runs.
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
sys.path.insert(0, str(ROOT / 'tests'))
sys.path.insert(0, str(ROOT / 'tests' / 'bags'))

log = logging.getLogger('bags_bench')


def device_name(device: str) -> str:
    import torch
    if device.startswith('cuda') and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f'CPU: {cpu_name()}, {torch.get_num_threads()} torch threads'



def bench_convert(work: Path, frames: int, repeats: int, cameras: bool) -> float:
    from helpers.nuscenes_dataroot import make_nuscenes_dataroot

    from blendclip_ros.bag.nuscenes2bag import ConvertConfig, convert
    from blendclip_ros.bag.sources import DevkitSource
    root = work / f'dataroot_{cameras}'
    if not root.exists():
        make_nuscenes_dataroot(root, scenes=1, samples_per_scene=frames, sweeps_per_sample=0,
                               ground_points=34000, points_per_box=(50, 400), image_size=(1600, 900),
                               write_images=cameras)
    rates = []
    for i in range(repeats):
        out = work / f'conv_{cameras}_{i}'
        source = DevkitSource.open('nuscenes', root, 'v1.0-mini', cameras=cameras)
        t0 = time.perf_counter()
        summary = convert(source, out, ConvertConfig(cameras=cameras), progress=False)
        rates.append(summary.frames / (time.perf_counter() - t0))
        shutil.rmtree(out)
    return statistics.median(rates)


def bench_convert_sample(work: Path, repeats: int) -> float:
    """Seconds for the whole one-frame bag of the real sample (typestore, open, write, close)."""
    from blendclip_ros.bag.nuscenes2bag import convert
    from blendclip_ros.bag.sources import SampleDirSource
    times = []
    for i in range(max(repeats, 5)):
        out = work / f'sample_{i}'
        t0 = time.perf_counter()
        convert(SampleDirSource(ROOT / 'data' / 'nuscenes_sample'), out, progress=False)
        times.append(time.perf_counter() - t0)
        shutil.rmtree(out)
    return statistics.median(times)


def bench_label(work: Path, repeats: int, checkpoint: str | None, device: str) -> tuple[float, str]:
    from blendclip_core.checkpoint import default_checkpoint_path
    from blendclip_core.vocabulary import NUSCENES_10, NUSCENES_EVAL_TEMPLATES
    from blendclip_ros.bag.label_bag import DEFAULT_PARAMS_FILE, OfflineLabeller, label_bag, node_params
    from blendclip_ros.bag.nuscenes2bag import convert
    from blendclip_ros.bag.sources import DevkitSource
    checkpoint = checkpoint or (str(default_checkpoint_path()) if default_checkpoint_path() else None)
    overrides = {'device': device}
    if checkpoint is None:
        from bag_test_utils import make_tiny_checkpoint
        checkpoint = str(make_tiny_checkpoint(work / 'tiny.pt', NUSCENES_10, NUSCENES_EVAL_TEMPLATES))
        overrides.update(vocabulary=list(NUSCENES_10), prompt_templates=list(NUSCENES_EVAL_TEMPLATES))
    overrides['checkpoint'] = checkpoint
    params = node_params(DEFAULT_PARAMS_FILE, overrides)
    src = work / 'label_src'
    if not src.exists():
        convert(DevkitSource.open('nuscenes', work / 'dataroot_False', 'v1.0-mini'), src, progress=False)
    labeller = OfflineLabeller(params)
    rates = []
    for i in range(repeats):
        out = work / f'labelled_{i}'
        stats = label_bag(src, out, params, progress=False, labeller=labeller)
        rates.append(stats.frames_per_s)
        shutil.rmtree(out)
    return statistics.median(rates), labeller.describe()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', type=Path, default=ROOT / 'benchmarks' / 'results' / 'bags.json')
    p.add_argument('--frames', type=int, default=10)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--checkpoint', help='model to label with (default: packaged default, else tiny)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=2)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix='bags_bench_') as tmp:
        work = Path(tmp)
        results = {
            'convert_frames_per_s': bench_convert(work, args.frames, args.repeats, cameras=False),
            'convert_with_cameras_frames_per_s': bench_convert(work, args.frames, args.repeats, cameras=True),
            'convert_real_sample_bag_s': bench_convert_sample(work, args.repeats),
        }
        results['label_bag_frames_per_s'], model = bench_label(work, args.repeats, args.checkpoint,
                                                               args.device)
    date = datetime.now(timezone.utc).isoformat(timespec='seconds')
    record = {'device': device_name(args.device), 'date': date,
              'results': {k: round(v, 3) for k, v in results.items()},
              'setup': {'frames': args.frames,
                        'points_per_frame': 'about 35k (34000 ground + 8 boxes x 50-400)',
                        'storage': 'mcap, rosbag2 v9', 'model': model, 'repeats': args.repeats,
                        'load_average_1m_at_end': round(os.getloadavg()[0], 2),
                        'cpus': os.cpu_count()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + '\n')
    print(json.dumps(record, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
