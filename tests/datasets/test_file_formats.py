"""PCD files of any layout, points files with a JSON box list, and the errors a user sees for files no
reader takes: all on small files written here."""

import importlib.util
import json

import numpy as np
import pytest

from blendclip_core.datasets.av2 import load_feather_points
from blendclip_core.datasets.files import UnknownFormatError
from blendclip_core.datasets.frame import CorruptInputError, DatasetNotFoundError
from blendclip_core.datasets.labelled import read_labelled_frames
from blendclip_core.datasets.pcd import load_pcd
from blendclip_core.datasets.points import read_points

POINTS = np.array([[1.5, -2.0, 0.25, 7.0], [3.0, 4.0, -1.0, 200.0], [-0.5, 0.0, 2.0, 0.0]], np.float32)


def write_pcd(path, fields, sizes, types, counts, rows, data='binary', extra_header=''):
    """A PCD file; rows: a structured array (binary) or a list of value lists (ascii)."""
    n = len(rows)
    header = (f'# .PCD v0.7\nVERSION 0.7\nFIELDS {" ".join(fields)}\nSIZE {" ".join(map(str, sizes))}\n'
              f'TYPE {" ".join(types)}\nCOUNT {" ".join(map(str, counts))}\nWIDTH {n}\nHEIGHT 1\n'
              f'VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\n{extra_header}DATA {data}\n')
    text = ''.join(' '.join(map(str, r)) + '\n' for r in rows) if data == 'ascii' else ''
    body = rows.tobytes() if data != 'ascii' else text.encode()
    path.write_bytes(header.encode() + body)
    return path


def test_binary_pcd_fields_in_any_order_with_padding_and_arrays(tmp_path):
    dtype = np.dtype([('intensity', '<u2'), ('_', 'V2'), ('z', '<f8'), ('rgb', '<u1', (3,)), ('x', '<f4'),
                      ('y', '<f4'), ('__', 'V1')])
    rows = np.zeros(len(POINTS), dtype)
    rows['x'], rows['y'], rows['z'], rows['intensity'] = POINTS.T
    path = write_pcd(tmp_path / 'a.pcd', ['intensity', '_', 'z', 'rgb', 'x', 'y', '_'], [2, 1, 8, 1, 4, 4, 1],
                     ['U', 'U', 'F', 'U', 'F', 'F', 'U'], [1, 2, 1, 3, 1, 1, 1], rows)
    np.testing.assert_array_equal(load_pcd(path), POINTS)


def test_ascii_pcd_without_intensity_drops_nan_rows(tmp_path):
    rows = [[p[2], p[0], p[1]] for p in POINTS] + [['nan', 'nan', 'nan']]
    path = write_pcd(tmp_path / 'a.pcd', ['z', 'x', 'y'], [4, 4, 4], ['F'] * 3, [1] * 3, rows, data='ascii')
    expected = POINTS.copy()
    expected[:, 3] = 0
    np.testing.assert_array_equal(read_points(path), expected)


@pytest.mark.parametrize('case, match', [('compressed', 'binary_compressed is not supported'),
                                         ('truncated', 'bytes of data'), ('no_z', r"no field \['z'\]"),
                                         ('garbage', 'not a PCD header line')])
def test_broken_pcd_files_say_why(tmp_path, case, match):
    rows = np.zeros(3, [('x', '<f4'), ('y', '<f4'), ('z', '<f4')])
    fields = ['x', 'y'] if case == 'no_z' else ['x', 'y', 'z']
    path = write_pcd(tmp_path / 'a.pcd', fields, [4] * len(fields), ['F'] * len(fields), [1] * len(fields),
                     rows[fields] if case == 'no_z' else rows,
                     data='binary_compressed' if case == 'compressed' else 'binary')
    if case == 'truncated':
        path.write_bytes(path.read_bytes()[:-5])
    if case == 'garbage':
        path.write_bytes(b'ply\nformat ascii 1.0\n')
    with pytest.raises(CorruptInputError, match=match):
        load_pcd(path)


def test_points_with_a_json_box_list_yaw_or_quaternion(tmp_path):
    np.save(tmp_path / 'cloud.npy', POINTS[:, :3])
    boxes = [{'center': [1.5, -2.0, 0.0], 'size': [4.0, 2.0, 1.5], 'yaw': 0.5, 'label': 'Car', 'id': 'a'},
             {'center': [3.0, 4.0, -1.0], 'size': [1, 1, 2], 'quaternion': [0, 0, 0.7071068, 0.7071068]},
             {'center': [0, 0, 0], 'size': [1, 1, 1], 'label': 'bollard'}]
    (tmp_path / 'boxes.json').write_text(json.dumps(boxes))
    frame, = read_labelled_frames(tmp_path / 'cloud.npy', tmp_path / 'boxes.json')
    assert frame.labels == ('car', None, None) and frame.boxes.ids == ('a', '1', '2')
    np.testing.assert_allclose(frame.boxes.yaws, [0.5, np.pi / 2, 0.0], atol=1e-6)
    assert frame.points.shape == (3, 4) and not frame.points[:, 3].any()


@pytest.mark.parametrize('points, boxes, error, match', [
    ('cloud.xyz', 'boxes.json', UnknownFormatError, 'unknown points format'),
    ('cloud.npy', 'missing.json', DatasetNotFoundError, 'boxes file missing'),
    ('cloud.npy', 'bad.json', CorruptInputError, 'not a box list'),
    ('cloud.bin', 'boxes.json', CorruptInputError, 'not a multiple of 16'),
])
def test_unknown_or_broken_files_raise_one_clear_error(tmp_path, points, boxes, error, match):
    np.save(tmp_path / 'cloud.npy', POINTS)
    (tmp_path / 'cloud.xyz').write_text('1 2 3\n')
    (tmp_path / 'cloud.bin').write_bytes(b'\0' * 20)
    (tmp_path / 'boxes.json').write_text('[]')
    (tmp_path / 'bad.json').write_text('{"center": [1, 2]}')
    with pytest.raises(error, match=match):
        list(read_labelled_frames(tmp_path / points, tmp_path / boxes))


def test_a_missing_source_is_named(tmp_path):
    with pytest.raises(DatasetNotFoundError, match='no such file'):
        list(read_labelled_frames(tmp_path / 'nothing'))


@pytest.mark.skipif(importlib.util.find_spec('pyarrow') is not None, reason='pyarrow is installed')
def test_feather_without_pyarrow_names_the_package(tmp_path):
    (tmp_path / 'sweep.feather').write_bytes(b'ARROW1')
    with pytest.raises(CorruptInputError, match='pip install pyarrow'):
        load_feather_points(tmp_path / 'sweep.feather')
