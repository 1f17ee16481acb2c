"""Frames from nuScenes-schema tables (nuscenes-devkit, truckscenes-devkit): what both formats share.

Sweeps follow each LiDAR's `prev` chain from the key frame (key frame included), like the devkit's
multisweep loader, and are read as stored with their transform into the reference: the reference
LiDAR at its key time (`reference='lidar'`), or the ego at the sample's time (`reference='ego'`, the
ego pose closest to it). Boxes and their velocities (devkit `box_velocity`, global frame) are moved
into the reference; cameras are the sample's key-frame images with their own ego poses.
"""

from __future__ import annotations

import importlib
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blendclip_core.datasets.frame import (
    Annotation,
    Camera,
    CorruptInputError,
    DatasetNotFoundError,
    Frame,
    Rigid,
    Sweep,
)
from blendclip_core.geometry import Boxes

REFERENCES = ('lidar', 'ego')
OFFICIAL_SPLITS = ('train', 'val', 'test', 'mini_train', 'mini_val', 'train_detect', 'train_track')
VISIBILITY_BUCKETS = ((40, 1), (60, 2), (80, 3), (100, 4))  # upper bound of 'v<lo>-<hi>' -> nuScenes level


@dataclass(frozen=True)
class Format:
    """A nuScenes-schema dataset: what differs between them, and its reader (open, splits, frames)."""

    name: str  # 'nuscenes', 'truckscenes'
    title: str  # for messages
    devkit: str  # the devkit's package: 'nuscenes', 'truckscenes'
    devkit_class: str  # its database class: 'NuScenes', 'TruckScenes'
    read_points: Callable[[Path], np.ndarray]  # file -> float32 (N, C), x, y, z, intensity first
    lidar_channels: tuple[str, ...]  # () = every LiDAR of the sample, sorted
    reference: str  # the default reference: 'lidar' (the first channel) or 'ego'

    def open_db(self, dataroot: str | Path, version: str):
        root = Path(dataroot)
        if not (root / version).is_dir():
            raise DatasetNotFoundError(
                f'{self.title} tables not found: {root / version} ({root} has no table folder {version!r}; '
                'check --dataroot and --version, e.g. v1.0-mini or v1.0-trainval)')
        database = getattr(importlib.import_module(self.devkit), self.devkit_class)
        with warnings.catch_warnings():  # truckscenes-devkit warns about its optional visualisation extras
            warnings.simplefilter('ignore')
            return database(version=version, dataroot=str(root), verbose=False)

    def split_scene_names(self, split: str) -> list[str] | None:
        """Scene names of an official split; None when `split` is not one."""
        if split not in OFFICIAL_SPLITS:
            return None
        return list(importlib.import_module(f'{self.devkit}.utils.splits').create_splits_scenes()[split])

    def category_to_class(self, category: str) -> str | None:
        """The devkit's fine category -> detection benchmark class (None outside them)."""
        utils = importlib.import_module(f'{self.devkit}.eval.detection.utils')
        return utils.category_to_detection_name(category)

    def read_frame(self, db, sample_token: str, sweeps: int = 1, scene: str = '', **kwargs) -> Frame:
        """See `read_frame`."""
        return read_frame(db, self, sample_token, sweeps, scene, **kwargs)


def scene_samples(db, scene_token: str) -> list[str]:
    tokens, tok = [], db.get('scene', scene_token)['first_sample_token']
    while tok:
        tokens.append(tok)
        tok = db.get('sample', tok)['next']
    return tokens


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


def _ego_pose(db, sd: dict) -> Rigid:
    token = sd.get('ego_pose_token')
    pose = db.get('ego_pose', token) if token else db.getclosest('ego_pose', sd['timestamp'])
    return Rigid.from_wxyz(pose['translation'], pose['rotation'])


def _sensor_pose(db, sd: dict) -> Rigid:
    cs = db.get('calibrated_sensor', sd['calibrated_sensor_token'])
    return Rigid.from_wxyz(cs['translation'], cs['rotation'])


def lidar_channels(fmt: Format, sample: dict, channels: tuple[str, ...] = ()) -> list[str]:
    channels = tuple(channels) or fmt.lidar_channels
    if channels:
        missing = [c for c in channels if c not in sample['data']]
        if missing:
            raise CorruptInputError('missing_lidar', f'sample {sample["token"]} has no {missing}; '
                                                     f'it has {sorted(sample["data"])}')
        return list(channels)
    return sorted(c for c in sample['data'] if c.startswith('LIDAR'))


@dataclass(frozen=True)
class _Reference:
    name: str
    global_to_ref: Rigid
    reference_to_ego: Rigid
    ego_to_global: Rigid
    time_us: int


def _reference(db, sample: dict, channels: list[str], reference: str) -> _Reference:
    if reference == 'ego':
        pose = db.getclosest('ego_pose', sample['timestamp'])
        ego_to_global = Rigid.from_wxyz(pose['translation'], pose['rotation'])
        return _Reference('ego', ego_to_global.inverse(), Rigid.identity(), ego_to_global,
                          int(sample['timestamp']))
    if not channels:
        raise CorruptInputError('missing_lidar', f'sample {sample["token"]} has no LiDAR')
    ref_sd = db.get('sample_data', sample['data'][channels[0]])
    lidar_to_ego, ego_to_global = _sensor_pose(db, ref_sd), _ego_pose(db, ref_sd)
    return _Reference(channels[0], (ego_to_global @ lidar_to_ego).inverse(), lidar_to_ego, ego_to_global,
                      int(ref_sd['timestamp']))


def read_sweeps(db, fmt: Format, sample: dict, channels: list[str], nsweeps: int,
                ref: _Reference) -> tuple[list[Sweep], list[tuple[str, str]]]:
    """Up to `nsweeps` sweeps of every channel back along `prev`, and (reason, file) of unreadable ones.
    The reference LiDAR's key file must be readable (its error is raised); with the ego as reference,
    at least one key file."""
    sweeps, skipped = [], []
    for channel in channels:
        sd = db.get('sample_data', sample['data'][channel])
        for k in range(nsweeps):
            try:
                points = fmt.read_points(Path(db.dataroot) / sd['filename'])
            except CorruptInputError as exc:
                if ref.name == channel and not k:
                    raise
                skipped.append((exc.reason, sd['filename']))
            else:
                to_ref = ref.global_to_ref @ _ego_pose(db, sd) @ _sensor_pose(db, sd)
                sweeps.append(Sweep(channel, points, to_ref, (ref.time_us - sd['timestamp']) * 1e-6,
                                    sd['filename'], not k))
            if not sd['prev']:
                break
            sd = db.get('sample_data', sd['prev'])
    if not any(s.key for s in sweeps):
        reasons = {r for r, _ in skipped} or {'missing_lidar'}
        raise CorruptInputError(sorted(reasons)[0], f'sample {sample["token"]}: no LiDAR key frame readable')
    return sweeps, skipped


def read_annotations(db, fmt: Format, sample: dict, ref: _Reference) -> tuple[Annotation, ...]:
    records = [db.get('sample_annotation', t) for t in sample['anns']]
    if not records:
        return ()
    centers = np.array([a['translation'] for a in records], dtype=np.float64)
    wlh = np.array([a['size'] for a in records], dtype=np.float64)
    quats = np.array([np.roll(np.asarray(a['rotation'], np.float64), -1) for a in records])  # wxyz -> xyzw
    boxes = Boxes(centers, wlh[:, [1, 0, 2]], quats, tuple(a['token'] for a in records), 'map')
    boxes = boxes.transformed(ref.global_to_ref.rotation, ref.global_to_ref.translation, ref.name)
    center_ego = ref.ego_to_global.inverse().apply(centers)
    out = []
    for i, rec in enumerate(records):
        velocity = np.asarray(db.box_velocity(rec['token']), np.float64)
        valid_v = bool(np.isfinite(velocity).all())
        out.append(Annotation(
            token=rec['token'], category=rec['category_name'],
            detection_class=fmt.category_to_class(rec['category_name']) or '',
            center=boxes.centers[i], quaternion=boxes.quaternions[i], size_lwh=boxes.sizes[i],
            velocity=ref.global_to_ref.rotation @ (velocity if valid_v else np.zeros(3)),
            velocity_valid=valid_v, instance_token=rec['instance_token'],
            attributes=tuple(db.get('attribute', a)['name'] for a in rec['attribute_tokens']),
            visibility=visibility_level(db, rec.get('visibility_token', '')),
            distance=float(np.hypot(center_ego[i, 0], center_ego[i, 1])),
            num_lidar_pts=int(rec.get('num_lidar_pts', -1))))
    return tuple(out)


def read_cameras(db, sample: dict, ref: _Reference, images: bool) -> tuple[Camera, ...]:
    """The sample's key-frame cameras (JPEG bytes read only with `images`)."""
    ref_to_global = ref.global_to_ref.inverse()
    cameras = []
    for channel, sd_token in sorted(sample['data'].items()):
        sd = db.get('sample_data', sd_token)
        if sd.get('sensor_modality') != 'camera':
            continue
        cs = db.get('calibrated_sensor', sd['calibrated_sensor_token'])
        cam_to_ego, ego_to_global = _sensor_pose(db, sd), _ego_pose(db, sd)
        path = Path(db.dataroot) / sd['filename']
        cameras.append(Camera(channel, path, int(sd['timestamp']) * 1000,
                              np.asarray(cs['camera_intrinsic'], np.float64),
                              ((ego_to_global @ cam_to_ego).inverse() @ ref_to_global).matrix, cam_to_ego,
                              ego_to_global, int(sd['width']), int(sd['height']),
                              path.read_bytes() if images else b''))
    return tuple(cameras)


def read_frame(db, fmt: Format, sample_token: str, sweeps: int = 1, scene: str = '',
               reference: str | None = None, channels: tuple[str, ...] = (), cameras: bool = True,
               images: bool = False) -> Frame:
    """The frame of one sample; CorruptInputError when its LiDAR key file cannot be read (see
    `read_sweeps`). `reference`: 'lidar' (the first channel) or 'ego'; None: the format's."""
    reference = reference or fmt.reference
    if reference not in REFERENCES:
        raise ValueError(f'reference must be one of {REFERENCES}, got {reference!r}')
    if sweeps < 1:
        raise ValueError(f'sweeps must be >= 1, got {sweeps}')
    sample = db.get('sample', sample_token)
    chans = lidar_channels(fmt, sample, channels)
    ref = _reference(db, sample, chans, reference)
    clouds, skipped = read_sweeps(db, fmt, sample, chans, sweeps, ref)
    anns = read_annotations(db, fmt, sample, ref)
    cams = read_cameras(db, sample, ref, images) if cameras else ()
    return Frame(fmt.name, sample_token, scene, int(sample['timestamp']), ref.time_us * 1000, ref.name,
                 ref.reference_to_ego, ref.ego_to_global, tuple(clouds), anns, cams, tuple(skipped))
