"""Our box messages <-> blendclip_core.geometry.Boxes, and Predictions -> LabelledObjectArray.

Readers use only attribute names, so they accept rclpy messages and rosbags message objects; builders
import the rclpy message classes when called (importing this module loads no ROS code).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from blendclip_core.geometry import Boxes
from blendclip_core.types import ObjectStatus, Predictions
from blendclip_ros.conversions.fastmsg import maker

# Statuses that carry top-k hypotheses: the object was classified (maybe below the threshold).
CLASSIFIED = (ObjectStatus.OK, ObjectStatus.BELOW_THRESHOLD)


def _box_row(b: Any) -> tuple[float, ...]:
    pose, size = b.pose, b.size
    p, q = pose.position, pose.orientation
    return p.x, p.y, p.z, q.x, q.y, q.z, q.w, size.x, size.y, size.z, b.detector_score


def _boxes_from_items(items: Sequence[Any], frame_id: str) -> Boxes:
    # one row of numbers per box, one array for all (per-field arrays cost twice as much for 64 boxes)
    n = len(items)
    rows = np.array([_box_row(b) for b in items], dtype=np.float64).reshape(n, 11)
    return Boxes(rows[:, 0:3], rows[:, 7:10], rows[:, 3:7], tuple(str(b.id) for b in items), str(frame_id),
                 tuple(str(b.detector_label) for b in items), rows[:, 10])


def boxes_from_msg(msg: Any) -> Boxes:
    """blendclip/DetectedBoxArray -> Boxes in msg.header.frame_id."""
    return _boxes_from_items(list(msg.boxes), msg.header.frame_id)


def boxes_from_labelled_msg(msg: Any) -> Boxes:
    """The boxes of a blendclip/LabelledObjectArray (id, pose, size, detector fields)."""
    return _boxes_from_items(list(msg.objects), msg.header.frame_id)


# Messages below are filled by attribute, not by keyword: rclpy's keyword constructor checks every
# name and is several times slower, which adds up over 100 boxes at 10 Hz.

def _fill_pose(pose: Any, center: Sequence[float], quaternion: Sequence[float]) -> Any:
    p, q = pose.position, pose.orientation
    p.x, p.y, p.z = float(center[0]), float(center[1]), float(center[2])
    q.x, q.y, q.z, q.w = (float(quaternion[0]), float(quaternion[1]), float(quaternion[2]),
                          float(quaternion[3]))
    return pose


def _fill_vector(vector: Any, values: Sequence[float]) -> Any:
    vector.x, vector.y, vector.z = float(values[0]), float(values[1]), float(values[2])
    return vector


def pose_msg(center: Sequence[float], quaternion: Sequence[float]):
    """geometry_msgs/Pose from a centre (x, y, z) and a quaternion (x, y, z, w)."""
    from geometry_msgs.msg import Pose

    return _fill_pose(Pose(), center, quaternion)


def _header(header: Any, frame_id: str, stamp: Any):
    from std_msgs.msg import Header

    if header is not None:
        return header
    out = Header(frame_id=frame_id)
    if stamp is not None:
        out.stamp = stamp
    return out


def boxes_to_msg(boxes: Boxes, stamp: Any = None, header: Any = None):
    """Boxes -> blendclip/DetectedBoxArray (header from `header`, else boxes.frame_id + stamp)."""
    from blendclip.msg import DetectedBox, DetectedBoxArray

    msg = DetectedBoxArray(header=_header(header, boxes.frame_id, stamp))
    items = []
    for i in range(len(boxes)):
        box = DetectedBox()
        box.id = boxes.ids[i]
        _fill_pose(box.pose, boxes.centers[i], boxes.quaternions[i])
        _fill_vector(box.size, boxes.sizes[i])
        box.detector_label = boxes.detector_labels[i]
        box.detector_score = float(boxes.detector_scores[i])
        items.append(box)
    msg.boxes = items
    return msg


def labelled_objects_to_msg(predictions: Predictions, boxes: Boxes, header: Any = None,
                            stamp: Any = None, model: str = ''):
    """Predictions for `boxes` -> blendclip/LabelledObjectArray.

    header: normally the input DetectedBoxArray's header (copied so outputs pair with inputs);
    without it, boxes.frame_id and `stamp`. label is '' and score NaN unless the status is OK; top_k is
    filled for every classified object (OK or BELOW_THRESHOLD), empty otherwise.
    """
    from blendclip.msg import LabelledObjectArray

    if len(predictions) != len(boxes):
        raise ValueError(f'{len(predictions)} predictions for {len(boxes)} boxes')
    build = _fast_objects() or _objects_by_constructor
    return LabelledObjectArray(header=_header(header, boxes.frame_id, stamp),
                               objects=build(predictions, boxes),
                               vocabulary_version=predictions.vocabulary_version, model=model)


def object_rows(predictions: Predictions, boxes: Boxes):
    """Per object: (id, center, quaternion, size, top [(label, score)], label, score, num_points, status,
    detector_label, detector_score), as plain Python values.

    Whole arrays go through tolist() once (the same float values as float() of each numpy scalar, at a
    small part of the cost).
    """
    status = np.asarray(predictions.status).astype(np.int64).tolist()
    for value in set(status):
        ObjectStatus(value)  # an unknown status is an error, as it always was
    classified = {int(s) for s in CLASSIFIED}
    vocab = predictions.vocabulary
    indices, scores = np.asarray(predictions.indices).tolist(), np.asarray(predictions.scores).tolist()
    num_points = np.maximum(np.asarray(predictions.num_points).astype(np.int64), 0).tolist()
    centers = np.asarray(boxes.centers, np.float64).tolist()
    quats = np.asarray(boxes.quaternions, np.float64).tolist()
    sizes = np.asarray(boxes.sizes, np.float64).tolist()
    det_scores = np.asarray(boxes.detector_scores, np.float64).tolist()
    for i, st in enumerate(status):
        top = ([(vocab[j], float(s)) for j, s in zip(indices[i], scores[i]) if j >= 0]
               if st in classified else [])
        ok = st == ObjectStatus.OK and bool(top)
        yield (boxes.ids[i], centers[i], quats[i], sizes[i], top, top[0][0] if ok else '',
               top[0][1] if ok else math.nan, num_points[i], st, boxes.detector_labels[i], det_scores[i])


def _objects_by_constructor(predictions: Predictions, boxes: Boxes) -> list:
    """The LabelledObjects through the generated constructors (any message layout, checked fields)."""
    from blendclip.msg import LabelHypothesis, LabelledObject

    objects = []
    for (id_, center, quat, size, top, label, score, num_points, status, det_label,
         det_score) in object_rows(predictions, boxes):
        obj = LabelledObject()  # fill its own pose and size: building new ones doubles the cost
        obj.id = id_
        _fill_pose(obj.pose, center, quat)
        _fill_vector(obj.size, size)
        obj.label = label
        obj.score = score
        obj.top_k = [LabelHypothesis(label=lab, score=sc) for lab, sc in top]
        obj.num_points = num_points
        obj.status = status
        obj.detector_label = det_label
        obj.detector_score = det_score
        objects.append(obj)
    return objects


@functools.cache
def _fast_objects():
    """The slot-filling builder of the LabelledObjects (blendclip_ros.conversions.fastmsg), or None
    where the installed message classes do not allow it."""
    from geometry_msgs.msg import Point, Pose, Quaternion, Vector3

    from blendclip.msg import LabelHypothesis, LabelledObject

    makers = [maker(c) for c in (LabelledObject, Pose, Point, Quaternion, Vector3, LabelHypothesis)]
    if any(m is None for m in makers):
        return None
    new_object, new_pose, new_point, new_quat, new_vector, new_hyp = makers

    def build(predictions: Predictions, boxes: Boxes) -> list:
        objects = []
        for (id_, center, quat, size, top, label, score, num_points, status, det_label,
             det_score) in object_rows(predictions, boxes):
            obj, pose, point, q, vector = new_object(), new_pose(), new_point(), new_quat(), new_vector()
            point._x, point._y, point._z = center
            q._x, q._y, q._z, q._w = quat
            pose._position, pose._orientation = point, q
            vector._x, vector._y, vector._z = size
            hyps = []
            for lab, sc in top:
                h = new_hyp()
                h._label, h._score = lab, sc
                hyps.append(h)
            obj._id, obj._pose, obj._size, obj._label, obj._score = id_, pose, vector, label, score
            obj._top_k, obj._num_points, obj._status = hyps, num_points, status
            obj._detector_label, obj._detector_score = det_label, det_score
            objects.append(obj)
        return objects

    return build
