"""sensor_msgs/PointCloud2 <-> numpy structured arrays, for any field layout.

Reading gives a zero-copy view of `msg.data` (one field per PointField, padding kept, either byte
order, organized clouds, row padding), so a 35k-point cloud costs microseconds. The readers only use
the PointCloud2 attribute names, so they work on rclpy messages and on rosbags message objects alike;
`dtype_from_fields` / `fields_from_dtype` are the shared layout logic for writers of either kind.
Every inconsistency between header fields and data raises a `MalformedCloudError` subclass.
"""

from __future__ import annotations

import array
import math
import sys
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np

# sensor_msgs/PointField datatype constants (fixed by the message definition).
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)
DATATYPE_TO_NUMPY = {
    INT8: np.dtype(np.int8), UINT8: np.dtype(np.uint8), INT16: np.dtype(np.int16),
    UINT16: np.dtype(np.uint16), INT32: np.dtype(np.int32), UINT32: np.dtype(np.uint32),
    FLOAT32: np.dtype(np.float32), FLOAT64: np.dtype(np.float64),
}
_KIND_SIZE_TO_DATATYPE = {(d.kind, d.itemsize): k for k, d in DATATYPE_TO_NUMPY.items()}
XYZ = ('x', 'y', 'z')


class MalformedCloudError(ValueError):
    """A PointCloud2 whose layout fields do not describe its data; `reason` says which check failed."""

    reason = 'malformed'


class CloudSizeError(MalformedCloudError):
    """len(data) != row_step * height, or row_step < width * point_step."""

    reason = 'size'


class UnknownDatatypeError(MalformedCloudError):
    """A PointField datatype outside INT8..FLOAT64, or a numpy dtype PointCloud2 cannot carry."""

    reason = 'datatype'


class FieldLayoutError(MalformedCloudError):
    """Fields overlapping each other or point_step, duplicate or empty names, count < 1."""

    reason = 'layout'


class MissingFieldError(MalformedCloudError):
    """A field the caller needs (x, y, z or a requested extra) is not in the cloud."""

    reason = 'missing_field'


class FieldSpec(NamedTuple):
    """One PointField as plain data (same attribute names as the message)."""

    name: str
    offset: int
    datatype: int
    count: int = 1


class CloudXYZ(NamedTuple):
    """(N, 3 + k) float32 points, all finite, and how many points were dropped as NaN/inf."""

    points: np.ndarray
    dropped: int


def _spec(field: Any) -> FieldSpec:
    if isinstance(field, tuple):
        return FieldSpec(*field)
    return FieldSpec(str(field.name), int(field.offset), int(field.datatype), int(field.count))


def dtype_from_fields(fields: Iterable[Any], point_step: int, is_bigendian: bool = False) -> np.dtype:
    """numpy dtype of one point; fields are PointField-like objects or (name, offset, datatype, count)."""
    order = '>' if is_bigendian else '<'
    names, formats, offsets, spans = [], [], [], []
    for field in fields:
        name, offset, datatype, count = _spec(field)
        if not name or name in names:
            raise FieldLayoutError(f'field name {name!r} is empty or repeated')
        if datatype not in DATATYPE_TO_NUMPY:
            raise UnknownDatatypeError(f'field {name!r} has unknown datatype {datatype}')
        if count < 1 or offset < 0:
            raise FieldLayoutError(f'field {name!r} has count {count}, offset {offset}')
        base = DATATYPE_TO_NUMPY[datatype].newbyteorder(order)
        end = offset + base.itemsize * count
        if end > point_step:
            raise FieldLayoutError(f'field {name!r} ends at byte {end}, beyond point_step {point_step}')
        names.append(name)
        formats.append(base if count == 1 else (base, (count,)))
        offsets.append(offset)
        spans.append((offset, end, name))
    if not names:
        raise FieldLayoutError('cloud has no fields')
    spans.sort()
    for (_, end_a, name_a), (start_b, _, name_b) in zip(spans, spans[1:]):
        if start_b < end_a:
            raise FieldLayoutError(f'fields {name_a!r} and {name_b!r} overlap')
    return np.dtype({'names': names, 'formats': formats, 'offsets': offsets, 'itemsize': point_step})


def fields_from_dtype(dtype: np.dtype) -> tuple[list[FieldSpec], bool]:
    """PointFields and is_bigendian for a structured dtype; raises if byte orders are mixed."""
    if dtype.names is None:
        raise UnknownDatatypeError(f'need a structured dtype, got {dtype} (see points_to_cloud)')
    specs, orders = [], set()
    for name in dtype.names:
        sub, offset = dtype.fields[name][:2]
        elem, shape = sub.subdtype if sub.subdtype else (sub, ())
        datatype = _KIND_SIZE_TO_DATATYPE.get((elem.kind, elem.itemsize))
        if datatype is None or elem.names is not None:
            raise UnknownDatatypeError(f'field {name!r} of dtype {sub} has no PointField datatype')
        if elem.itemsize > 1:
            orders.add(elem.byteorder == '>' or (elem.byteorder == '=' and sys.byteorder == 'big'))
        specs.append(FieldSpec(name, int(offset), datatype, int(np.prod(shape, dtype=np.int64))))
    if len(orders) > 1:
        raise FieldLayoutError('fields mix byte orders; convert the array to one byte order first')
    return specs, bool(orders.pop()) if orders else False


def _byte_view(data: Any) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 else data.view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:  # a plain list of ints
        return np.asarray(data, dtype=np.uint8)


_DTYPES: dict[tuple, np.dtype] = {}  # layout -> dtype: a sensor sends the same layout every sweep
_DTYPES_MAX = 64


def cloud_dtype(msg: Any) -> np.dtype:
    """numpy dtype of one point of this cloud (remembered per layout: building and checking it again
    for every cloud cost more than reading the cloud's xyz)."""
    fields = tuple(_spec(f) for f in msg.fields)
    key = (fields, int(msg.point_step), bool(msg.is_bigendian))
    dtype = _DTYPES.get(key)
    if dtype is None:
        dtype = dtype_from_fields(fields, key[1], key[2])  # raises for a bad layout: never cached
        if len(_DTYPES) >= _DTYPES_MAX:
            _DTYPES.clear()
        _DTYPES[key] = dtype
    return dtype


def cloud_to_array(msg: Any, organized: bool = False) -> np.ndarray:
    """Structured array of the cloud's points: (height * width,), or (height, width) if organized.

    A view of msg.data (no copy) unless rows carry padding and a flat array is asked for.
    """
    dtype = cloud_dtype(msg)
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    data = _byte_view(msg.data)
    if height < 0 or width < 0 or row_step < width * point_step:
        raise CloudSizeError(f'row_step {row_step} < width {width} * point_step {point_step}')
    if data.size != row_step * height:
        raise CloudSizeError(f'data has {data.size} bytes, row_step {row_step} * height {height} '
                             f'= {row_step * height}')
    grid = np.ndarray((height, width), dtype=dtype, buffer=data, strides=(row_step, point_step))
    if organized or row_step == width * point_step:
        return grid if organized else grid.reshape(-1)
    return np.frombuffer(_packed_bytes(grid), dtype=dtype)


def _packed_bytes(arr: np.ndarray) -> bytes:
    """The points' bytes back to back, padding included (a plain copy of a strided structured
    array would leave its padding bytes uninitialised)."""
    if arr.flags.c_contiguous:
        return arr.tobytes()
    return np.ascontiguousarray(arr[..., None].view(np.uint8)).tobytes()


def cloud_to_xyz(msg: Any, extra_fields: Iterable[str] = ()) -> CloudXYZ:
    """(N, 3 + k) float32 [x, y, z, *extra_fields] of every point whose values are all finite.

    Extra fields with count > 1 contribute count columns. Points with NaN/inf anywhere in the
    returned columns are dropped and counted (LiDAR drivers mark missing returns with NaN). A cloud
    of 0 points gives a (0, 3 + k) array. The array is column-major (each column contiguous): the
    columns are written one field at a time and cropping reads them one coordinate at a time.
    """
    arr = cloud_to_array(msg)
    names = (*XYZ, *extra_fields)
    fields = arr.dtype.fields or {}
    for name in names:
        if name not in fields:
            raise MissingFieldError(f'cloud has no field {name!r} (fields: {arr.dtype.names})')
    # columns per field from the dtype, not from the data (a 0-point cloud has no data to reshape)
    widths = [math.prod(arr.dtype[name].shape) for name in names]
    if any(w != 1 for w in widths[:3]):
        raise FieldLayoutError('x, y and z must have count 1')
    n = len(arr)
    out = np.empty((n, sum(widths)), dtype=np.float32, order='F')
    start = 0
    with np.errstate(over='ignore', invalid='ignore'):  # float64 beyond float32 -> inf -> dropped
        for name, width in zip(names, widths):
            out[:, start:start + width] = arr[name].reshape(n, width)
            start += width
    # One test over the whole block for the usual all-finite cloud; per-row only when something is not
    # (isfinite(...).all(axis=1) alone costs 10x the copy above).
    if np.isfinite(out).all():
        return CloudXYZ(out, 0)
    finite = np.isfinite(out).all(axis=1)
    kept = np.empty((int(np.count_nonzero(finite)), out.shape[1]), dtype=np.float32, order='F')
    for j in range(out.shape[1]):
        kept[:, j] = out[:, j][finite]
    return CloudXYZ(kept, n - len(kept))


def _is_dense(arr: np.ndarray) -> bool:
    names = arr.dtype.names or ()
    return all(not np.issubdtype(arr.dtype[n], np.floating) or bool(np.isfinite(arr[n]).all())
               for n in XYZ if n in names)


def array_to_cloud(arr: np.ndarray, frame_id: str = '', stamp: Any = None, header: Any = None):
    """sensor_msgs/PointCloud2 (rclpy) holding a structured array, 1-D or organized (height, width).

    Field offsets, padding and byte order are kept as the dtype has them; bytes are copied once.
    """
    from sensor_msgs.msg import PointCloud2, PointField

    arr = np.asarray(arr)
    if arr.ndim not in (1, 2):
        raise ValueError(f'need a 1-D or (height, width) array, got shape {arr.shape}')
    specs, is_bigendian = fields_from_dtype(arr.dtype)
    height, width = (1, arr.shape[0]) if arr.ndim == 1 else arr.shape
    msg = PointCloud2()
    if header is not None:
        msg.header = header
    else:
        msg.header.frame_id = frame_id
        if stamp is not None:
            msg.header.stamp = stamp
    msg.height, msg.width = int(height), int(width)
    msg.fields = [PointField(name=s.name, offset=s.offset, datatype=s.datatype, count=s.count)
                  for s in specs]
    msg.is_bigendian = is_bigendian
    msg.point_step = arr.dtype.itemsize
    msg.row_step = arr.dtype.itemsize * int(width)
    # array.array, not bytes: rclpy checks a bytes value element by element (~113 ms for 35k points).
    msg.data = array.array('B', _packed_bytes(arr))
    msg.is_dense = _is_dense(arr)
    return msg


def points_to_cloud(points: np.ndarray, names: Iterable[str] = XYZ, frame_id: str = '',
                    stamp: Any = None, header: Any = None):
    """PointCloud2 of packed float32 fields from an (N, C) array, one name per column."""
    points = np.asarray(points, dtype=np.float32)
    names = tuple(names)
    if points.ndim != 2 or points.shape[1] != len(names):
        raise ValueError(f'points of shape {points.shape} do not match fields {names}')
    arr = np.empty(len(points), dtype=[(n, np.float32) for n in names])
    for i, name in enumerate(names):
        arr[name] = points[:, i]
    return array_to_cloud(arr, frame_id=frame_id, stamp=stamp, header=header)
