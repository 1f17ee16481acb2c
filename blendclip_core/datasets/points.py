"""Point files by suffix: the one table of which reader reads which file, for the labelled-frame
readers and `blendclip-label-frames`. Apart from files.py so that the format modules it names (AV2,
PCD) can import files.py without an import cycle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from blendclip_core.datasets import av2, pcd
from blendclip_core.datasets.files import KITTI_BIN_DIMS, NUSCENES_BIN_DIMS, UnknownFormatError, load_npy
from blendclip_core.datasets.frame import CorruptInputError
from blendclip_core.datasets.nuscenes import load_lidar_bin


def _points_reader(path: Path) -> Callable[[Path], np.ndarray] | None:
    name = path.name.lower()
    readers = (('.pcd.bin', lambda p: load_lidar_bin(p, NUSCENES_BIN_DIMS)),
               ('.bin', lambda p: load_lidar_bin(p, KITTI_BIN_DIMS)), ('.npy', load_npy),
               ('.pcd', pcd.load_pcd), ('.feather', av2.load_feather_points))
    return next((read for suffix, read in readers if name.endswith(suffix)), None)


POINT_SUFFIXES = '.pcd.bin (nuScenes, 5 floats), .bin (KITTI, 4 floats), .npy, .pcd, .feather (AV2)'


def read_points(path: str | Path) -> np.ndarray:
    """float32 (N, >= 4) points of a file, its format from the suffix (POINT_SUFFIXES)."""
    path = Path(path)
    reader = _points_reader(path)
    if reader is None:
        raise UnknownFormatError(f'{path}: unknown points format; expected {POINT_SUFFIXES}')
    if not path.is_file():
        raise CorruptInputError('missing_lidar', f'points file missing: {path}')
    return reader(path)
