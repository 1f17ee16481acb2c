"""Our PointCloud2 conversions agree with the reference, `sensor_msgs_py.point_cloud2` (read_points,
create_cloud; from ../shared/upstream/common_interfaces/sensor_msgs_py), on many field layouts,
strides (point_step padding), byte orders and NaNs.

Where the two differ by design, a test below names the difference and asserts exactly what each does:
the reference byteswaps a big-endian cloud inside the message, splits count > 1 fields into `name_i`,
ignores row padding, reshapes organized clouds as (width, height), cannot write big-endian clouds,
always writes is_dense=False and keeps inf (and NaN of clouds flagged dense) when skipping NaNs.
"""

from __future__ import annotations

import array
import copy
import sys

import numpy as np
import pytest
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header
from upstream import import_from_source

from blendclip_ros.conversions.pointcloud import (
    DATATYPE_TO_NUMPY,
    array_to_cloud,
    cloud_to_array,
    cloud_to_xyz,
    dtype_from_fields,
)

NAMES = ('x', 'y', 'z', 'intensity', 'ring', 'time', 'return_type', 'reflectivity', 'ambient', 'range')
LAYOUTS = 60


@pytest.fixture(scope='module')
def pc2():
    return import_from_source('sensor_msgs_py.point_cloud2', 'common_interfaces', 'sensor_msgs_py')


def random_layout(rng: np.random.Generator, xyz_float: bool = True) -> tuple[list[PointField], int]:
    """x, y, z plus 0-5 more fields of any datatype, shuffled, with random gaps and tail padding."""
    names = ['x', 'y', 'z', *rng.choice(NAMES[3:], size=rng.integers(0, 6), replace=False)]
    rng.shuffle(names)
    fields, offset = [], 0
    for name in names:
        if name in 'xyz' and xyz_float:
            datatype = int(rng.choice([PointField.FLOAT32, PointField.FLOAT64]))
        else:
            datatype = int(rng.choice(sorted(DATATYPE_TO_NUMPY)))
        offset += int(rng.integers(0, 4))  # padding between fields, unaligned on purpose
        fields.append(PointField(name=str(name), offset=offset, datatype=datatype, count=1))
        offset += DATATYPE_TO_NUMPY[datatype].itemsize
    return fields, offset + int(rng.integers(0, 9))


def random_cloud(rng: np.random.Generator, fields, point_step: int, bigendian: bool, n: int,
                 nan_fraction: float = 0.1) -> tuple[PointCloud2, np.ndarray]:
    """A cloud with random values (NaN in some float values) and random padding bytes."""
    order = '>' if bigendian else '<'
    dtype = dtype_from_fields(fields, point_step, bigendian)
    raw = rng.integers(0, 256, size=n * point_step, dtype=np.uint8)  # padding bytes are noise
    values = np.frombuffer(raw.tobytes(), dtype=dtype).copy()
    for f in fields:
        base = DATATYPE_TO_NUMPY[f.datatype]
        if base.kind == 'f':
            shape = values[f.name].shape  # (n,) or (n, count)
            column = rng.normal(0, 50, shape).astype(base.newbyteorder(order))
            column[rng.random(shape) < nan_fraction] = np.nan
            values[f.name] = column
    msg = PointCloud2(height=1, width=n, fields=fields, is_bigendian=bigendian, point_step=point_step,
                      row_step=n * point_step, is_dense=False)
    msg.data = array.array('B', values.tobytes())
    return msg, values


def xyz_fields() -> list[PointField]:
    return [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
            for i, n in enumerate('xyz')]


def assert_same_points(ours: np.ndarray, ref: np.ndarray, names) -> None:
    assert len(ours) == len(ref)
    for name in names:
        np.testing.assert_array_equal(ours[name], ref[name], err_msg=name)  # NaN == NaN here


@pytest.mark.parametrize('bigendian', [False, True])
def test_read_points_equals_cloud_to_array_on_random_layouts(pc2, bigendian):
    rng = np.random.default_rng(17 + bigendian)
    for _ in range(LAYOUTS):
        fields, point_step = random_layout(rng)
        msg, values = random_cloud(rng, fields, point_step, bigendian, int(rng.integers(0, 300)))
        ours = cloud_to_array(msg)
        ref = pc2.read_points(copy.deepcopy(msg))
        assert ref.dtype.names == ours.dtype.names and ours.dtype.itemsize == point_step
        assert_same_points(ours, ref, ours.dtype.names)
        assert_same_points(ours, values, ours.dtype.names)  # and both are the values written


def test_read_points_field_selection_and_skip_nans_equal_cloud_to_xyz(pc2):
    rng = np.random.default_rng(5)
    for _ in range(LAYOUTS):
        fields, point_step = random_layout(rng)
        extra = [f.name for f in fields if f.name not in 'xyz'][:2]
        msg, _ = random_cloud(rng, fields, point_step, bool(rng.integers(0, 2)), int(rng.integers(1, 300)),
                              nan_fraction=0.3)
        points, dropped = cloud_to_xyz(msg, extra)
        ref = pc2.read_points(copy.deepcopy(msg), field_names=['x', 'y', 'z', *extra], skip_nans=True)
        with np.errstate(over='ignore', invalid='ignore'):  # float64 -> float32 as cloud_to_xyz does
            expected = np.stack([ref[n].astype(np.float32) for n in ['x', 'y', 'z', *extra]], axis=1)
        expected = expected[np.isfinite(expected).all(axis=1)]  # see test_inf_and_dense_flag_differ
        np.testing.assert_array_equal(points, expected.reshape(-1, 3 + len(extra)))
        assert dropped == msg.width - len(points)


def test_create_cloud_equals_array_to_cloud(pc2):
    rng = np.random.default_rng(11)
    for _ in range(LAYOUTS):
        fields, point_step = random_layout(rng)
        _, values = random_cloud(rng, fields, point_step, False, int(rng.integers(0, 300)))
        header = Header(frame_id='LIDAR_TOP')
        ref = pc2.create_cloud(header, fields, values, point_step=point_step)
        ours = array_to_cloud(values, header=header)
        for key in ('height', 'width', 'point_step', 'row_step', 'is_bigendian', 'header'):
            assert getattr(ours, key) == getattr(ref, key), key
        assert [(f.name, f.offset, f.datatype, f.count) for f in ours.fields] == \
            [(f.name, f.offset, f.datatype, f.count) for f in ref.fields]
        assert bytes(ours.data) == bytes(ref.data)  # padding bytes included
        # By design: the reference always says is_dense=False; ours says whether x, y, z are all finite.
        assert ref.is_dense is False
        assert ours.is_dense == bool(all(np.isfinite(values[n]).all() for n in 'xyz'))


def test_each_reads_what_the_other_writes(pc2):
    rng = np.random.default_rng(23)
    for _ in range(LAYOUTS):
        fields, point_step = random_layout(rng)
        _, values = random_cloud(rng, fields, point_step, False, int(rng.integers(1, 200)))
        from_ref = pc2.create_cloud(Header(), fields, values, point_step=point_step)
        assert_same_points(cloud_to_array(from_ref), values, values.dtype.names)
        big = values.astype(values.dtype.newbyteorder('>'))  # ours writes big-endian clouds too
        assert_same_points(pc2.read_points(array_to_cloud(big)), values, values.dtype.names)


def test_big_endian_read_points_byteswaps_the_message_in_place(pc2):
    """Differs by design: ours returns a read-only-safe view with big-endian dtype and leaves msg.data
    as received; the reference byteswaps msg.data itself (the message no longer matches is_bigendian)."""
    fields = xyz_fields()
    msg, values = random_cloud(np.random.default_rng(1), fields, 12, True, 50, nan_fraction=0)
    received = bytes(msg.data)
    ours = cloud_to_array(msg)
    assert ours.dtype['x'].byteorder == '>' and bytes(msg.data) == received
    ref = pc2.read_points(msg)
    assert_same_points(ref, values, 'xyz')
    assert bytes(msg.data) == values.astype(values.dtype.newbyteorder('<')).tobytes() != received
    assert sys.byteorder == 'little'


def test_count_above_one_is_a_subarray_here_and_split_fields_there(pc2):
    fields = [PointField(name='x', offset=0, datatype=PointField.FLOAT32, count=1),
              PointField(name='y', offset=4, datatype=PointField.FLOAT32, count=1),
              PointField(name='z', offset=8, datatype=PointField.FLOAT32, count=1),
              PointField(name='rgb', offset=12, datatype=PointField.UINT8, count=3),
              PointField(name='normal', offset=16, datatype=PointField.FLOAT64, count=3)]
    msg, _ = random_cloud(np.random.default_rng(2), fields, 48, False, 40)
    ours = cloud_to_array(msg)
    ref = pc2.read_points(copy.deepcopy(msg))
    assert ours['rgb'].shape == (40, 3) and ours['normal'].shape == (40, 3)
    assert ref.dtype.names == ('x', 'y', 'z', 'rgb_0', 'rgb_1', 'rgb_2', 'normal_0', 'normal_1', 'normal_2')
    for name in ('rgb', 'normal'):
        for i in range(3):
            np.testing.assert_array_equal(ours[name][:, i], ref[f'{name}_{i}'])


def test_organized_and_row_padded_clouds(pc2):
    """Differs by design: the reference reshapes organized clouds to (width, height) and ignores
    row_step (rows padded past width * point_step are read as if packed); ours honours both."""
    height, width, point_step, row_pad = 4, 6, 12, 8
    fields = xyz_fields()
    grid = np.arange(height * width * 3, dtype=np.float32).reshape(height, width, 3)
    rows = [np.concatenate([grid[r].reshape(-1).view(np.uint8), np.full(row_pad, 255, np.uint8)])
            for r in range(height)]
    msg = PointCloud2(height=height, width=width, fields=fields, point_step=point_step,
                      row_step=width * point_step + row_pad, is_dense=True)
    msg.data = array.array('B', np.concatenate(rows).tobytes())
    ours = cloud_to_array(msg, organized=True)
    assert ours.shape == (height, width)
    np.testing.assert_array_equal(ours['y'], grid[..., 1])
    ref = pc2.read_points(copy.deepcopy(msg), reshape_organized_cloud=True)
    assert ref.shape == (width, height)
    as_if_packed = np.frombuffer(bytes(msg.data)[:height * width * point_step], dtype=ours.dtype)
    np.testing.assert_array_equal(ref.reshape(-1)['y'], as_if_packed['y'])
    assert not np.array_equal(ref.reshape(-1)['y'], ours.reshape(-1)['y'])
    packed = grid.reshape(-1).view(ours.dtype).reshape(height, width)  # without row padding: agree
    from_ref = pc2.create_cloud(Header(), fields, packed)
    assert (from_ref.height, from_ref.width) == (width, height)  # reference: shape[0] is the width
    ours_msg = array_to_cloud(packed)
    assert (ours_msg.height, ours_msg.width) == (height, width)
    assert bytes(ours_msg.data) == bytes(from_ref.data)


def test_inf_and_dense_flag_differ_when_skipping_nans(pc2):
    """Differs by design: cloud_to_xyz drops every point with NaN or inf in a returned column, whatever
    is_dense says (drivers get the flag wrong); skip_nans drops only NaN, and nothing if is_dense."""
    fields = xyz_fields()
    values = np.zeros(4, dtype=dtype_from_fields(fields, 12))
    values['x'] = [1.0, np.nan, np.inf, 2.0]
    msg = array_to_cloud(values)
    points, dropped = cloud_to_xyz(msg)
    assert points[:, 0].tolist() == [1.0, 2.0] and dropped == 2
    msg.is_dense = False
    assert pc2.read_points(msg, skip_nans=True)['x'].tolist() == [1.0, np.inf, 2.0]
    msg.is_dense = True
    assert len(pc2.read_points(msg, skip_nans=True)) == 4
    assert cloud_to_xyz(msg).dropped == 2
