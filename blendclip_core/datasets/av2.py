"""Argoverse 2 sensor sweeps: points in the ego frame (x forward, y left, z up) and cuboids with a
`track_uuid`, from the derived files of data/av2_sample (<log8>_<ts>_points.npy + _annotations.json)
or an AV2 log folder (sensors/lidar/<ts>.feather + annotations.feather, read with pyarrow).

The same track seen in two sweeps keeps its uuid as the box id (instance_token), so evaluation can
count the object once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from blendclip_core.datasets.files import FileFormat, box_annotation, load_npy, single_sweep_frame
from blendclip_core.datasets.frame import Annotation, CorruptInputError, Frame

REFERENCE = 'egovehicle'
ANNOTATIONS_SUFFIX = '_annotations.json'
FEATHER_HINT = 'AV2 .feather files need pyarrow (pip install pyarrow)'


def _annotation(o: dict) -> Annotation:
    uuid = o['track_uuid']
    return box_annotation(uuid, o['category'], o['center_xyz'], o['size_lwh'], o['quaternion_xyzw'],
                          category=o['category'], num_lidar_pts=int(o.get('num_interior_pts', -1)),
                          instance=uuid)


def read_annotations_json(path: str | Path, points: str | Path | None = None) -> Frame:
    """One sweep of data/av2_sample: the annotations JSON and the points file it names (or `points`)."""
    path = Path(path)
    try:
        m = json.loads(path.read_text())
        annotations = tuple(_annotation(o) for o in m['objects'])
        points = Path(points) if points else path.parent / m['points_file']
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptInputError('corrupt_boxes', f'{path}: not AV2 annotations ({exc})') from exc
    cloud = load_feather_points(points) if points.suffix == '.feather' else load_npy(points)
    return single_sweep_frame('av2', path.name[:-len(ANNOTATIONS_SUFFIX)], cloud, annotations,
                              m.get('frame', REFERENCE), points.name, m.get('log_id', ''),
                              int(m.get('timestamp_ns', 0)))


def _feather(path: Path) -> dict:
    try:
        from pyarrow import feather
    except ImportError:
        raise CorruptInputError('unsupported', f'{path}: {FEATHER_HINT}') from None
    return feather.read_table(str(path)).to_pydict()


def load_feather_points(path: str | Path) -> np.ndarray:
    """float32 (N, 4) x, y, z, intensity of an AV2 sensors/lidar/<ts>.feather sweep."""
    cols = _feather(Path(path))
    return np.column_stack([cols['x'], cols['y'], cols['z'], cols['intensity']]).astype(np.float32)


def read_log(log: Path) -> Iterator[Frame]:
    """Every annotated sweep of an AV2 log folder (annotations.feather rows at the sweep's timestamp)."""
    rows = _feather(log / 'annotations.feather')
    quats = np.column_stack([rows['qx'], rows['qy'], rows['qz'], rows['qw']])
    centers = np.column_stack([rows['tx_m'], rows['ty_m'], rows['tz_m']])
    sizes = np.column_stack([rows['length_m'], rows['width_m'], rows['height_m']])
    stamps = np.asarray(rows['timestamp_ns'], np.int64)
    for sweep in sorted((log / 'sensors' / 'lidar').glob('*.feather')):
        idx = np.flatnonzero(stamps == int(sweep.stem))
        if not len(idx):
            continue
        annotations = tuple(box_annotation(rows['track_uuid'][i], rows['category'][i], centers[i], sizes[i],
                                           quats[i], category=rows['category'][i],
                                           instance=rows['track_uuid'][i],
                                           num_lidar_pts=int(rows['num_interior_pts'][i])) for i in idx)
        yield single_sweep_frame('av2', f'{log.name[:8]}_{sweep.stem}', load_feather_points(sweep),
                                 annotations, REFERENCE, sweep.name, log.name, int(sweep.stem))


def _claims(path: Path) -> bool:
    if path.is_dir():
        return (path / 'annotations.feather').is_file() or any(path.glob(f'*{ANNOTATIONS_SUFFIX}'))
    return path.name.endswith(ANNOTATIONS_SUFFIX)


def read(path: Path) -> Iterator[Frame]:
    """Frames of an AV2 log folder, a folder of derived sweeps, or one _annotations.json."""
    path = Path(path)
    if path.is_file():
        yield read_annotations_json(path)
    elif (path / 'annotations.feather').is_file():
        yield from read_log(path)
    else:
        yield from (read_annotations_json(p) for p in sorted(path.glob(f'*{ANNOTATIONS_SUFFIX}')))


AV2 = FileFormat('av2', 'an AV2 log folder (annotations.feather, sensors/lidar/), a folder of '
                        '<log>_<ts>_annotations.json + _points.npy, or one such JSON', _claims, read)
