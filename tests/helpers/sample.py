"""Small fixtures' data shared by several test folders: the real nuScenes sweep, a tiny OpenCLIP config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from blendclip_core.geometry import Boxes

SAMPLE = Path(__file__).resolve().parents[2] / 'data' / 'nuscenes_sample'

# A random OpenCLIP small enough to build in a test (both towers, 32-d).
TINY_CLIP = {
    'embed_dim': 32,
    'vision_cfg': {'image_size': 32, 'layers': 1, 'width': 32, 'patch_size': 16, 'head_width': 16},
    'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 32, 'heads': 2, 'layers': 1},
}


def load_sweep() -> tuple[np.ndarray, Boxes, list[dict]]:
    """(points (M, 5) float32, Boxes, annotation objects) of the real LIDAR_TOP sweep (69 boxes)."""
    meta = json.loads((SAMPLE / 'annotations_lidar.json').read_text())
    points = np.fromfile(SAMPLE / meta['lidar_file'], dtype=np.float32).reshape(-1, 5)
    objects = meta['objects']
    boxes = Boxes.from_yaw([o['center_xyz'] for o in objects], [o['size_lwh'] for o in objects],
                           [o['yaw'] for o in objects], ids=[str(o['index']) for o in objects],
                           frame_id='LIDAR_TOP')
    return points, boxes, objects
