"""nuScenes (nuscenes-devkit) samples -> `Frame`s for `mine_frame`.

Reference frame: the key frame's LIDAR_TOP sensor frame (x right, y forward, z up). Sweeps follow the
LIDAR_TOP `prev` chain from the key frame (key frame included), like the devkit's multisweep loader;
boxes and their velocities (devkit `box_velocity`, global frame) are moved into the reference frame;
cameras are the sample's key-frame camera images with their own ego poses.
"""

from __future__ import annotations

import logging
import re
from functools import reduce
from pathlib import Path

import numpy as np

from blendclip_core.mining.objects import Annotation, CameraView, Frame, MineConfig
from blendclip_core.mining.sweeps import CorruptInputError, load_lidar_bin, stack_sweeps

logger = logging.getLogger(__name__)

LIDAR_CHANNEL = 'LIDAR_TOP'
OFFICIAL_SPLITS = ('train', 'val', 'test', 'mini_train', 'mini_val', 'train_detect', 'train_track')


class DatasetNotFoundError(FileNotFoundError):
    """The dataroot or its version folder does not exist."""


def open_nuscenes(dataroot: str | Path, version: str):
    root = Path(dataroot)
    if not (root / version).is_dir():
        raise DatasetNotFoundError(f'nuScenes tables not found: {root / version} (check --dataroot and '
                                   f'--version, e.g. v1.0-mini or v1.0-trainval)')
    from nuscenes import NuScenes

    return NuScenes(version=version, dataroot=str(root), verbose=False)


def split_scene_names(split: str) -> list[str] | None:
    """Scene names of an official split; None when `split` is not one."""
    if split not in OFFICIAL_SPLITS:
        return None
    from nuscenes.utils.splits import create_splits_scenes

    return list(create_splits_scenes()[split])


def pose_matrix(translation, rotation_wxyz, inverse: bool = False) -> np.ndarray:
    from nuscenes.utils.geometry_utils import transform_matrix
    from pyquaternion import Quaternion

    return transform_matrix(np.asarray(translation, np.float64), Quaternion(rotation_wxyz), inverse=inverse)


def _rotation(rotation_wxyz) -> np.ndarray:
    from pyquaternion import Quaternion

    q = np.asarray(rotation_wxyz, np.float64)
    if not np.isfinite(q).all() or np.linalg.norm(q) < 1e-9:
        return np.full((3, 3), np.nan)
    return Quaternion(q).rotation_matrix


VISIBILITY_BUCKETS = ((40, 1), (60, 2), (80, 3), (100, 4))  # upper bound of 'v<lo>-<hi>' -> nuScenes level


def visibility_level(db, token: str) -> int:
    """nuScenes level 1..4 of a visibility token: '1'..'4' directly, otherwise from the record's level
    string ('v80-100' -> 4), 0 when unknown (then no crop passes a --min-visibility above 0)."""
    token = str(token or '')
    if token.isdigit():
        return int(token)
    try:
        level = str(db.get('visibility', token)['level'])
        upper = int(re.findall(r'\d+', level)[-1])
    except (KeyError, IndexError, ValueError, AssertionError):
        return 0
    return next((lvl for bound, lvl in VISIBILITY_BUCKETS if upper <= bound), 0)


def scene_samples(db, scene_token: str) -> list[str]:
    tokens, tok = [], db.get('scene', scene_token)['first_sample_token']
    while tok:
        tokens.append(tok)
        tok = db.get('sample', tok)['next']
    return tokens


def load_sweeps(db, key_sd_token: str, nsweeps: int, ref_from_global: np.ndarray, ref_time_us: int,
                loader=load_lidar_bin):
    """SweepStack of up to `nsweeps` sweeps back along `prev` from a key sample_data, in the reference
    frame. A bad key file raises CorruptInputError; bad older sweeps are skipped and listed."""
    clouds, skipped = [], []
    sd = db.get('sample_data', key_sd_token)
    for i in range(nsweeps):
        path = Path(db.dataroot) / sd['filename']
        try:
            cloud = loader(path)
        except CorruptInputError as exc:
            if i == 0:
                raise
            skipped.append((exc.reason, sd['filename']))
        else:
            cs = db.get('calibrated_sensor', sd['calibrated_sensor_token'])
            pose = db.get('ego_pose', sd['ego_pose_token'])
            ref_from_sensor = reduce(np.dot, [ref_from_global,
                                              pose_matrix(pose['translation'], pose['rotation']),
                                              pose_matrix(cs['translation'], cs['rotation'])])
            clouds.append((cloud, ref_from_sensor, (ref_time_us - sd['timestamp']) * 1e-6))
        if not sd['prev']:
            break
        sd = db.get('sample_data', sd['prev'])
    return stack_sweeps(clouds, skipped)


def make_annotation(db, token: str, ref_from_global: np.ndarray, ego_from_global: np.ndarray) -> Annotation:
    rec = db.get('sample_annotation', token)
    center_g = np.asarray(rec['translation'], np.float64)
    velocity = np.asarray(db.box_velocity(token), np.float64)
    valid_v = bool(np.isfinite(velocity).all())
    w, length, h = (float(x) for x in rec['size'])
    center_ego = ego_from_global[:3, :3] @ center_g + ego_from_global[:3, 3]
    return Annotation(
        token=token, instance_token=rec['instance_token'], category=rec['category_name'],
        center=ref_from_global[:3, :3] @ center_g + ref_from_global[:3, 3],
        rotation=ref_from_global[:3, :3] @ _rotation(rec['rotation']),
        size_lwh=np.array([length, w, h]),
        velocity=ref_from_global[:3, :3] @ (velocity if valid_v else np.zeros(3)), velocity_valid=valid_v,
        attributes=tuple(db.get('attribute', a)['name'] for a in rec['attribute_tokens']),
        visibility=visibility_level(db, rec.get('visibility_token', '')),
        distance=float(np.hypot(center_ego[0], center_ego[1])),
        num_lidar_pts=int(rec.get('num_lidar_pts', -1)))


def camera_views(db, sample: dict, global_from_ref: np.ndarray) -> list[CameraView]:
    views = []
    for channel, sd_token in sorted(sample['data'].items()):
        sd = db.get('sample_data', sd_token)
        if sd.get('sensor_modality') != 'camera':
            continue
        cs = db.get('calibrated_sensor', sd['calibrated_sensor_token'])
        pose = db.get('ego_pose', sd['ego_pose_token'])
        cam_from_ref = reduce(np.dot, [pose_matrix(cs['translation'], cs['rotation'], inverse=True),
                                       pose_matrix(pose['translation'], pose['rotation'], inverse=True),
                                       global_from_ref])
        views.append(CameraView(channel, str(Path(db.dataroot) / sd['filename']),
                                np.asarray(cs['camera_intrinsic'], np.float64), cam_from_ref,
                                int(sd['width']), int(sd['height'])))
    return views


def nuscenes_frame(db, sample_token: str, config: MineConfig, scene_name: str = '') -> Frame:
    """The key frame of a sample; CorruptInputError when its LIDAR_TOP file is missing or truncated."""
    sample = db.get('sample', sample_token)
    if LIDAR_CHANNEL not in sample['data']:
        raise CorruptInputError('missing_lidar', f'sample {sample_token} has no {LIDAR_CHANNEL} key frame')
    key_sd = db.get('sample_data', sample['data'][LIDAR_CHANNEL])
    cs = db.get('calibrated_sensor', key_sd['calibrated_sensor_token'])
    pose = db.get('ego_pose', key_sd['ego_pose_token'])
    ego_from_global = pose_matrix(pose['translation'], pose['rotation'], inverse=True)
    ref_from_global = pose_matrix(cs['translation'], cs['rotation'], inverse=True) @ ego_from_global
    cloud = load_sweeps(db, key_sd['token'], config.sweeps, ref_from_global, key_sd['timestamp'])
    anns = [make_annotation(db, t, ref_from_global, ego_from_global) for t in sample['anns']]
    cameras = camera_views(db, sample, np.linalg.inv(ref_from_global))
    return Frame(sample_token, scene_name, int(sample['timestamp']), LIDAR_CHANNEL, cloud, anns, cameras)
