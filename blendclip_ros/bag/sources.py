"""Frames to write into a bag, read from a nuScenes/TruckScenes dataroot or the single-sweep sample.

A `Frame` is everything one LiDAR keyframe contributes to a bag: the cloud as the sensor wrote it,
ground-truth boxes in the LiDAR frame with their classes, the rig calibration and the ego pose, and
optionally the camera images of the same sample. Sources only read; nuscenes2bag writes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blendclip_core.geometry import Boxes, matrix_to_quaternion, quaternion_to_matrix
from blendclip_core.mining.sweeps import CorruptInputError, load_lidar_bin

log = logging.getLogger(__name__)

# nuScenes .pcd.bin layout: 5 float32 per point; ring is an integer stored as float, published as uint16.
NUSCENES_BIN_COLUMNS = 5
CLOUD_FIELDS = (('x', np.float32), ('y', np.float32), ('z', np.float32), ('intensity', np.float32),
                ('ring', np.uint16))
SWEEP_TIME_FIELD = ('time', np.float32)  # seconds the point's sweep is older than the keyframe
CAMERA_PREFIX = 'CAM_'


class SourceError(ValueError):
    """A dataroot or sample directory that cannot be read as asked (missing scene, file, channel)."""


@dataclass(frozen=True)
class Rigid:
    """p_parent = rotation @ p_child + translation."""

    rotation: np.ndarray
    translation: np.ndarray

    @classmethod
    def from_matrix(cls, m) -> Rigid:
        m = np.asarray(m, dtype=np.float64)
        return cls(m[:3, :3], m[:3, 3])

    @classmethod
    def from_wxyz(cls, translation, rotation_wxyz) -> Rigid:
        """nuScenes calibrated_sensor / ego_pose records (quaternion w, x, y, z)."""
        w, x, y, z = np.asarray(rotation_wxyz, dtype=np.float64)
        return cls(quaternion_to_matrix(np.array([[x, y, z, w]]))[0], np.asarray(translation, np.float64))

    @property
    def matrix(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = self.rotation, self.translation
        return m

    @property
    def quaternion_xyzw(self) -> np.ndarray:
        return matrix_to_quaternion(self.rotation[None])[0]

    def inverse(self) -> Rigid:
        return Rigid(self.rotation.T, -self.rotation.T @ self.translation)

    def __matmul__(self, other: Rigid) -> Rigid:
        return Rigid(self.rotation @ other.rotation, self.rotation @ other.translation + self.translation)


@dataclass(frozen=True)
class CameraFrame:
    channel: str
    stamp_ns: int
    jpeg: bytes
    camera_to_ego: Rigid
    intrinsics: np.ndarray  # (3, 3)
    ego_to_global: Rigid | None = None  # ego pose at the camera's own timestamp, when known


@dataclass(frozen=True)
class Frame:
    """One LiDAR keyframe. gt_boxes are in `lidar_frame`; ids are annotation tokens (or indices);
    gt_classes are benchmark classes ('' outside them); gt_boxes.detector_labels hold the fine category
    ('' where the source has none)."""

    sample_token: str
    stamp_ns: int
    lidar_frame: str
    points: np.ndarray  # structured: CLOUD_FIELDS (+ SWEEP_TIME_FIELD when sweeps are accumulated)
    gt_boxes: Boxes
    gt_classes: tuple[str, ...]
    gt_num_points: np.ndarray  # the dataset's own count of LiDAR points per box
    lidar_to_ego: Rigid
    ego_to_global: Rigid
    scene: str = ''
    cameras: tuple[CameraFrame, ...] = field(default=())


def stamp_from_filename(name: str) -> int | None:
    """nuScenes file names end in the microsecond timestamp: '...__LIDAR_TOP__1532402927647951.pcd.bin'."""
    stem = Path(name).name.split('.')[0]
    tail = stem.rsplit('__', 1)[-1]
    return int(tail) * 1000 if tail.isdigit() else None


def read_nuscenes_bin(path: Path) -> np.ndarray:
    """x, y, z, intensity as stored (bit-exact) and ring as uint16. A missing, empty or truncated file
    raises the miner's CorruptInputError: its check on the byte size (a file cut mid-float is not
    silently shortened to whole points), so the converter and the miner reject the same files."""
    raw = load_lidar_bin(path, NUSCENES_BIN_COLUMNS)
    out = np.empty(len(raw), dtype=list(CLOUD_FIELDS))
    for i, (name, _) in enumerate(CLOUD_FIELDS[:4]):
        out[name] = raw[:, i]
    out['ring'] = raw[:, 4].astype(np.uint16)
    return out


def read_truckscenes_pcd(path: Path) -> np.ndarray:
    """TruckScenes .pcd (x, y, z, intensity, timestamp); no ring, published as 0."""
    import pypcd4  # only TruckScenes needs it (a truckscenes-devkit dependency)
    data = pypcd4.PointCloud.from_path(str(path)).pc_data
    out = np.zeros(len(data), dtype=list(CLOUD_FIELDS))
    for name in ('x', 'y', 'z', 'intensity'):
        out[name] = data[name]
    return out


def _transform_points(points: np.ndarray, rigid: Rigid) -> np.ndarray:
    out = points.copy()
    xyz = np.stack([points['x'], points['y'], points['z']], 1).astype(np.float64)
    xyz = xyz @ rigid.rotation.T + rigid.translation
    out['x'], out['y'], out['z'] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    return out


def _with_time(points: np.ndarray, lag_s: float) -> np.ndarray:
    out = np.zeros(len(points), dtype=list(CLOUD_FIELDS) + [SWEEP_TIME_FIELD])
    for name, _ in CLOUD_FIELDS:
        out[name] = points[name]
    out['time'] = lag_s
    return out


@dataclass(frozen=True)
class DatasetSpec:
    """What differs between nuScenes and TruckScenes for conversion."""

    name: str
    open: Callable[[str, str], object]  # (version, dataroot) -> devkit instance
    category_to_class: Callable[[str], str | None]
    read_points: Callable[[Path], np.ndarray]
    lidar_channels: tuple[str, ...]  # empty: every LIDAR* channel of the sample, fused into the first


def _nuscenes_spec() -> DatasetSpec:
    def open_db(version, dataroot):
        from nuscenes.nuscenes import NuScenes
        return NuScenes(version=version, dataroot=dataroot, verbose=False)

    from nuscenes.eval.detection.utils import category_to_detection_name
    return DatasetSpec('nuscenes', open_db, category_to_detection_name, read_nuscenes_bin, ('LIDAR_TOP',))


def _truckscenes_spec() -> DatasetSpec:
    def open_db(version, dataroot):
        from truckscenes import TruckScenes
        return TruckScenes(version=version, dataroot=dataroot, verbose=False)

    from truckscenes.eval.detection.utils import category_to_detection_name
    return DatasetSpec('truckscenes', open_db, category_to_detection_name, read_truckscenes_pcd, ())


DATASETS = {'nuscenes': _nuscenes_spec, 'truckscenes': _truckscenes_spec}


class DevkitSource:
    """Keyframes of the chosen scenes of a nuScenes-format dataroot, in time order."""

    def __init__(self, db, spec: DatasetSpec, scenes: tuple[str, ...] = (), sweeps: int = 1,
                 lidar_channels: tuple[str, ...] = (), cameras: bool = False) -> None:
        if sweeps < 1:
            raise SourceError(f'sweeps must be >= 1, got {sweeps}')
        self.db, self.spec, self.sweeps, self.cameras = db, spec, sweeps, cameras
        self.lidar_channels = tuple(lidar_channels) or spec.lidar_channels
        by_name = {s['name']: s for s in db.scene}
        missing = [s for s in scenes if s not in by_name]
        if missing:
            raise SourceError(f'scenes not in the dataroot: {missing}; it has {sorted(by_name)}')
        self.scenes = [by_name[s] for s in scenes] if scenes else list(db.scene)
        self.skipped_frames = 0  # keyframes left out because their LiDAR file is missing or corrupt
        self.skipped_frame_reasons: list[str] = []  # one line per skipped keyframe: sample, scene, why
        self.skipped_sweeps = 0  # older sweeps left out of an accumulation for the same reason

    @classmethod
    def open(cls, dataset: str, dataroot: str | Path, version: str, **kwargs) -> DevkitSource:
        if dataset not in DATASETS:
            raise SourceError(f'unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}')
        spec = DATASETS[dataset]()
        if not (Path(dataroot) / version).is_dir():
            raise SourceError(f'{dataroot} has no table folder {version!r}')
        return cls(spec.open(version, str(dataroot)), spec, **kwargs)

    def __len__(self) -> int:
        return sum(s['nbr_samples'] for s in self.scenes)

    def __iter__(self) -> Iterator[Frame]:
        for scene in self.scenes:
            token = scene['first_sample_token']
            while token:
                sample = self.db.get('sample', token)
                token = sample['next']
                try:
                    frame = self.frame(sample, scene['name'])
                except (SourceError, CorruptInputError, OSError) as exc:
                    self.skipped_frames += 1
                    self.skipped_frame_reasons.append(f'sample {sample["token"]} of {scene["name"]}: {exc}')
                    log.warning('skipping sample %s of %s: %s', sample['token'], scene['name'], exc)
                    continue
                yield frame

    def _pose(self, sd) -> tuple[Rigid, Rigid]:
        cs = self.db.get('calibrated_sensor', sd['calibrated_sensor_token'])
        ep = self.db.get('ego_pose', sd['ego_pose_token'])
        return Rigid.from_wxyz(cs['translation'], cs['rotation']), Rigid.from_wxyz(ep['translation'],
                                                                                  ep['rotation'])

    def _channels(self, sample) -> list[str]:
        if self.lidar_channels:
            missing = [c for c in self.lidar_channels if c not in sample['data']]
            if missing:
                raise SourceError(f'sample {sample["token"]} has no {missing}; '
                                  f'it has {sorted(sample["data"])}')
            return list(self.lidar_channels)
        return sorted(c for c in sample['data'] if c.startswith('LIDAR'))

    def frame(self, sample, scene_name: str = '') -> Frame:
        channels = self._channels(sample)
        ref_sd = self.db.get('sample_data', sample['data'][channels[0]])
        lidar_to_ego, ego_to_global = self._pose(ref_sd)
        global_to_ref = (ego_to_global @ lidar_to_ego).inverse()
        clouds = []
        for channel in channels:
            sd = self.db.get('sample_data', sample['data'][channel])
            for k in range(self.sweeps):
                try:
                    pts = self.spec.read_points(Path(self.db.dataroot) / sd['filename'])
                except (SourceError, CorruptInputError, OSError) as exc:
                    if channel == channels[0] and not k:
                        raise
                    # A lost older sweep only thins the accumulation; the keyframe stays.
                    self.skipped_sweeps += 1
                    log.warning('leaving sweep %s out of sample %s: %s', sd['token'], sample['token'], exc)
                    pts = None
                if pts is not None:
                    if channel != channels[0] or k:
                        l2e, e2g = self._pose(sd)
                        pts = _transform_points(pts, global_to_ref @ e2g @ l2e)
                    if self.sweeps > 1:
                        pts = _with_time(pts, (ref_sd['timestamp'] - sd['timestamp']) * 1e-6)
                    clouds.append(pts)
                if not sd['prev']:
                    break
                sd = self.db.get('sample_data', sd['prev'])
        points = np.concatenate(clouds) if len(clouds) > 1 else clouds[0]
        boxes, classes, counts = self._boxes(sample, global_to_ref, channels[0])
        cams = tuple(self._camera(sample, c) for c in sorted(sample['data'])
                     if c.startswith(CAMERA_PREFIX)) if self.cameras else ()
        return Frame(sample['token'], int(ref_sd['timestamp']) * 1000, channels[0], points, boxes, classes,
                     counts, lidar_to_ego, ego_to_global, scene_name, cams)

    def _boxes(self, sample, global_to_lidar: Rigid, frame_id: str):
        anns = [self.db.get('sample_annotation', t) for t in sample['anns']]
        if not anns:
            return Boxes.empty(frame_id), (), np.zeros(0, np.int64)
        centers = np.array([a['translation'] for a in anns], dtype=np.float64)
        wlh = np.array([a['size'] for a in anns], dtype=np.float64)
        quats = np.array([[a['rotation'][1], a['rotation'][2], a['rotation'][3], a['rotation'][0]]
                          for a in anns], dtype=np.float64)
        fine = tuple(a['category_name'] for a in anns)
        boxes = Boxes(centers, wlh[:, [1, 0, 2]], quats, tuple(a['token'] for a in anns), 'map', fine)
        boxes = boxes.transformed(global_to_lidar.rotation, global_to_lidar.translation, frame_id)
        classes = tuple(self.spec.category_to_class(c) or '' for c in fine)
        counts = np.array([a.get('num_lidar_pts', -1) for a in anns], dtype=np.int64)
        return boxes, classes, counts

    def _camera(self, sample, channel: str) -> CameraFrame:
        sd = self.db.get('sample_data', sample['data'][channel])
        cs = self.db.get('calibrated_sensor', sd['calibrated_sensor_token'])
        cam_to_ego, ego_to_global = self._pose(sd)
        path = Path(self.db.dataroot) / sd['filename']
        return CameraFrame(channel, int(sd['timestamp']) * 1000, path.read_bytes(), cam_to_ego,
                           np.asarray(cs['camera_intrinsic'], np.float64), ego_to_global)


class SampleDirSource:
    """The single real keyframe of data/nuscenes_sample (pcd.bin + annotations_lidar.json).

    The JSON already holds boxes in the LiDAR frame; its labels are the 10 detection classes
    ('ignored_other_category' -> ''), fine categories are not in it.
    """

    ANNOTATIONS = 'annotations_lidar.json'
    OTHER = 'ignored_other_category'

    def __init__(self, directory: str | Path, cameras: bool = False, lidar_frame: str = 'LIDAR_TOP') -> None:
        self.directory = Path(directory)
        path = self.directory / self.ANNOTATIONS
        if not path.is_file():
            raise SourceError(f'{self.directory} has no {self.ANNOTATIONS}')
        self.meta = json.loads(path.read_text())
        self.cameras, self.lidar_frame = cameras, lidar_frame

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[Frame]:
        yield self.frame()

    def frame(self) -> Frame:
        m = self.meta
        lidar_file = self.directory / m['lidar_file']
        stamp = stamp_from_filename(m['lidar_file']) or int(round(m['lidar_timestamp_s'] * 1e9))
        objs = m['objects']
        if objs:
            boxes = Boxes(np.array([o['center_xyz'] for o in objs]),
                          np.array([o['size_lwh'] for o in objs]),
                          np.array([o['quaternion_xyzw'] for o in objs]),
                          tuple(str(o['index']) for o in objs), self.lidar_frame)
        else:
            boxes = Boxes.empty(self.lidar_frame)
        classes = tuple('' if o['label'] == self.OTHER else o['label'] for o in objs)
        counts = np.array([o.get('num_lidar_pts', -1) for o in objs], dtype=np.int64)
        lidar_to_ego = Rigid.from_matrix(m['lidar2ego'])
        cams = ()
        if self.cameras:
            cams = tuple(self._camera(name, c, lidar_to_ego) for name, c in sorted(m['cameras'].items()))
        return Frame(m.get('sample_token', ''), stamp, self.lidar_frame, read_nuscenes_bin(lidar_file), boxes,
                     classes, counts, lidar_to_ego, Rigid.from_matrix(m['ego2global']), m.get('scene', ''),
                     cams)

    def _camera(self, channel: str, cam: dict, lidar_to_ego: Rigid) -> CameraFrame:
        path = self.directory / cam['file']
        stamp = stamp_from_filename(cam['file']) or int(round(cam['timestamp_s'] * 1e9))
        return CameraFrame(channel, stamp, path.read_bytes(), Rigid.from_matrix(cam['cam2ego']),
                           np.asarray(cam['cam2img'], np.float64))
