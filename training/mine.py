"""blendclip-mine: nuScenes / TruckScenes boxes -> (points, image crop, caption) triplet shards.

  blendclip-mine --dataroot /data/nuscenes --version v1.0-trainval --split train --out shards/train
Resumable (rerun the same command), parallel over scenes (--workers), splittable over machines
(--shard i/n). See docs/mining.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from blendclip_core.datasets.frame import CorruptInputError
from blendclip_core.mining.captioners import CaptionerError
from blendclip_core.mining.objects import MineConfig
from blendclip_core.mining.run import MiningError, RunConfig, ScenesFailedError, run_mining


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split('/'))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f'--shard must look like i/n, got {text!r}') from exc
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f'--shard {text}: need 0 <= i < n')
    return i, n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='blendclip-mine', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--dataroot', required=True, help='dataset root (holds the version folder)')
    p.add_argument('--version', default='v1.0-mini', help='table version, e.g. v1.0-mini, v1.0-trainval')
    p.add_argument('--split', default='mini_train',
                   help="train, val, mini_train, mini_val, ..., 'all', or comma-separated scene names")
    p.add_argument('--out', required=True, help='output directory for shards, index and report')
    p.add_argument('--dataset', choices=('nuscenes', 'truckscenes'), default='nuscenes')
    p.add_argument('--sweeps', type=int, default=10, help='LiDAR sweeps per key frame (key included)')
    p.add_argument('--no-motion-comp', action='store_true', help='do not move sweeps by object velocity')
    p.add_argument('--margin', type=float, default=0.0, help='metres added to every box face')
    p.add_argument('--min-visibility', type=int, default=4, help='visibility level needed for a crop (1-4)')
    p.add_argument('--min-crop-px', type=int, default=50, help='minimum crop width and height')
    p.add_argument('--min-points', type=int, default=1, help='boxes with fewer points are skipped')
    p.add_argument('--captioner', default='template',
                   help="'template', 'vlm:/path/to/model_dir', 'module:factory' (your own: the factory "
                        "returns a callable from a list of CaptionInput to a list of captions) or a name "
                        "registered in the 'blendclip.captioners' entry-point group")
    p.add_argument('--proxy', default='', metavar='DETECTOR',
                   help="proxy triplets from 2D detections, annotations ignored: 'given:boxes.json', "
                        "'hf:/path/to/owlv2_or_grounding_dino' or 'module:factory' (docs/mining.md)")
    p.add_argument('--proxy-vocabulary', default='car,truck,bus,trailer,construction vehicle,pedestrian,'
                   'motorcycle,bicycle,traffic cone,barrier', help='comma-separated texts for the detector')
    p.add_argument('--proxy-min-score', type=float, default=0.3, help='detections below are not lifted')
    p.add_argument('--workers', type=int, default=1, help='processes (scenes run in parallel)')
    p.add_argument('--shard', type=_shard, default=(0, 1), metavar='i/n',
                   help='mine only scenes i, i+n, i+2n, ... of the sorted scene list (0 <= i < n)')
    p.add_argument('--max-shard-mb', type=float, default=256.0, help='shard size bound')
    p.add_argument('--no-progress', action='store_true')
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    try:
        mine = MineConfig(dataset=args.dataset, sweeps=args.sweeps, motion_comp=not args.no_motion_comp,
                          margin=args.margin, min_visibility=args.min_visibility,
                          min_crop_px=args.min_crop_px, min_points=args.min_points, captioner=args.captioner,
                          proxy=args.proxy, proxy_vocabulary=args.proxy_vocabulary if args.proxy else '',
                          proxy_min_score=args.proxy_min_score)
        cfg = RunConfig(dataroot=args.dataroot, version=args.version, split=args.split, out=args.out,
                        mine=mine, workers=args.workers, shard_index=args.shard[0], shard_count=args.shard[1],
                        max_shard_bytes=int(args.max_shard_mb * (1 << 20)))
        index = run_mining(cfg, progress=not args.no_progress)
        failed = None
    except ScenesFailedError as exc:
        index, failed = exc.index, exc
    except (MiningError, CaptionerError, FileNotFoundError, ValueError, CorruptInputError) as exc:
        print(f'blendclip-mine: error: {exc}', file=sys.stderr)
        return 2
    keys = ('num_samples', 'scenes', 'classes', 'skipped', 'sweeps_skipped', 'images')
    summary = {k: index[k] for k in keys}
    if failed is not None:  # counted and named here; their scenes are not done, a rerun retries them
        summary['failed_scenes'] = failed.reasons or {s: '' for s in failed.scenes}
    print(json.dumps(summary, indent=1))
    print(f'index: {args.out}/index.json, report: {args.out}/report/summary.md')
    if failed is not None:
        print(f'blendclip-mine: error: {failed}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
