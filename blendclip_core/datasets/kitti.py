"""KITTI 3D object frames: velodyne .bin + label_2 .txt + calib .txt, or an mmdet3d info .pkl + .bin.

KITTI boxes are annotated in the rectified camera frame (bottom centre x, y, z; h, w, l; rotation_y
about the camera's y axis, which points down). They are moved into the Velodyne frame through
lidar_to_cam = R0_rect @ Tr_velo_to_cam: the centre lifted by h/2 and transformed, the heading
(cos ry, 0, -sin ry) rotated into the Velodyne frame and measured about +z. With an ideal calibration
this is the usual yaw = -rotation_y - pi/2.
Layouts read: a KITTI object folder (velodyne/, label_2/, calib/, every label file a frame), one
label file (its calib from ../calib/<id>.txt, its points from ../velodyne/<id>.bin) or an mmdet3d
'info' pickle (DATASET KITTI) beside its .bin files.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from blendclip_core.datasets.files import KITTI_BIN_DIMS, FileFormat, box_annotation, single_sweep_frame
from blendclip_core.datasets.frame import Annotation, CorruptInputError, Frame
from blendclip_core.datasets.nuscenes import load_lidar_bin
from blendclip_core.geometry import yaw_to_quaternion

REFERENCE = 'velodyne'
DONT_CARE = 'DontCare'
MMDET3D_KITTI_CLASSES = ('Pedestrian', 'Cyclist', 'Car')  # mmdet3d's KITTI label ids (bbox_label_3d)


def camera_boxes_to_lidar(bottom_centers, lhw, rotation_y, lidar_to_cam) -> tuple[np.ndarray, ...]:
    """KITTI camera boxes -> (centres (N, 3), sizes l, w, h (N, 3), yaws (N,)) in the Velodyne frame."""
    bottom = np.asarray(bottom_centers, np.float64).reshape(-1, 3)
    lhw = np.asarray(lhw, np.float64).reshape(-1, 3)
    ry = np.asarray(rotation_y, np.float64).reshape(-1)
    cam_to_lidar = np.linalg.inv(np.asarray(lidar_to_cam, np.float64))
    rotation, translation = cam_to_lidar[:3, :3], cam_to_lidar[:3, 3]
    centers_cam = bottom - np.column_stack([np.zeros_like(ry), lhw[:, 1] / 2, np.zeros_like(ry)])
    heading = np.column_stack([np.cos(ry), np.zeros_like(ry), -np.sin(ry)]) @ rotation.T
    yaws = np.arctan2(heading[:, 1], heading[:, 0])
    return centers_cam @ rotation.T + translation, lhw[:, [0, 2, 1]], yaws


def read_calib(path: str | Path) -> np.ndarray:
    """(4, 4) lidar -> rectified camera (R0_rect @ Tr_velo_to_cam) of a KITTI calib file."""
    values = {}
    for line in Path(path).read_text().splitlines():
        if ':' in line:
            key, rest = line.split(':', 1)
            values[key.strip()] = np.array(rest.split(), np.float64)
    r0, tr = np.eye(4), np.eye(4)
    r0[:3, :3] = values['R0_rect'].reshape(3, 3)
    tr[:3, :4] = values['Tr_velo_to_cam'].reshape(3, 4)
    return r0 @ tr


def _annotations(names, bottoms, lhw, ry, lidar_to_cam, num_points=None) -> tuple[Annotation, ...]:
    if not len(names):
        return ()
    centers, sizes, yaws = camera_boxes_to_lidar(bottoms, lhw, ry, lidar_to_cam)
    quats = yaw_to_quaternion(yaws)
    counts = num_points if num_points is not None else [-1] * len(names)
    return tuple(box_annotation(str(i), name, centers[i], sizes[i], quats[i], category=name,
                                num_lidar_pts=int(counts[i])) for i, name in enumerate(names))


def read_label_file(path: str | Path, lidar_to_cam: np.ndarray) -> tuple[Annotation, ...]:
    """The boxes of a label_2 file (type trunc occl alpha x1 y1 x2 y2 h w l x y z ry), DontCare left out."""
    rows = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r[0] != DONT_CARE]
    if any(len(r) < 15 for r in rows):
        raise ValueError('a label_2 line needs 15 values: type trunc occl alpha x1 y1 x2 y2 h w l x y z ry')
    nums = np.array([r[8:15] for r in rows], np.float64).reshape(-1, 7)
    return _annotations([r[0] for r in rows], nums[:, 3:6], nums[:, [2, 0, 1]], nums[:, 6], lidar_to_cam)


def read_label_frame(label: Path, points: Path | None = None, calib: Path | None = None) -> Frame:
    """One frame from a label_2 file; calib and points default to ../calib/<id>.txt, ../velodyne/<id>.bin."""
    label = Path(label)
    calib = calib or label.parent.parent / 'calib' / label.name
    points = points or label.parent.parent / 'velodyne' / f'{label.stem}.bin'
    try:
        annotations = read_label_file(label, read_calib(calib))
    except (OSError, KeyError, ValueError) as exc:
        raise CorruptInputError('corrupt_boxes', f'{label} with calib {calib}: unreadable ({exc})') from exc
    return single_sweep_frame('kitti', label.stem, load_lidar_bin(points, KITTI_BIN_DIMS), annotations,
                              REFERENCE, Path(points).name)


def read_info(path: str | Path) -> Iterator[Frame]:
    """The frames of an mmdet3d KITTI info pickle (bbox_3d = camera x, y, z_bottom, l, h, w, ry)."""
    path = Path(path)
    with path.open('rb') as f:
        info = pickle.load(f)  # a local dataset file the user points at, as mmdet3d reads it
    for entry in info['data_list']:
        boxes = [i for i in entry['instances'] if i['bbox_label_3d'] >= 0]
        names = [MMDET3D_KITTI_CLASSES[i['bbox_label_3d']] for i in boxes]
        b = np.array([i['bbox_3d'] for i in boxes], np.float64).reshape(-1, 7)
        lidar_to_cam = np.asarray(entry['images']['CAM2']['lidar2cam'], np.float64)
        annotations = _annotations(names, b[:, :3], b[:, 3:6], b[:, 6], lidar_to_cam,
                                   [i.get('num_lidar_pts', -1) for i in boxes])
        bin_path = path.parent / entry['lidar_points']['lidar_path']
        yield single_sweep_frame('kitti', f'{int(entry["sample_id"]):06d}',
                                 load_lidar_bin(bin_path, KITTI_BIN_DIMS), annotations, REFERENCE,
                                 bin_path.name)


def is_info(path: Path) -> bool:
    if path.suffix != '.pkl' or not path.is_file():
        return False
    try:
        with path.open('rb') as f:
            return pickle.load(f).get('metainfo', {}).get('DATASET') == 'KITTI'
    except Exception:  # any unpicklable file is simply not a KITTI info
        return False


def _claims(path: Path) -> bool:
    if path.is_dir():
        return (path / 'label_2').is_dir() or any(is_info(p) for p in path.glob('*.pkl'))
    return is_info(path) or (path.suffix == '.txt' and path.parent.name == 'label_2')


def read(path: Path) -> Iterator[Frame]:
    """Frames of a KITTI folder, info pickle or label_2 file."""
    path = Path(path)
    if path.is_file():
        yield from read_info(path) if path.suffix == '.pkl' else (read_label_frame(path),)
    elif (path / 'label_2').is_dir():
        yield from (read_label_frame(p) for p in sorted((path / 'label_2').glob('*.txt')))
    else:
        for info in sorted(p for p in path.glob('*.pkl') if is_info(p)):
            yield from read_info(info)


KITTI = FileFormat('kitti', 'a KITTI object folder (velodyne/, label_2/, calib/), a label_2 .txt or an '
                            'mmdet3d KITTI info .pkl', _claims, read)
