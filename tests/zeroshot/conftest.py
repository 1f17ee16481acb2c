"""Fixtures of the zero-shot tests: the real nuScenes sweep and a brute-force box test."""

import json
from pathlib import Path

import numpy as np
import pytest

from blendclip_core.geometry import Boxes

SAMPLE = Path(__file__).resolve().parents[2] / 'data' / 'nuscenes_sample'


@pytest.fixture(scope='session')
def nuscenes_sweep():
    """(points (M, 5) float32, Boxes, annotation objects) of the real LIDAR_TOP sweep."""
    meta = json.loads((SAMPLE / 'annotations_lidar.json').read_text())
    points = np.fromfile(SAMPLE / meta['lidar_file'], dtype=np.float32).reshape(-1, 5)
    objects = meta['objects']
    boxes = Boxes.from_yaw([o['center_xyz'] for o in objects], [o['size_lwh'] for o in objects],
                           [o['yaw'] for o in objects], ids=[str(o['index']) for o in objects],
                           frame_id='LIDAR_TOP')
    return points, boxes, objects
