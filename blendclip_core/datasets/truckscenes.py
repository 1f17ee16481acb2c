"""MAN TruckScenes (truckscenes-devkit): six LiDARs' .pcd sweeps fused, the 12 classes, official splits.

The default reference is the ego (truck chassis) frame at the sample's time (the ego pose closest to
it): every LiDAR of the sample contributes its key sweep and earlier ones, each moved there through its
own calibration and ego pose. A sample is unreadable only when none of its LiDARs' key files can be
read. Points are read with pypcd4 (a truckscenes-devkit dependency).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blendclip_core.datasets.devkit import Format
from blendclip_core.datasets.frame import CorruptInputError


def load_pcd(path: Path | str) -> np.ndarray:
    """(N, 4) float32 x, y, z, intensity of a TruckScenes .pcd; CorruptInputError if missing or bad."""
    path = Path(path)
    if not path.is_file():
        raise CorruptInputError('missing_lidar', f'LiDAR file missing: {path}')
    import pypcd4

    try:
        data = pypcd4.PointCloud.from_path(path).pc_data
        return np.column_stack([data['x'], data['y'], data['z'], data['intensity']]).astype(np.float32)
    except Exception as exc:  # pypcd4 raises several types for broken files
        raise CorruptInputError('corrupt_lidar', f'LiDAR file {path} unreadable: {exc}') from exc


TRUCKSCENES = Format('truckscenes', 'TruckScenes', 'truckscenes', 'TruckScenes', load_pcd, (), 'ego')
