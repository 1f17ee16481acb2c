"""RViz markers for labelled boxes: a wireframe box and a 'car 0.83' label per object.

The array starts with DELETEALL, so boxes of the previous frame vanish even when fewer objects follow.
Colours come from a fixed palette indexed by a CRC of the label: the same label has the same colour
in every process and run (Python's hash() is salted per process).
"""

from __future__ import annotations

import copy
import math
import zlib
from typing import Any

import numpy as np

from blendclip_core.geometry import Boxes
from blendclip_core.types import ObjectStatus, Predictions
from blendclip_ros.conversions.boxes import object_rows, pose_msg

# Tableau 10: distinct on RViz's dark background.
PALETTE = (
    (0.12, 0.47, 0.71), (1.00, 0.50, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16),
    (0.58, 0.40, 0.74), (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.50, 0.50, 0.50),
    (0.74, 0.74, 0.13), (0.09, 0.75, 0.81),
)
UNLABELLED = (0.6, 0.6, 0.6)  # no label: no points or below threshold
NAMESPACE_BOXES = 'blendclip/boxes'
NAMESPACE_LABELS = 'blendclip/labels'

# Unit cube corners (+-0.5) and its 12 edges as corner index pairs.
_CORNERS = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8)
          if np.count_nonzero(_CORNERS[a] != _CORNERS[b]) == 1]
_EDGE_INDEX = [k for edge in _EDGES for k in edge]


def label_colour(label: str) -> tuple[float, float, float]:
    """Stable RGB in [0, 1] for a label ('' -> grey)."""
    if not label:
        return UNLABELLED
    return PALETTE[zlib.crc32(label.encode('utf-8')) % len(PALETTE)]


def label_text(status: int, label: str, score: float, top: list[tuple[str, float]]) -> str:
    """'car 0.83' (OK), 'car? 0.41' (below the threshold), else the status in words ('no points')."""
    if status == ObjectStatus.OK:
        return f'{label} {score:.2f}'
    if status == ObjectStatus.BELOW_THRESHOLD and top:
        return f'{top[0][0]}? {top[0][1]:.2f}'
    return ObjectStatus(status).name.lower().replace('_', ' ')


def _duration(seconds: float):
    from builtin_interfaces.msg import Duration

    sec = math.floor(seconds)
    return Duration(sec=int(sec), nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def _point(point_cls, xyz) -> Any:
    point = point_cls()  # attributes, not keywords: keyword construction is ~10x slower in rclpy
    point.x, point.y, point.z = xyz
    return point


def labelled_markers(predictions: Predictions, boxes: Boxes, header: Any, lifetime_s: float = 0.0,
                     line_width: float = 0.05, text_height: float = 0.6, alpha: float = 0.9):
    """visualization_msgs/MarkerArray for the predictions of `boxes` (header: the labels' header).

    Drawn from the same per-object values the LabelledObjectArray is made of (conversions.boxes
    object_rows), so markers and labels always agree. lifetime_s: how long RViz keeps a marker without
    a refresh (0 = until replaced). Objects with an invalid box are skipped (RViz cannot draw NaN
    poses). Text sits above the box, z up in the frame.
    """
    from geometry_msgs.msg import Point, Pose
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, MarkerArray

    # Markers are shallow copies of two templates (Marker() builds ~15 nested messages: ~7x slower);
    # what differs per object is assigned, never mutated, so the shared parts stay shared.
    lifetime = _duration(max(float(lifetime_s), 0.0))
    box_template = Marker(header=header, ns=NAMESPACE_BOXES, type=Marker.LINE_LIST,
                          action=Marker.ADD, lifetime=lifetime)
    box_template.scale.x = float(line_width)
    text_template = Marker(header=header, ns=NAMESPACE_LABELS, type=Marker.TEXT_VIEW_FACING,
                           action=Marker.ADD, lifetime=lifetime)
    text_template.scale.z = float(text_height)
    colours = {}
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    for i, row in enumerate(object_rows(predictions, boxes)):
        _, center, quat, size, top, label, score, _, status, _, _ = row
        if status == ObjectStatus.INVALID_BOX:
            continue
        if label not in colours:  # label is '' unless the status is OK
            r, g, b = label_colour(label)
            colours[label] = ColorRGBA(r=r, g=g, b=b, a=float(alpha))
        box = copy.copy(box_template)
        box.id, box.pose, box.color = i, pose_msg(center, quat), colours[label]
        corners = [_point(Point, c) for c in (_CORNERS * size).tolist()]
        box.points = [corners[k] for k in _EDGE_INDEX]  # 8 Point objects, each corner ends 3 edges
        text = copy.copy(text_template)
        text.id, text.color, text.text = i, colours[label], label_text(status, label, score, top)
        text.pose = Pose()
        text.pose.position = _point(Point, (center[0], center[1],
                                            float(center[2] + 0.5 * size[2] + 0.5 * float(text_height))))
        markers.extend((box, text))
    return MarkerArray(markers=markers)
