"""blendclip-label-frames: label your own sensor's boxes from files, no ROS bag needed.

  blendclip-label-frames cloud.pcd boxes.json --out labelled/
  blendclip-label-frames data/nuscenes_sample --vocabulary nuscenes

POINTS: a points file (.pcd ascii/binary, .npy, .bin KITTI, .pcd.bin nuScenes, .feather AV2) or a
labelled folder/file (KITTI object folder or info .pkl, AV2 sweeps, the nuScenes sample). BOXES: a
JSON list [{"center": [x, y, z], "size": [l, w, h], "yaw": r} (or "quaternion": [x, y, z, w]), optional
"label" and "id"], a KITTI label_2 .txt (calib from ../calib/) or an AV2 annotations JSON, in the
points' frame. Prints a table and writes OUT/labels.json and OUT/<frame>_bev.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from blendclip_core.depth_views import CLASSIFIERS

    p = argparse.ArgumentParser(prog='blendclip-label-frames', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('points', type=Path, help='points file, or a labelled folder/file alone')
    p.add_argument('boxes', type=Path, nargs='?', help='boxes file (in the points frame)')
    p.add_argument('--checkpoint', help='point-encoder checkpoint (default: the shipped model)')
    p.add_argument('--vocabulary', help='nuscenes, driving (default), truckscenes, or "label a,label b"')
    p.add_argument('--out', type=Path, default=Path('labelled_frames'), help='folder for JSON and PNGs')
    p.add_argument('--device', default='auto')
    p.add_argument('--classifier', choices=CLASSIFIERS, default='points',
                   help='points (the point encoder), depth_views (OpenCLIP on depth renders) or both')
    p.add_argument('--depth-space', help="the depth views' OpenCLIP model, openclip:<model>:<weights file or "
                   "tag> (default: ViT-B-16 DataComp)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from blendclip_core.label_frames import format_table, label_files
    try:
        rows = label_files(args.points, args.boxes, args.out, args.checkpoint, args.vocabulary, args.device,
                           args.classifier, args.depth_space)
    except (OSError, ValueError) as exc:  # unknown, missing or broken files; a bad vocabulary
        print(f'blendclip-label-frames: {exc}', file=sys.stderr)
        return 2
    print(format_table(rows))
    print(f'wrote {args.out / "labels.json"} and bird\'s-eye PNGs', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
