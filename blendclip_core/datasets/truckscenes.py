"""MAN TruckScenes (truckscenes-devkit): six LiDARs' .pcd sweeps fused, the 12 classes, official splits.

The default reference is the ego (truck chassis) frame at the sample's time (the ego pose closest to
it): every LiDAR of the sample contributes its key sweep and earlier ones, each moved there through its
own calibration and ego pose. A sample is unreadable only when none of its LiDARs' key files can be
read. Points are read with pypcd4 (a truckscenes-devkit dependency).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from blendclip_core.datasets import devkit
from blendclip_core.datasets.frame import CorruptInputError, Frame

OFFICIAL_SPLITS = ('train', 'val', 'test', 'mini_train', 'mini_val', 'train_detect', 'train_track')


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


def category_to_class(category: str) -> str | None:
    from truckscenes.eval.detection.utils import category_to_detection_name

    return category_to_detection_name(category)


FORMAT = devkit.Format('truckscenes', 'TruckScenes', load_pcd, category_to_class, (), 'ego')


def open_db(dataroot: str | Path, version: str):
    root = devkit.check_dataroot(dataroot, version, FORMAT.title)
    from truckscenes import TruckScenes

    with warnings.catch_warnings():  # the devkit warns about its optional visualisation extras
        warnings.simplefilter('ignore')
        return TruckScenes(version=version, dataroot=str(root), verbose=False)


def split_scene_names(split: str) -> list[str] | None:
    if split not in OFFICIAL_SPLITS:
        return None
    from truckscenes.utils.splits import create_splits_scenes

    return list(create_splits_scenes()[split])


def read_frame(db, sample_token: str, sweeps: int = 1, scene: str = '', **kwargs) -> Frame:
    """See `devkit.read_frame`."""
    return devkit.read_frame(db, FORMAT, sample_token, sweeps, scene, **kwargs)
