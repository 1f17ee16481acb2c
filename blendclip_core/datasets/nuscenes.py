"""nuScenes (nuscenes-devkit): LIDAR_TOP .pcd.bin sweeps, the 10 detection classes, official splits.

The reference is the key frame's LIDAR_TOP sensor frame (x right, y forward, z up).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blendclip_core.datasets.devkit import Format
from blendclip_core.datasets.frame import CorruptInputError

LIDAR_CHANNEL = 'LIDAR_TOP'
LIDAR_BIN_DIMS = 5  # nuScenes .pcd.bin: float32 x, y, z, intensity, ring


def load_lidar_bin(path: Path | str, dims: int = LIDAR_BIN_DIMS) -> np.ndarray:
    """(N, dims) float32 points of a raw float32 LiDAR file; CorruptInputError if missing or truncated
    (a file cut mid-float is rejected, not silently shortened to whole points)."""
    path = Path(path)
    if not path.is_file():
        raise CorruptInputError('missing_lidar', f'LiDAR file missing: {path}')
    size = path.stat().st_size
    if size == 0 or size % (4 * dims):
        raise CorruptInputError('corrupt_lidar', f'LiDAR file {path} has {size} bytes, not a multiple of '
                                                 f'{4 * dims} (truncated or not {dims} float32 per point)')
    return np.fromfile(path, dtype=np.float32).reshape(-1, dims)


NUSCENES = Format('nuscenes', 'nuScenes', 'nuscenes', 'NuScenes', load_lidar_bin, (LIDAR_CHANNEL,), 'lidar')
