"""Test-side readers for bag contents, independent of the code under test."""

from __future__ import annotations

import numpy as np


def cloud_dtype(fields, point_step: int, is_bigendian: bool = False) -> np.dtype:
    """Independent of the code under test: PointField list -> numpy dtype."""
    types = {1: 'i1', 2: 'u1', 3: 'i2', 4: 'u2', 5: 'i4', 6: 'u4', 7: 'f4', 8: 'f8'}
    order = '>' if is_bigendian else '<'
    return np.dtype({'names': [f.name for f in fields],
                     'formats': [order + types[f.datatype] for f in fields],
                     'offsets': [f.offset for f in fields], 'itemsize': point_step})


def cloud_array(msg) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), dtype=cloud_dtype(msg.fields, msg.point_step, msg.is_bigendian),
                         count=msg.width * msg.height)
