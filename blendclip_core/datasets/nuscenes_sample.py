"""The single real nuScenes key frame of data/nuscenes_sample: a .pcd.bin and annotations_lidar.json.

The JSON already holds the boxes in the LiDAR frame (the reference) with the 10 detection classes
('ignored_other_category' -> ''); fine categories are not in it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from blendclip_core.datasets.files import FileFormat
from blendclip_core.datasets.frame import Annotation, Camera, DatasetNotFoundError, Frame, Rigid, Sweep
from blendclip_core.datasets.nuscenes import LIDAR_CHANNEL, load_lidar_bin

ANNOTATIONS = 'annotations_lidar.json'
OTHER = 'ignored_other_category'


def stamp_from_filename(name: str) -> int | None:
    """nuScenes file names end in the microsecond timestamp: '...__LIDAR_TOP__1532402927647951.pcd.bin'
    -> nanoseconds."""
    stem = Path(name).name.split('.')[0]
    tail = stem.rsplit('__', 1)[-1]
    return int(tail) * 1000 if tail.isdigit() else None


def _annotation(o: dict, lidar_to_ego: Rigid) -> Annotation:
    center = np.asarray(o['center_xyz'], np.float64)
    label = '' if o['label'] == OTHER else o['label']
    return Annotation(token=str(o['index']), category='', detection_class=label,
                      center=center, quaternion=np.asarray(o['quaternion_xyzw'], np.float64),
                      size_lwh=np.asarray(o['size_lwh'], np.float64), velocity=np.zeros(3),
                      distance=float(np.hypot(*lidar_to_ego.apply(center[None])[0, :2])),
                      num_lidar_pts=int(o.get('num_lidar_pts', -1)))


def _camera(directory: Path, channel: str, cam: dict, lidar_to_ego: Rigid, images: bool) -> Camera:
    path = directory / cam['file']
    stamp = stamp_from_filename(cam['file']) or int(round(cam['timestamp_s'] * 1e9))
    cam_to_ego = Rigid.from_matrix(cam['cam2ego'])
    return Camera(channel, path, stamp, np.asarray(cam['cam2img'], np.float64),
                  (cam_to_ego.inverse() @ lidar_to_ego).matrix, cam_to_ego,
                  jpeg=path.read_bytes() if images else b'')


def read_frame(directory: str | Path, cameras: bool = True, images: bool = False,
               lidar_frame: str = LIDAR_CHANNEL) -> Frame:
    directory = Path(directory)
    path = directory / ANNOTATIONS
    if not path.is_file():
        raise DatasetNotFoundError(f'{directory} has no {ANNOTATIONS}')
    m = json.loads(path.read_text())
    stamp = stamp_from_filename(m['lidar_file']) or int(round(m['lidar_timestamp_s'] * 1e9))
    lidar_to_ego = Rigid.from_matrix(m['lidar2ego'])
    sweep = Sweep(lidar_frame, load_lidar_bin(directory / m['lidar_file']), Rigid.identity(), 0.0,
                  m['lidar_file'], True)
    cams = tuple(_camera(directory, name, c, lidar_to_ego, images)
                 for name, c in sorted(m['cameras'].items())) if cameras else ()
    return Frame('nuscenes', m.get('sample_token', ''), m.get('scene', ''), stamp // 1000, stamp, lidar_frame,
                 lidar_to_ego, Rigid.from_matrix(m['ego2global']), (sweep,),
                 tuple(_annotation(o, lidar_to_ego) for o in m['objects']), cams)


def _claims(path: Path) -> bool:
    """A folder (or its annotations_lidar.json) whose JSON names a nuScenes .pcd.bin."""
    path = path / ANNOTATIONS if path.is_dir() else path
    if path.name != ANNOTATIONS or not path.is_file():
        return False
    try:
        return str(json.loads(path.read_text()).get('lidar_file', '')).endswith('.pcd.bin')
    except ValueError:
        return False


def _read(path: Path) -> Iterator[Frame]:
    yield read_frame(path if path.is_dir() else path.parent, cameras=False)


NUSCENES_SAMPLE = FileFormat('nuscenes_sample', f'a folder with {ANNOTATIONS} naming a nuScenes .pcd.bin '
                                                '(data/nuscenes_sample)', _claims, _read)
