"""PointCloud2 <-> numpy: property tests over random layouts, through real rclpy serialization."""

from __future__ import annotations

import array
import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import PointCloud2, PointField

from blendclip_ros.conversions import pointcloud as pc

STRUCT_CHAR = {pc.INT8: 'b', pc.UINT8: 'B', pc.INT16: 'h', pc.UINT16: 'H', pc.INT32: 'i',
               pc.UINT32: 'I', pc.FLOAT32: 'f', pc.FLOAT64: 'd'}
NAMES = ['x', 'y', 'z', 'intensity', 'ring', 'time', 'rgb', 'normal']
FAST = settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def layouts(draw, min_width: int = 0):
    """A random valid cloud: fields with gaps, padding, counts, byte order, rows and row padding."""
    names = draw(st.permutations(NAMES))[:draw(st.integers(1, len(NAMES)))]
    specs, offset = [], 0
    for name in names:
        datatype = draw(st.integers(pc.INT8, pc.FLOAT64))
        count = draw(st.sampled_from([1, 1, 1, 2, 3]))
        offset += draw(st.integers(0, 5))
        specs.append(pc.FieldSpec(name, offset, datatype, count))
        offset += pc.DATATYPE_TO_NUMPY[datatype].itemsize * count
    point_step = offset + draw(st.integers(0, 7))
    height = draw(st.integers(1, 3))
    width = draw(st.integers(min_width, 6))
    row_step = width * point_step + draw(st.sampled_from([0, 0, 0, 5]))
    data = draw(st.binary(min_size=row_step * height, max_size=row_step * height))
    listed = draw(st.permutations(specs))  # PointField order need not follow offsets
    return make_cloud(listed, point_step, row_step, height, width, draw(st.booleans()), data)


def make_cloud(specs, point_step, row_step, height, width, big, data) -> PointCloud2:
    msg = PointCloud2(height=height, width=width, point_step=point_step, row_step=row_step,
                      is_bigendian=big, is_dense=False)
    msg.fields = [PointField(name=s.name, offset=s.offset, datatype=s.datatype, count=s.count)
                  for s in specs]
    msg.data = array.array('B', data)
    return msg


def wire(msg: PointCloud2) -> PointCloud2:
    return deserialize_message(serialize_message(msg), PointCloud2)


def same_value(a, b) -> bool:
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def assert_matches_struct_oracle(msg: PointCloud2, grid: np.ndarray) -> None:
    """Every value of `grid` equals what `struct` reads at the byte position the spec defines."""
    data = bytes(msg.data)
    order = '>' if msg.is_bigendian else '<'
    for field in msg.fields:
        char = order + STRUCT_CHAR[field.datatype]
        size = struct.calcsize(char)
        for r in range(msg.height):
            for c in range(msg.width):
                values = np.asarray(grid[field.name][r, c]).reshape(-1)
                for k in range(field.count):
                    pos = r * msg.row_step + c * msg.point_step + field.offset + k * size
                    (expected,) = struct.unpack_from(char, data, pos)
                    assert same_value(expected, values[k].item()), (field.name, r, c, k)


@FAST
@given(layouts())
def test_any_layout_reads_like_struct_and_round_trips_bit_exact(msg):
    received = wire(msg)
    grid = pc.cloud_to_array(received, organized=True)
    assert grid.shape == (msg.height, msg.width)
    assert_matches_struct_oracle(msg, grid)
    rows = [bytes(msg.data)[r * msg.row_step:r * msg.row_step + msg.width * msg.point_step]
            for r in range(msg.height)]
    flat = pc.cloud_to_array(received)
    assert flat.shape == (msg.height * msg.width,) and flat.tobytes() == b''.join(rows)

    back = wire(pc.array_to_cloud(grid, frame_id='lidar'))
    assert [(f.name, f.offset, f.datatype, f.count) for f in back.fields] == [
        (f.name, f.offset, f.datatype, f.count) for f in msg.fields]
    multibyte = any(pc.DATATYPE_TO_NUMPY[f.datatype].itemsize > 1 for f in msg.fields)
    assert (back.height, back.width, back.point_step, back.is_bigendian) == (
        msg.height, msg.width, msg.point_step, msg.is_bigendian and multibyte)
    assert bytes(back.data) == b''.join(rows)  # padding bytes included; row padding removed
    assert back.row_step == msg.width * msg.point_step


@st.composite
def structured_arrays(draw):
    """Random structured numpy arrays (any byte order per array, padding, subarrays, 1-D or 2-D)."""
    order = draw(st.sampled_from('<>='))
    names = draw(st.permutations(NAMES))[:draw(st.integers(1, 5))]
    fmt = {'names': [], 'formats': [], 'offsets': []}
    offset = 0
    for name in names:
        base = np.dtype(draw(st.sampled_from(['i1', 'u1', 'i2', 'u2', 'i4', 'u4', 'f4', 'f8'])))
        count = draw(st.sampled_from([1, 1, 2]))
        offset += draw(st.integers(0, 3))
        fmt['names'].append(name)
        fmt['formats'].append(base.newbyteorder(order) if count == 1 else (base.newbyteorder(order), count))
        fmt['offsets'].append(offset)
        offset += base.itemsize * count
    fmt['itemsize'] = offset + draw(st.integers(0, 4))
    dtype = np.dtype(fmt)
    shape = draw(st.sampled_from([(0,), (1,), (7,), (2, 3), (3, 1)]))
    n = int(np.prod(shape))
    raw = draw(st.binary(min_size=n * dtype.itemsize, max_size=n * dtype.itemsize))
    return np.frombuffer(raw, dtype=dtype, count=n).reshape(shape)


@FAST
@given(structured_arrays())
def test_numpy_to_cloud_and_back_is_bit_exact(arr):
    msg = wire(pc.array_to_cloud(arr, frame_id='lidar'))
    back = pc.cloud_to_array(msg, organized=arr.ndim == 2)
    assert back.dtype == arr.dtype
    assert back.shape == arr.shape
    assert back.tobytes() == arr.tobytes()
    assert msg.header.frame_id == 'lidar'


@st.composite
def malformed(draw):
    """(cloud, expected error class): one defect injected into an otherwise valid cloud."""
    msg = draw(layouts(min_width=1))
    defect = draw(st.sampled_from(['short', 'long', 'row_step', 'datatype', 'beyond', 'overlap',
                                   'duplicate', 'no_fields']))
    fields = list(msg.fields)
    f0 = fields[0]
    if defect in ('short', 'long'):
        cut = draw(st.integers(1, 9))
        data = bytes(msg.data)
        msg.data = array.array('B', data[:-cut] if defect == 'short' and len(data) >= cut else
                               data + b'\0' * cut)
        return msg, pc.CloudSizeError
    if defect == 'row_step':
        msg.row_step = msg.width * msg.point_step - 1
        return msg, pc.CloudSizeError
    if defect == 'datatype':
        f0.datatype = draw(st.sampled_from([0, 9, 17, 255]))
        return msg, pc.UnknownDatatypeError
    if defect == 'beyond':
        size = pc.DATATYPE_TO_NUMPY[f0.datatype].itemsize * f0.count
        f0.offset = msg.point_step - size + draw(st.integers(1, 4))
        return msg, pc.FieldLayoutError
    if defect == 'overlap':
        fields.append(PointField(name='extra', offset=f0.offset, datatype=pc.UINT8, count=1))
    elif defect == 'duplicate':
        fields.append(PointField(name=f0.name, offset=f0.offset, datatype=f0.datatype, count=f0.count))
    else:
        fields = []
    msg.fields = fields
    return msg, pc.FieldLayoutError


@FAST
@given(malformed())
def test_malformed_clouds_raise_typed_errors(case):
    msg, error = case
    with pytest.raises(error) as info:
        pc.cloud_to_array(wire(msg))
    assert isinstance(info.value, pc.MalformedCloudError) and isinstance(info.value, ValueError)
    assert info.value.reason == error.reason and str(info.value)


def xyzi_cloud(points: np.ndarray, dtype: str = '<f4') -> PointCloud2:
    arr = np.empty(len(points), dtype=[(n, dtype) for n in ('x', 'y', 'z', 'intensity')])
    for i, name in enumerate(arr.dtype.names):
        arr[name] = points[:, i]
    return pc.array_to_cloud(arr)


@pytest.mark.parametrize('dtype', ['<f4', '>f8'])
def test_cloud_to_xyz_drops_and_counts_non_finite_points(dtype):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(500, 4))
    bad_rows = rng.choice(500, 37, replace=False)
    points[bad_rows, rng.integers(0, 4, 37)] = rng.choice([np.nan, np.inf, -np.inf], 37)
    msg = wire(xyzi_cloud(points, dtype))
    assert not msg.is_dense
    xyz, dropped = pc.cloud_to_xyz(msg)
    keep = np.isfinite(points[:, :3]).all(1)
    assert dropped == np.count_nonzero(~keep) and xyz.dtype == np.float32
    np.testing.assert_array_equal(xyz, points[keep, :3].astype(np.float32))
    xyzi, dropped_i = pc.cloud_to_xyz(msg, extra_fields=('intensity',))
    assert dropped_i == 37 and xyzi.shape == (463, 4)
    np.testing.assert_array_equal(xyzi, points[np.isfinite(points).all(1)].astype(np.float32))


def test_cloud_to_xyz_float64_overflow_is_dropped_not_inf():
    points = np.array([[1e300, 0, 0, 0], [1.0, 2.0, 3.0, 4.0]])
    xyz, dropped = pc.cloud_to_xyz(xyzi_cloud(points, '<f8'))
    assert dropped == 1
    np.testing.assert_array_equal(xyz, [[1, 2, 3]])


def test_cloud_to_xyz_missing_fields_and_vector_xyz():
    no_z = pc.array_to_cloud(np.zeros(3, dtype=[('x', 'f4'), ('y', 'f4'), ('intensity', 'f4')]))
    with pytest.raises(pc.MissingFieldError, match="'z'"):
        pc.cloud_to_xyz(no_z)
    full = xyzi_cloud(np.zeros((3, 4)))
    with pytest.raises(pc.MissingFieldError, match='ring'):
        pc.cloud_to_xyz(full, extra_fields=('ring',))
    vector_x = pc.array_to_cloud(np.zeros(3, dtype=[('x', 'f4', 2), ('y', 'f4'), ('z', 'f4')]))
    with pytest.raises(pc.FieldLayoutError):
        pc.cloud_to_xyz(vector_x)


def test_real_nuscenes_sweep_round_trips(repo):
    name = 'n015-2018-07-24-11-22-45+0800__LIDAR_TOP__1532402927647951.pcd.bin'
    path = repo / 'data' / 'nuscenes_sample' / name
    raw = np.fromfile(path, dtype=np.float32).reshape(-1, 5)
    arr = np.empty(len(raw), dtype=[('x', 'f4'), ('y', 'f4'), ('z', 'f4'), ('intensity', 'f4'),
                                    ('ring', 'u2')])
    for i, name in enumerate(arr.dtype.names):
        arr[name] = raw[:, i]
    msg = wire(pc.array_to_cloud(arr, frame_id='LIDAR_TOP'))
    assert msg.width == 34688 and msg.point_step == 18 and msg.is_dense
    points, dropped = pc.cloud_to_xyz(msg, extra_fields=('intensity', 'ring'))
    assert dropped == 0
    np.testing.assert_array_equal(points, raw)


def test_read_is_a_zero_copy_view():
    msg = xyzi_cloud(np.ones((10, 4)))
    view = pc.cloud_to_array(msg)
    assert np.shares_memory(view, np.frombuffer(msg.data, dtype=np.uint8))


def test_points_to_cloud_packs_columns():
    points = np.arange(12, dtype=np.float32).reshape(3, 4)
    msg = pc.points_to_cloud(points, names=('x', 'y', 'z', 'time'), frame_id='f')
    assert msg.point_step == 16 and [f.name for f in msg.fields] == ['x', 'y', 'z', 'time']
    np.testing.assert_array_equal(pc.cloud_to_xyz(msg, ('time',)).points, points)
    with pytest.raises(ValueError):
        pc.points_to_cloud(points, names=('x', 'y', 'z'))


def test_unsupported_numpy_dtypes_are_refused():
    with pytest.raises(pc.UnknownDatatypeError):
        pc.array_to_cloud(np.zeros(2, dtype=[('x', 'f2')]))
    with pytest.raises(pc.UnknownDatatypeError):
        pc.array_to_cloud(np.zeros((2, 3), dtype=np.float32))
    mixed = np.dtype({'names': ['x', 'y'], 'formats': ['<f4', '>f4'], 'offsets': [0, 4], 'itemsize': 8})
    with pytest.raises(pc.FieldLayoutError, match='byte orders'):
        pc.array_to_cloud(np.zeros(2, dtype=mixed))


def test_rosbags_messages_read_and_write_the_same_layout():
    """The bag tools use rosbags types: same dtype logic both ways, CDR compatible with rclpy."""
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    arr = np.frombuffer(np.random.default_rng(1).bytes(40 * 24), dtype=np.dtype(
        {'names': ['x', 'y', 'z', 'ring'], 'formats': ['>f8', '>f4', '>f4', '>u2'],
         'offsets': [0, 8, 12, 20], 'itemsize': 24}))
    rclpy_msg = pc.array_to_cloud(arr, frame_id='lidar')
    from_rclpy = store.deserialize_cdr(serialize_message(rclpy_msg), 'sensor_msgs/msg/PointCloud2')
    assert pc.cloud_to_array(from_rclpy).tobytes() == arr.tobytes()

    specs, big = pc.fields_from_dtype(arr.dtype)
    types = store.types
    bag_msg = types['sensor_msgs/msg/PointCloud2'](
        header=types['std_msgs/msg/Header'](
            stamp=types['builtin_interfaces/msg/Time'](sec=1, nanosec=2), frame_id='lidar'),
        height=1, width=len(arr), fields=[types['sensor_msgs/msg/PointField'](*s) for s in specs],
        is_bigendian=big, point_step=arr.dtype.itemsize, row_step=arr.nbytes,
        data=np.frombuffer(arr.tobytes(), np.uint8), is_dense=True)
    back = deserialize_message(store.serialize_cdr(bag_msg, 'sensor_msgs/msg/PointCloud2').tobytes(),
                               PointCloud2)
    assert pc.cloud_to_array(back).tobytes() == arr.tobytes()
    assert pc.cloud_to_array(bag_msg).dtype == arr.dtype


# Layouts modelled on common LiDAR drivers (field names, types and offsets as they publish them).
VELODYNE = pc.dtype_from_fields([('x', 0, pc.FLOAT32, 1), ('y', 4, pc.FLOAT32, 1), ('z', 8, pc.FLOAT32, 1),
                                 ('intensity', 12, pc.FLOAT32, 1), ('ring', 16, pc.UINT16, 1),
                                 ('time', 18, pc.FLOAT32, 1)], point_step=22)
OUSTER = pc.dtype_from_fields([('x', 0, pc.FLOAT32, 1), ('y', 4, pc.FLOAT32, 1), ('z', 8, pc.FLOAT32, 1),
                               ('intensity', 16, pc.FLOAT32, 1), ('t', 20, pc.UINT32, 1),
                               ('reflectivity', 24, pc.UINT16, 1), ('ring', 26, pc.UINT16, 1),
                               ('ambient', 28, pc.UINT16, 1), ('range', 32, pc.UINT32, 1)], point_step=48)


@pytest.mark.parametrize('dtype, shape', [(VELODYNE, (1, 2000)), (OUSTER, (64, 128))])
def test_driver_layouts_organized_with_missing_returns(dtype, shape):
    rng = np.random.default_rng(5)
    grid = np.frombuffer(rng.bytes(int(np.prod(shape)) * dtype.itemsize), dtype=dtype).reshape(shape).copy()
    for name in ('x', 'y', 'z', 'intensity'):
        grid[name] = rng.normal(scale=20, size=shape)
    missing = rng.random(shape) < 0.1  # drivers mark missing returns with NaN
    grid['x'][missing] = np.nan
    msg = wire(pc.array_to_cloud(grid, frame_id='lidar'))
    assert (msg.height, msg.width) == shape and msg.point_step == dtype.itemsize and not msg.is_dense
    assert pc.cloud_to_array(msg, organized=True).tobytes() == grid.tobytes()
    points, dropped = pc.cloud_to_xyz(msg, extra_fields=('intensity', 'ring'))
    assert dropped == np.count_nonzero(missing)
    keep = ~missing.reshape(-1)
    flat = grid.reshape(-1)
    expected = np.stack([flat[n][keep].astype(np.float32) for n in ('x', 'y', 'z', 'intensity', 'ring')], 1)
    np.testing.assert_array_equal(points, expected)
