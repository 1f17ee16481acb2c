"""MAN TruckScenes (truckscenes-devkit) samples -> `Frame`s for `mine_frame`.

Reference frame: the ego (truck chassis) frame at the sample's timestamp (ego pose closest to it). Every
LiDAR of the sample (six on the truck) contributes its key sweep and up to `sweeps - 1` earlier ones
(its own `prev` chain), each moved into the reference frame through its own calibration and ego pose:
all LiDARs fused. Each (LiDAR, sweep) keeps its own time lag, so per-object motion compensation works as
for nuScenes. Point files are .pcd (read with the devkit's reader); labels use the 12-class mapping.
A sample is skipped only when none of its LiDARs' key files can be read; unreadable single files are
counted like unreadable older sweeps.
"""

from __future__ import annotations

import logging
from functools import reduce
from pathlib import Path

import numpy as np

from blendclip_core.mining.nuscenes import (
    DatasetNotFoundError,
    camera_views,
    make_annotation,
    pose_matrix,
)
from blendclip_core.mining.objects import Frame, MineConfig
from blendclip_core.mining.sweeps import CorruptInputError, stack_sweeps

logger = logging.getLogger(__name__)

OFFICIAL_SPLITS = ('train', 'val', 'test', 'mini_train', 'mini_val', 'train_detect', 'train_track')


def open_truckscenes(dataroot: str | Path, version: str):
    root = Path(dataroot)
    if not (root / version).is_dir():
        raise DatasetNotFoundError(f'TruckScenes tables not found: {root / version} (check --dataroot and '
                                   f'--version, e.g. v1.0-mini or v1.0-trainval)')
    import warnings

    from truckscenes import TruckScenes

    with warnings.catch_warnings():  # the devkit warns about its optional visualisation extras
        warnings.simplefilter('ignore')
        return TruckScenes(version=version, dataroot=str(root), verbose=False)


def split_scene_names(split: str) -> list[str] | None:
    if split not in OFFICIAL_SPLITS:
        return None
    from truckscenes.utils.splits import create_splits_scenes

    return list(create_splits_scenes()[split])


def load_pcd(path: Path) -> np.ndarray:
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


def _pose_of(db, sd: dict) -> dict:
    token = sd.get('ego_pose_token')
    return db.get('ego_pose', token) if token else db.getclosest('ego_pose', sd['timestamp'])


def truckscenes_frame(db, sample_token: str, config: MineConfig, scene_name: str = '') -> Frame:
    sample = db.get('sample', sample_token)
    ref_pose = db.getclosest('ego_pose', sample['timestamp'])
    ref_from_global = pose_matrix(ref_pose['translation'], ref_pose['rotation'], inverse=True)
    clouds, skipped, keys_read = [], [], 0
    lidars = sorted(c for c, t in sample['data'].items()
                    if db.get('sample_data', t)['sensor_modality'] == 'lidar')
    for channel in lidars:
        sd = db.get('sample_data', sample['data'][channel])
        for i in range(config.sweeps):
            try:
                cloud = load_pcd(Path(db.dataroot) / sd['filename'])
            except CorruptInputError as exc:
                skipped.append((exc.reason, sd['filename']))
            else:
                keys_read += i == 0
                cs = db.get('calibrated_sensor', sd['calibrated_sensor_token'])
                pose = _pose_of(db, sd)
                ref_from_sensor = reduce(np.dot, [ref_from_global,
                                                  pose_matrix(pose['translation'], pose['rotation']),
                                                  pose_matrix(cs['translation'], cs['rotation'])])
                clouds.append((cloud, ref_from_sensor, (sample['timestamp'] - sd['timestamp']) * 1e-6))
            if not sd['prev']:
                break
            sd = db.get('sample_data', sd['prev'])
    if keys_read == 0:
        reasons = {r for r, _ in skipped} or {'missing_lidar'}
        raise CorruptInputError(sorted(reasons)[0], f'sample {sample_token}: no LiDAR key frame readable')
    cloud = stack_sweeps(clouds, skipped)
    anns = [make_annotation(db, t, ref_from_global, ref_from_global) for t in sample['anns']]
    cameras = camera_views(db, sample, np.linalg.inv(ref_from_global))
    return Frame(sample_token, scene_name, int(sample['timestamp']), 'ego', cloud, anns, cameras)
