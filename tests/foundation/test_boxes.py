"""Box messages <-> core Boxes, Predictions -> LabelledObjectArray, and the vision_msgs adapter."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, PoseWithCovariance, Vector3
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header

from blendclip.msg import DetectedBoxArray, LabelledObject
from blendclip_core.geometry import Boxes
from blendclip_core.types import ObjectStatus, Predictions
from blendclip_ros.conversions import boxes as conv
from blendclip_ros.conversions import vision

VOCAB = ('car', 'truck', 'pedestrian', 'traffic cone')


def wire(msg):
    return deserialize_message(serialize_message(msg), type(msg))


def sample_boxes(n: int = 4) -> Boxes:
    rng = np.random.default_rng(n)
    quats = rng.normal(size=(n, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    scores = rng.uniform(size=n)
    scores[0] = np.nan
    return Boxes(rng.normal(size=(n, 3)) * 20, rng.uniform(0.5, 5, size=(n, 3)), quats,
                 tuple(f'track-{i}' for i in range(n)), 'LIDAR_TOP',
                 ('',) + tuple(f'det{i}' for i in range(1, n)), scores)


def sample_predictions() -> Predictions:
    statuses = [ObjectStatus.OK, ObjectStatus.BELOW_THRESHOLD, ObjectStatus.NO_POINTS,
                ObjectStatus.INVALID_BOX]
    indices = np.array([[0, 1, 3], [2, 0, 1], [-1, -1, -1], [-1, -1, -1]])
    scores = np.array([[0.83, 0.1, 0.05], [0.3, 0.25, 0.2], [np.nan] * 3, [np.nan] * 3])
    return Predictions(indices, scores, np.array([120, 14, 0, 0]), np.array(statuses), VOCAB, 'v1:abc')


def test_detected_box_array_round_trip():
    boxes = sample_boxes()
    stamp = Time(sec=12, nanosec=345)
    back = conv.boxes_from_msg(wire(conv.boxes_to_msg(boxes, stamp=stamp)))
    assert back.ids == boxes.ids and back.frame_id == 'LIDAR_TOP'
    assert back.detector_labels == boxes.detector_labels
    np.testing.assert_array_equal(back.centers, boxes.centers)
    np.testing.assert_array_equal(back.sizes, boxes.sizes)
    np.testing.assert_array_equal(back.quaternions, boxes.quaternions)
    np.testing.assert_allclose(back.detector_scores, boxes.detector_scores.astype(np.float32))  # float32


def test_empty_box_array():
    msg = wire(DetectedBoxArray(header=Header(frame_id='f')))
    boxes = conv.boxes_from_msg(msg)
    assert len(boxes) == 0 and boxes.frame_id == 'f' and boxes.centers.shape == (0, 3)


def test_status_constants_mirror_object_status():
    constants = {k[len('STATUS_'):]: getattr(LabelledObject, k) for k in dir(LabelledObject)
                 if k.startswith('STATUS_')}
    assert constants == {s.name: s.value for s in ObjectStatus}


def test_labelled_objects_per_status():
    boxes, preds = sample_boxes(), sample_predictions()
    header = Header(frame_id='LIDAR_TOP', stamp=Time(sec=7, nanosec=9))
    msg = wire(conv.labelled_objects_to_msg(preds, boxes, header=header, model='pointbert-s'))
    assert msg.header.stamp.sec == 7 and msg.header.frame_id == 'LIDAR_TOP'
    assert msg.vocabulary_version == 'v1:abc' and msg.model == 'pointbert-s'
    ok, below, no_points, invalid = msg.objects
    assert (ok.label, ok.status, ok.num_points) == ('car', LabelledObject.STATUS_OK, 120)
    assert ok.score == pytest.approx(0.83)
    assert [(h.label, round(h.score, 3)) for h in ok.top_k] == [('car', 0.83), ('truck', 0.1),
                                                                 ('traffic cone', 0.05)]
    assert below.label == '' and math.isnan(below.score) and below.top_k[0].label == 'pedestrian'
    for obj in (no_points, invalid):
        assert obj.label == '' and math.isnan(obj.score) and len(obj.top_k) == 0
    assert invalid.status == LabelledObject.STATUS_INVALID_BOX
    assert [o.id for o in msg.objects] == list(boxes.ids)
    assert ok.detector_label == '' and math.isnan(ok.detector_score) and below.detector_label == 'det1'
    back = conv.boxes_from_labelled_msg(msg)
    np.testing.assert_array_equal(back.centers, boxes.centers)
    np.testing.assert_array_equal(back.quaternions, boxes.quaternions)


def test_labelled_objects_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match='3 boxes'):
        conv.labelled_objects_to_msg(sample_predictions(), sample_boxes(3))


def test_rosbags_box_messages_read_like_rclpy(repo: Path):
    """The bag tools hand rosbags objects to the same readers."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for path in sorted((repo / 'msg').glob('*.msg')):
        types.update(get_types_from_msg(path.read_text(), f'blendclip/msg/{path.stem}'))
    store.register(types)
    boxes = sample_boxes()
    raw = serialize_message(conv.boxes_to_msg(boxes))
    from_bag = conv.boxes_from_msg(store.deserialize_cdr(raw, 'blendclip/msg/DetectedBoxArray'))
    assert from_bag.ids == boxes.ids
    np.testing.assert_array_equal(from_bag.quaternions, boxes.quaternions)
    labelled = conv.labelled_objects_to_msg(sample_predictions(), boxes)
    decoded = store.deserialize_cdr(serialize_message(labelled), 'blendclip/msg/LabelledObjectArray')
    assert [o.label for o in decoded.objects] == ['car', '', '', '']


# Test-only stand-ins for vision_msgs (no wheel exists here): the same field names as
# vision_msgs/msg/{ObjectHypothesis, ObjectHypothesisWithPose, BoundingBox3D, Detection3D,
# Detection3DArray} 4.x, which is all the adapter relies on.
@dataclass
class ObjectHypothesis:
    class_id: str = ''
    score: float = 0.0


@dataclass
class ObjectHypothesisWithPose:
    hypothesis: ObjectHypothesis = field(default_factory=ObjectHypothesis)
    pose: PoseWithCovariance = field(default_factory=PoseWithCovariance)


@dataclass
class BoundingBox3D:
    center: Pose = field(default_factory=Pose)
    size: Vector3 = field(default_factory=Vector3)


@dataclass
class Detection3D:
    header: Header = field(default_factory=Header)
    results: list = field(default_factory=list)
    bbox: BoundingBox3D = field(default_factory=BoundingBox3D)
    id: str = ''


@dataclass
class Detection3DArray:
    header: Header = field(default_factory=Header)
    detections: list = field(default_factory=list)


class VisionMsgs:
    Detection3DArray = Detection3DArray
    Detection3D = Detection3D
    ObjectHypothesisWithPose = ObjectHypothesisWithPose


def test_vision_msgs_detections_to_boxes():
    boxes = sample_boxes(3)
    dets = []
    for i in range(3):
        det = Detection3D(id='' if i == 2 else f'd{i}')
        det.bbox.center = conv.pose_msg(boxes.centers[i], boxes.quaternions[i])
        det.bbox.size = Vector3(**dict(zip('xyz', map(float, boxes.sizes[i]))))
        if i:
            det.results = [ObjectHypothesisWithPose(ObjectHypothesis('bus', 0.2)),
                           ObjectHypothesisWithPose(ObjectHypothesis('car', 0.7))]
        dets.append(det)
    out = vision.boxes_from_detection3d_array(Detection3DArray(Header(frame_id='base_link'), dets))
    assert out.ids == ('d0', 'd1', '2') and out.frame_id == 'base_link'
    assert out.detector_labels == ('', 'car', 'car')
    np.testing.assert_array_equal(out.detector_scores[1:], [0.7, 0.7])
    assert math.isnan(out.detector_scores[0])
    np.testing.assert_array_equal(out.centers, boxes.centers)
    np.testing.assert_array_equal(out.quaternions, boxes.quaternions)


def test_labelled_objects_to_vision_msgs():
    labelled = wire(conv.labelled_objects_to_msg(sample_predictions(), sample_boxes(),
                                                 header=Header(frame_id='map')))
    out = vision.detection3d_array_from_labelled(labelled, VisionMsgs)
    assert out.header.frame_id == 'map' and len(out.detections) == 4
    first = out.detections[0]
    assert first.id == 'track-0'
    assert [r.hypothesis.class_id for r in first.results] == ['car', 'truck', 'traffic cone']
    assert first.results[0].hypothesis.score == pytest.approx(0.83)
    assert first.results[0].pose.pose.position.x == labelled.objects[0].pose.position.x
    assert all(d.results == [] for d in out.detections[1:])
    assert out.detections[3].bbox.size.z == labelled.objects[3].size.z
    round_trip = vision.boxes_from_detection3d_array(out)
    assert round_trip.detector_labels == ('car', '', '', '')


def test_huge_and_degenerate_quaternions_over_the_wire():
    """Issue #14: a box message whose quaternion is 1e30 or 1e300 times a unit one describes the same
    box (valid, same rotation, also through a static transform); zero, NaN and inf ones are invalid."""
    from blendclip_core.geometry import quaternion_to_matrix

    rng = np.random.default_rng(9)
    unit = rng.normal(size=(1, 4))
    unit /= np.linalg.norm(unit)
    quats = np.vstack([unit, unit * 1e30, unit * 1e300, -unit * 1.7e308, np.zeros((1, 4)),
                       [[0, 0, np.nan, 1]], [[np.inf, 0, 0, 1]]])
    n = len(quats)
    boxes = Boxes(np.zeros((n, 3)), np.ones((n, 3)), quats, tuple(str(i) for i in range(n)), 'LIDAR_TOP')
    back = conv.boxes_from_msg(wire(conv.boxes_to_msg(boxes)))
    np.testing.assert_array_equal(back.quaternions, quats)  # passed through unchanged
    assert back.valid_mask().tolist() == [True] * 4 + [False] * 3
    rot = back.rotations[:4]
    for r in rot[1:]:
        np.testing.assert_allclose(r, rot[0], atol=1e-12)
    np.testing.assert_allclose(back.yaws[1:4], back.yaws[0], atol=1e-12)
    turn = quaternion_to_matrix(np.array([[0, 0, np.sin(0.4), np.cos(0.4)]]))[0]
    moved = back.transformed(turn, np.array([1.0, 2.0, 3.0]), 'base_link')
    assert moved.valid_mask().tolist() == [True] * 4 + [False] * 3
    for r in moved.rotations[:4]:
        np.testing.assert_allclose(r, turn @ rot[0], atol=1e-12)
