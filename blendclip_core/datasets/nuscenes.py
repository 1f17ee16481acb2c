"""nuScenes (nuscenes-devkit): LIDAR_TOP .pcd.bin sweeps, the 10 detection classes, official splits.

The reference is the key frame's LIDAR_TOP sensor frame (x right, y forward, z up).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blendclip_core.datasets import devkit
from blendclip_core.datasets.frame import CorruptInputError, Frame

LIDAR_CHANNEL = 'LIDAR_TOP'
LIDAR_BIN_DIMS = 5  # nuScenes .pcd.bin: float32 x, y, z, intensity, ring
OFFICIAL_SPLITS = ('train', 'val', 'test', 'mini_train', 'mini_val', 'train_detect', 'train_track')


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


def category_to_class(category: str) -> str | None:
    from nuscenes.eval.detection.utils import category_to_detection_name

    return category_to_detection_name(category)


FORMAT = devkit.Format('nuscenes', 'nuScenes', load_lidar_bin, category_to_class, (LIDAR_CHANNEL,), 'lidar')


def open_db(dataroot: str | Path, version: str):
    root = devkit.check_dataroot(dataroot, version, FORMAT.title)
    from nuscenes import NuScenes

    return NuScenes(version=version, dataroot=str(root), verbose=False)


def split_scene_names(split: str) -> list[str] | None:
    """Scene names of an official split; None when `split` is not one."""
    if split not in OFFICIAL_SPLITS:
        return None
    from nuscenes.utils.splits import create_splits_scenes

    return list(create_splits_scenes()[split])


def read_frame(db, sample_token: str, sweeps: int = 1, scene: str = '', **kwargs) -> Frame:
    """See `devkit.read_frame`."""
    return devkit.read_frame(db, FORMAT, sample_token, sweeps, scene, **kwargs)
