"""What the single-file formats share: a frame of one sweep, points files by suffix, a box list.

A labelled frame from files is one LiDAR sweep already in the boxes' frame plus its boxes (KITTI,
AV2, PCD, a user's own sensor). Points come back float32 (N, >= 4), x, y, z, intensity first (zeros
where the file has no intensity), as every `Sweep` holds them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blendclip_core.datasets.classes import nuscenes_class
from blendclip_core.datasets.frame import Annotation, CorruptInputError, Frame, Rigid, Sweep
from blendclip_core.geometry import yaw_to_quaternion

KITTI_BIN_DIMS = 4  # KITTI velodyne .bin: float32 x, y, z, reflectance
NUSCENES_BIN_DIMS = 5  # nuScenes .pcd.bin: float32 x, y, z, intensity, ring


class UnknownFormatError(ValueError):
    """A path no reader recognises; the message says what each reader accepts."""


@dataclass(frozen=True)
class FileFormat:
    """A registered reader of labelled frames from files (datasets.FILE_FORMATS)."""

    name: str
    accepts: str  # for messages: what paths it reads
    claims: Callable[[Path], bool]  # does this path (file or folder) belong to the format?
    read: Callable[[Path], Iterator[Frame]]


def single_sweep_frame(dataset: str, token: str, points: np.ndarray, annotations: tuple[Annotation, ...],
                       reference: str, filename: str, scene: str = '', stamp_ns: int = 0) -> Frame:
    """A frame of one sweep in the reference frame (no ego pose known: identities)."""
    sweep = Sweep(reference, points, Rigid.identity(), 0.0, filename, True)
    return Frame(dataset, token, scene, stamp_ns // 1000, stamp_ns, reference, Rigid.identity(),
                 Rigid.identity(), (sweep,), annotations)


def box_annotation(token: str, label: str | None, center, size_lwh, quaternion_xyzw, category: str = '',
                   num_lidar_pts: int = -1, instance: str = '') -> Annotation:
    """One box in the reference; `label` in any known naming becomes its nuScenes-10 class."""
    center = np.asarray(center, np.float64)
    return Annotation(token=token, category=category, detection_class=nuscenes_class(label) or '',
                      center=center, quaternion=np.asarray(quaternion_xyzw, np.float64),
                      size_lwh=np.asarray(size_lwh, np.float64), velocity=np.zeros(3),
                      instance_token=instance,
                      distance=float(np.hypot(center[0], center[1])), num_lidar_pts=num_lidar_pts)


def with_intensity(points: np.ndarray) -> np.ndarray:
    """(N, >= 3) -> float32 (N, >= 4): a zero intensity column where there is none."""
    points = np.asarray(points, np.float32)
    if points.ndim != 2 or points.shape[1] < 3:
        raise CorruptInputError('corrupt_lidar', f'points must be (N, >= 3), got {points.shape}')
    if points.shape[1] == 3:
        points = np.column_stack([points, np.zeros(len(points), np.float32)])
    return points


def load_npy(path: Path) -> np.ndarray:
    try:
        return with_intensity(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as exc:
        raise CorruptInputError('corrupt_lidar', f'{path}: not a numpy (N, >= 3) array ({exc})') from exc


def _box_from_entry(i: int, entry: dict) -> Annotation:
    if 'quaternion' in entry:
        quaternion = entry['quaternion']
    else:
        quaternion = yaw_to_quaternion(np.array([float(entry.get('yaw', 0.0))]))[0]
    center, size = np.asarray(entry['center'], float), np.asarray(entry['size'], float)
    if center.shape != (3,) or size.shape != (3,) or np.shape(quaternion) != (4,):
        raise ValueError('center and size need 3 numbers, quaternion 4 (x, y, z, w)')
    return box_annotation(str(entry.get('id', i)), entry.get('label'), center, size, quaternion)


def read_box_list(path: str | Path) -> tuple[Annotation, ...]:
    """A simple JSON list of boxes: [{"center": [x, y, z], "size": [l, w, h], "yaw": r} or "quaternion":
    [x, y, z, w]; optional "id" and "label"], in the points' frame."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
        if not isinstance(entries, list):
            raise ValueError('expected a JSON list of boxes')
        return tuple(_box_from_entry(i, e) for i, e in enumerate(entries))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptInputError('corrupt_boxes', f'{path}: not a box list ({type(exc).__name__}: {exc}); '
                                                 'expected [{"center": [x,y,z], "size": [l,w,h], "yaw": r}]'
                                ) from exc
