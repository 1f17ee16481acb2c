"""Hostile inputs for the node fuzz campaign (benchmarks/node_fuzz.py): what a broken driver, a corrupt
bag or an attacker can put on the node's topics and parameters.

Each generator takes a seeded numpy Generator and the valid sample frame and returns one `Hostile`:
where it goes (the cloud topic, the box topic, both as a frame, or a parameter) and what it is (a
message, raw CDR bytes, or a parameter value). Kinds are data (`KINDS`), so the campaign's report can
count per kind and a new kind is one function plus one line.
"""

from __future__ import annotations

import copy
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sensor_msgs.msg import PointCloud2

from blendclip_core.geometry import Boxes

NS = 1_000_000_000
MAX_SEC = 2**31 - 1  # builtin_interfaces/Time.sec is int32


@dataclass
class Hostile:
    kind: str
    target: str  # 'cloud' | 'boxes' | 'frame' (cloud + boxes, same stamp) | 'param' | 'stamp'
    payload: Any = None  # message, raw bytes, Boxes, or (name, value) for 'param'
    stamp_ns: int | None = None  # for 'stamp': the (hostile) stamp of an otherwise valid frame
    nanosec: int | None = None  # an out-of-range nanosec field, where the kind sets one
    generator: str = ''  # the GENERATORS entry that drew it


@dataclass
class Sample:
    cloud: PointCloud2  # the real sweep, valid
    boxes: Boxes  # its boxes, valid
    boxes_cdr: bytes  # the boxes as serialised DetectedBoxArray
    cloud_cdr: bytes


# ------------------------------------------------------------------------------------ raw CDR
def _truncated(data: bytes, rng) -> bytes:
    return data[:int(rng.integers(0, len(data)))]


def boxes_truncated(rng, s: Sample) -> Hostile:
    return Hostile('boxes_truncated_cdr', 'boxes', _truncated(s.boxes_cdr, rng))


def boxes_eight_bytes(rng, s: Sample) -> Hostile:
    return Hostile('boxes_8_bytes', 'boxes', bytes(rng.integers(0, 256, 8, dtype=np.uint8)))


def boxes_garbage(rng, s: Sample) -> Hostile:
    body = bytes(rng.integers(0, 256, int(rng.integers(0, 4096)), dtype=np.uint8))
    return Hostile('boxes_garbage_cdr', 'boxes', b'\x00\x01\x00\x00' + body)


def boxes_big_endian(rng, s: Sample) -> Hostile:
    """A big-endian CDR header on little-endian content (or on garbage)."""
    body = s.boxes_cdr[4:] if rng.random() < 0.5 else bytes(rng.integers(0, 256, 512, dtype=np.uint8))
    return Hostile('boxes_big_endian_cdr', 'boxes', b'\x00\x00\x00\x00' + body)


def boxes_huge_count(rng, s: Sample) -> Hostile:
    """A header and frame id, then a sequence length of ~2**31 boxes with a few bytes behind it."""
    head = s.boxes_cdr[:4] + struct.pack('<iI', 1, 2) + struct.pack('<I', 1) + b'\x00'
    head += b'\x00' * (-len(head) % 4)
    body = head + struct.pack('<I', 2**31 - 1) + b'\x00' * 64
    return Hostile('boxes_huge_sequence_length', 'boxes', body)


def cloud_truncated(rng, s: Sample) -> Hostile:
    return Hostile('cloud_truncated_cdr', 'cloud', _truncated(s.cloud_cdr, rng))


def cloud_garbage(rng, s: Sample) -> Hostile:
    body = bytes(rng.integers(0, 256, int(rng.integers(0, 4096)), dtype=np.uint8))
    return Hostile('cloud_garbage_cdr', 'cloud', b'\x00\x01\x00\x00' + body)


# ------------------------------------------------------------------------------------ cloud layouts
def _cloud(s: Sample) -> PointCloud2:
    c = copy.copy(s.cloud)
    c.fields = [copy.copy(f) for f in s.cloud.fields]
    return c


def cloud_bad_layout(rng, s: Sample) -> Hostile:
    """One of the ways a driver gets PointCloud2's self-description wrong, sent as a frame."""
    c = _cloud(s)
    way = int(rng.integers(0, 9))
    if way == 0:
        c.fields = [f for f in c.fields if f.name != 'x']
    elif way == 1:
        c.fields[0].datatype = int(rng.choice([0, 9, 99, 255]))
    elif way == 2:
        c.fields[1].offset = c.point_step + int(rng.integers(0, 1000))
    elif way == 3:
        c.point_step = int(rng.choice([0, 1, 4]))
    elif way == 4:
        c.width = int(rng.choice([2**31 - 1, c.width * 1000]))
        c.row_step = c.width * c.point_step % 2**32
    elif way == 5:
        c.data = bytes(c.data[:int(rng.integers(0, len(c.data)))])
    elif way == 6:
        c.is_bigendian = True
    elif way == 7:
        c.fields[0].count = int(rng.choice([0, 2**31 - 1]))
    else:
        c.height, c.width, c.row_step, c.data = 0, 0, 0, b''
    return Hostile(f'cloud_layout_{way}', 'frame', (c, s.boxes))


def cloud_non_finite(rng, s: Sample) -> Hostile:
    c = _cloud(s)
    xyz = np.frombuffer(bytes(c.data), np.uint8).copy()
    n = len(xyz) // c.point_step
    rows = rng.choice(n, size=n // int(rng.choice([2, 10, 1])), replace=False)
    view = xyz.reshape(n, c.point_step)[:, :12].copy().view(np.float32)
    view[rows] = rng.choice([np.nan, np.inf, -np.inf, 3e38], size=(len(rows), 3))
    xyz.reshape(n, c.point_step)[:, :12] = view.view(np.uint8)
    c.data = xyz.tobytes()
    return Hostile('cloud_nan_inf_points', 'frame', (c, s.boxes))


# ------------------------------------------------------------------------------------ boxes
def _boxes(s: Sample, centers=None, sizes=None, quats=None, ids=None, frame_id=None) -> Boxes:
    b = s.boxes
    return Boxes(b.centers if centers is None else centers, b.sizes if sizes is None else sizes,
                 b.quaternions if quats is None else quats, b.ids if ids is None else ids,
                 b.frame_id if frame_id is None else frame_id, b.detector_labels, b.detector_scores)


def boxes_non_finite(rng, s: Sample) -> Hostile:
    n = len(s.boxes)
    which = int(rng.integers(0, 3))
    arrs = [s.boxes.centers.copy(), s.boxes.sizes.copy(), s.boxes.quaternions.copy()]
    rows = rng.choice(n, size=max(1, n // 3), replace=False)
    arrs[which][rows, int(rng.integers(0, arrs[which].shape[1]))] = rng.choice([np.nan, np.inf, -np.inf])
    return Hostile(f'boxes_non_finite_{("center", "size", "quaternion")[which]}', 'frame',
                   (s.cloud, _boxes(s, *arrs)))


def boxes_degenerate_size(rng, s: Sample) -> Hostile:
    sizes = s.boxes.sizes * rng.choice([0.0, -1.0, 1e-30], size=(len(s.boxes), 1))
    return Hostile('boxes_zero_or_negative_size', 'frame', (s.cloud, _boxes(s, sizes=sizes)))


def boxes_huge_size(rng, s: Sample) -> Hostile:
    """Boxes given in millimetres, or covering the whole cloud, or astronomically large."""
    way = int(rng.integers(0, 3))
    if way == 0:
        b = _boxes(s, centers=s.boxes.centers * 1000, sizes=s.boxes.sizes * 1000)
        return Hostile('boxes_in_millimetres', 'frame', (s.cloud, b))
    n = min(len(s.boxes), 46)
    size = 300.0 if way == 1 else float(rng.choice([1e6, 1e30, 3e38]))
    b = Boxes(np.zeros((n, 3)), np.full((n, 3), size), np.tile([0, 0, 0, 1.0], (n, 1)),
              tuple(f'big-{i}' for i in range(n)), s.boxes.frame_id)
    return Hostile('boxes_whole_cloud' if way == 1 else 'boxes_astronomical', 'frame', (s.cloud, b))


def boxes_bad_quaternion(rng, s: Sample) -> Hostile:
    q = s.boxes.quaternions.copy()
    way = int(rng.integers(0, 3))
    q[:] = ((0, 0, 0, 0), (1e30, 2e30, 0, 1), (1e300, 0, 1e300, 0))[way]
    return Hostile(('boxes_zero_quaternion', 'boxes_huge_quaternion', 'boxes_overflow_quaternion')[way],
                   'frame', (s.cloud, _boxes(s, quats=q)))


def boxes_too_many(rng, s: Sample) -> Hostile:
    n = int(rng.choice([2048, 2049, 5000]))
    idx = np.arange(n) % len(s.boxes)
    b = s.boxes
    ids = tuple(str(i) for i in range(n))
    many = Boxes(b.centers[idx], b.sizes[idx], b.quaternions[idx], ids, b.frame_id)
    return Hostile(f'boxes_count_{n}', 'frame', (s.cloud, many))


def boxes_long_strings(rng, s: Sample) -> Hostile:
    long = 'x' * int(rng.choice([10_000, 100_000]))
    if rng.random() < 0.5:
        return Hostile('boxes_long_ids', 'frame', (s.cloud, _boxes(s, ids=tuple(long for _ in s.boxes.ids))))
    return Hostile('boxes_unknown_long_frame', 'frame', (s.cloud, _boxes(s, frame_id=long)))


# ------------------------------------------------------------------------------------ stamps
def stamp_hostile(rng, s: Sample) -> Hostile:
    """A valid frame whose stamp is absurd: the largest, an hour ahead, zero, long ago, bad nanosec."""
    import time

    now = time.time_ns()
    way = int(rng.integers(0, 5))
    if way == 4:
        return Hostile('stamp_nanosec_out_of_range', 'stamp', stamp_ns=now, nanosec=4_000_000_000)
    stamp = (MAX_SEC * NS + NS - 1, now + 3600 * NS, 0, now - 86400 * NS)[way]
    return Hostile(('stamp_largest', 'stamp_hour_ahead', 'stamp_zero', 'stamp_day_old')[way], 'stamp',
                   stamp_ns=stamp)


# ------------------------------------------------------------------------------------ parameters
def param_hostile(rng, s: Sample) -> Hostile:
    """Vocabularies and templates a node must refuse (or accept cheaply), never crash on."""
    way = int(rng.integers(0, 7))
    value: Any
    if way == 0:
        name, value = 'vocabulary', [f'label {i}' for i in range(4097)]
    elif way == 1:
        name, value = 'vocabulary', ['y' * 100_000]
    elif way == 2:
        name, value = 'vocabulary', []
    elif way == 3:
        name, value = 'prompt_templates', ['a {} ' * 3 for _ in range(int(rng.choice([1000, 10_000])))]
    elif way == 4:
        name, value = 'prompt_templates', ['t' * 100_000 + '{}']
    elif way == 5:
        name, value = 'prompt_templates', ['no placeholder']
    else:
        name, value = 'vocabulary', ['car', 'car', '', '  ']
    return Hostile(f'param_{name}_{way}', 'param', (name, value))


GENERATORS: dict[str, Callable[[Any, Sample], Hostile]] = {
    'boxes_truncated': boxes_truncated, 'boxes_8_bytes': boxes_eight_bytes, 'boxes_garbage': boxes_garbage,
    'boxes_big_endian': boxes_big_endian, 'boxes_huge_count': boxes_huge_count,
    'cloud_truncated': cloud_truncated, 'cloud_garbage': cloud_garbage,
    'cloud_bad_layout': cloud_bad_layout, 'cloud_non_finite': cloud_non_finite,
    'boxes_non_finite': boxes_non_finite, 'boxes_degenerate_size': boxes_degenerate_size,
    'boxes_huge_size': boxes_huge_size, 'boxes_bad_quaternion': boxes_bad_quaternion,
    'boxes_too_many': boxes_too_many, 'boxes_long_strings': boxes_long_strings,
    'stamp': stamp_hostile, 'param': param_hostile,
}
# Relative frequency: raw bytes are cheap for the node and the bulk of a real attack; frames with
# hostile boxes cost real work (the point of the bound), parameters a service round trip.
WEIGHTS: dict[str, float] = {
    'boxes_truncated': 12, 'boxes_8_bytes': 6, 'boxes_garbage': 12, 'boxes_big_endian': 8,
    'boxes_huge_count': 4, 'cloud_truncated': 8, 'cloud_garbage': 8,
    'cloud_bad_layout': 6, 'cloud_non_finite': 2, 'boxes_non_finite': 3, 'boxes_degenerate_size': 2,
    'boxes_huge_size': 2, 'boxes_bad_quaternion': 2, 'boxes_too_many': 1, 'boxes_long_strings': 1,
    'stamp': 4, 'param': 1,
}
# A frame whose boxes are hostile: its e2e time is what `worst_frame_ms` reports.
HOSTILE_BOX_FRAMES = ('boxes_non_finite', 'boxes_degenerate_size', 'boxes_huge_size', 'boxes_bad_quaternion',
                      'boxes_too_many', 'boxes_long_strings')


def times_frame(h: Hostile) -> bool:
    """True for a frame of hostile boxes (drawn by one of HOSTILE_BOX_FRAMES' generators)."""
    return h.target == 'frame' and h.generator in HOSTILE_BOX_FRAMES


def draw(rng, sample: Sample) -> Hostile:
    names = list(GENERATORS)
    p = np.array([WEIGHTS[n] for n in names], float)
    name = names[int(rng.choice(len(names), p=p / p.sum()))]
    h = GENERATORS[name](rng, sample)
    h.generator = name
    return h
