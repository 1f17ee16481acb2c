"""LabelledObjectArray straight to its CDR bytes, for the node's publish (no Python message objects).

rclpy serialises a message by walking its Python objects (64 objects with top-5 labels: ~400 objects,
~0.45 ms on top of the ~0.25 ms it takes to make them); `Publisher.publish(bytes)` sends bytes that
are already serialised. This writes the same bytes from plain values. The encoding is the one ROS 2
RMWs put on the wire (rmw serialised messages): a 4-byte encapsulation header (CDR, little endian),
then classic CDR: each primitive aligned to its own size counted from the end of that header, strings
as uint32 length (with the terminating NUL) + bytes + NUL, sequences as uint32 count + elements.
A string padded to 4 bytes is the same wherever it lands (it always starts 4-aligned), so labels are
encoded once per frame; only the float64 pose needs the running offset.
tests/node/test_fast_paths.py checks that rclpy reads back exactly the message the generated classes
would have sent.
"""

from __future__ import annotations

import struct
from typing import Any

from blendclip_core.geometry import Boxes
from blendclip_core.types import Predictions

ENCAPSULATION = b'\x00\x01\x00\x00'  # CDR_LE, no options
_U32 = struct.Struct('<I')
_TIME = struct.Struct('<iI')
_F32 = struct.Struct('<f')
_POSE_SIZE = struct.Struct('<10d')  # Point x y z, Quaternion x y z w, Vector3 x y z: contiguous float64
_COUNT_STATUS = struct.Struct('<IB3x')  # num_points, status, padding up to the next string


def cdr_string(value: str) -> bytes:
    """A CDR string padded to a multiple of 4 bytes (position-independent: strings start 4-aligned)."""
    # rclpy stores strings as C strings: anything after an embedded NUL is not sent
    data = value.encode('utf-8').split(b'\0', 1)[0]
    return _U32.pack(len(data) + 1) + data + bytes(4 - len(data) % 4)  # NUL + padding


def _f32(value: float) -> bytes:
    try:
        return _F32.pack(value)
    except OverflowError:  # beyond float32: the C conversion rclpy does gives +-inf
        return _F32.pack(float('inf') if value > 0 else float('-inf'))


def labelled_objects_cdr(predictions: Predictions, boxes: Boxes, header: Any, model: str = '') -> bytes:
    """The serialised blendclip/LabelledObjectArray that labelled_objects_to_msg(predictions, boxes,
    header=header, model=model) would give (header: a std_msgs/Header-like object)."""
    from blendclip_ros.conversions.boxes import object_rows

    if len(predictions) != len(boxes):
        raise ValueError(f'{len(predictions)} predictions for {len(boxes)} boxes')
    strings: dict[str, bytes] = {}

    def s(value: str) -> bytes:
        out = strings.get(value)
        if out is None:
            out = strings[value] = cdr_string(value)
        return out

    parts = [ENCAPSULATION, _TIME.pack(int(header.stamp.sec), int(header.stamp.nanosec)),
             s(str(header.frame_id)), _U32.pack(len(boxes))]
    offset = sum(len(p) for p in parts) - len(ENCAPSULATION)  # from the end of the encapsulation
    pad = bytes(4)
    for (id_, center, quat, size, top, label, score, num_points, status, det_label,
         det_score) in object_rows(predictions, boxes):
        chunk = [s(id_)]
        if (offset + len(chunk[0])) % 8:  # all so far is 4-aligned: at most 4 bytes to the float64 pose
            chunk.append(pad)
        chunk += [_POSE_SIZE.pack(*center, *quat, *size), s(label), _f32(score), _U32.pack(len(top))]
        for lab, sc in top:
            chunk += [s(lab), _f32(sc)]
        chunk += [_COUNT_STATUS.pack(num_points, status), s(det_label), _f32(det_score)]
        block = b''.join(chunk)
        offset += len(block)
        parts.append(block)
    parts.append(s(str(predictions.vocabulary_version)))
    last = cdr_string(str(model))  # the message ends after its last NUL: no padding after it
    parts.append(last[:4 + _U32.unpack_from(last)[0]])
    return b''.join(parts)
