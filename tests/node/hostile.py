"""Hostile and foreign-platform inputs for the node's tests: big-endian CDR written by hand, broken bytes.

Kept apart from the tests so the cross-process publisher and the unit tests send the same bytes.
"""

from __future__ import annotations

import struct

from blendclip_core.geometry import Boxes

CDR_BE = b'\x00\x00\x00\x00'  # encapsulation: plain CDR, big endian, no options


class _Writer:
    """Classic CDR: each primitive aligned to its size, counted from the end of the encapsulation."""

    def __init__(self, order: str) -> None:
        self.order, self.body = order, bytearray()

    def put(self, fmt: str, *values) -> None:
        size = struct.calcsize(fmt.lstrip('0123456789')[0])  # alignment: the first primitive's size
        self.body += bytes(-len(self.body) % size)
        self.body += struct.pack(self.order + fmt, *values)

    def string(self, text: str) -> None:
        data = text.encode('utf-8')
        self.put('I', len(data) + 1)
        self.body += data + b'\0'


def big_endian_box_array(boxes: Boxes, sec: int, nanosec: int) -> bytes:
    """A blendclip/DetectedBoxArray as a big-endian platform's RMW would serialise it."""
    w = _Writer('>')
    w.put('iI', sec, nanosec)
    w.string(boxes.frame_id)
    w.put('I', len(boxes))
    for i in range(len(boxes)):
        w.string(boxes.ids[i])
        w.put('10d', *boxes.centers[i], *boxes.quaternions[i], *boxes.sizes[i])
        w.string(boxes.detector_labels[i])
        w.put('f', float(boxes.detector_scores[i]))
    return CDR_BE + bytes(w.body)


def broken_box_messages(valid: bytes) -> dict[str, bytes]:
    """Bytes on the box topic that are no DetectedBoxArray, by kind (`valid`: a little-endian one)."""
    (frame_len,) = struct.unpack_from('<I', valid, 12)
    count_at = 4 + -(-(12 + frame_len) // 4) * 4  # the box count: after the frame_id, 4-aligned
    return {
        'eight_bytes': valid[:8],
        'empty_stamp_only': valid[:12],
        'truncated': valid[:len(valid) // 2],
        'big_endian_flag_little_endian_body': b'\x00\x00' + valid[2:],
        'unknown_encapsulation': b'\x00\x07' + valid[2:],
        'huge_count': valid[:count_at] + struct.pack('<I', 0xFFFFFFF0) + valid[count_at + 4:],
        'garbage': bytes(range(256)) * 3,
    }
