"""Interfaces users already publish (#17 item 3), through real rclpy across processes: the node takes
vision_msgs/Detection3DArray and autoware_perception_msgs/DetectedObjects as boxes, and publishes its
labels as vision_msgs/Detection3DArray too, decoded here by a subscriber of our own. The packages have no
wheels: `make prefix` builds them from ../shared/upstream; without them these tests skip saying why.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from installed_msgs import import_msgs, msgs_env, msgs_prefix
from node_harness import RELIABLE, NodeClient, child_env, load_sample, sample_cloud, write_params
from test_node_integration import START_TIMEOUT, running_node

from blendclip_core.geometry import Boxes
from blendclip_core.types import ObjectStatus
from blendclip_ros.conversions.stamps import ns_to_stamp, stamp_to_ns

PACKAGES = ('vision_msgs', 'autoware_perception_msgs')


@pytest.fixture(scope='module')
def msgs():
    prefix = msgs_prefix(*PACKAGES)
    return prefix, import_msgs(prefix, 'vision_msgs'), import_msgs(prefix, 'autoware_perception_msgs')


@pytest.fixture(scope='module')
def node_process(msgs, tiny_checkpoint, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('node_optional')
    params = write_params(tmp / 'params.yaml', tiny_checkpoint, publish_vision_msgs=True)
    with running_node(params, tmp / 'node.log', msgs_env(msgs[0], child_env())) as proc:
        yield proc, tmp / 'node.log'


@pytest.fixture(scope='module')
def client(msgs, node_process):
    _, vision, autoware = msgs
    proc, log_path = node_process
    context = rclpy.Context()
    rclpy.init(context=context)
    c = NodeClient(context)
    c.vision_pub = c.node.create_publisher(vision.Detection3DArray, '/detections_3d', RELIABLE)
    c.autoware_pub = c.node.create_publisher(autoware.DetectedObjects, '/detected_objects', RELIABLE)
    c.vision_out = {}
    c.node.create_subscription(vision.Detection3DArray, '/blendclip/detections_3d',
                               lambda m: c.vision_out.setdefault(stamp_to_ns(m.header.stamp), m), RELIABLE)
    try:
        active = c.wait_active(START_TIMEOUT) and c.spin_until(
            lambda: c.vision_pub.get_subscription_count() > 0 and c.autoware_pub.get_subscription_count() > 0
            and c.node.count_publishers('/blendclip/detections_3d') > 0, 30)
        if not active:
            pytest.fail(f'node not active on every input (alive={proc.poll() is None}):\n'
                        f'{log_path.read_text()[-3000:]}')
        yield c
    finally:
        c.close()
        rclpy.shutdown(context=context)


def _send(client: NodeClient, publisher, boxes_msg):
    """One frame: the real sweep and `boxes_msg` on its own topic, both stamped now -> the labels."""
    points, _, _ = load_sample()
    cloud, stamp = sample_cloud(points), client.next_stamp()
    cloud.header.stamp = boxes_msg.header.stamp = ns_to_stamp(stamp)
    client.cloud_pub.publish(cloud)
    publisher.publish(boxes_msg)
    client.spin_until(lambda: stamp in client.labels, 30)
    return client.labels.get(stamp)


def _poses(objects, pose_of) -> np.ndarray:
    return np.array([[pose_of(o).position.x, pose_of(o).position.y, pose_of(o).position.z,
                      pose_of(o).orientation.x, pose_of(o).orientation.y, pose_of(o).orientation.z,
                      pose_of(o).orientation.w] for o in objects])


def detection3d_array(vision, boxes: Boxes):
    msg = vision.Detection3DArray()
    msg.header.frame_id = boxes.frame_id
    for i in range(len(boxes.ids)):
        det = vision.Detection3D(id=f'det-{i}')
        det.bbox.center.position.x, det.bbox.center.position.y, det.bbox.center.position.z = boxes.centers[i]
        o = det.bbox.center.orientation
        o.x, o.y, o.z, o.w = boxes.quaternions[i]
        det.bbox.size.x, det.bbox.size.y, det.bbox.size.z = boxes.sizes[i]
        hyp = vision.ObjectHypothesisWithPose()
        hyp.hypothesis.class_id, hyp.hypothesis.score = boxes.detector_labels[i], 0.75
        det.results = [hyp]
        msg.detections.append(det)
    return msg


def test_detection3d_array_boxes_are_labelled(msgs, client):
    _, boxes, _ = load_sample()
    sent = detection3d_array(msgs[1], boxes)
    labels = _send(client, client.vision_pub, sent)
    assert labels is not None, 'no labels for the Detection3DArray frame'
    assert [o.id for o in labels.objects] == [d.id for d in sent.detections]
    np.testing.assert_allclose(_poses(labels.objects, lambda o: o.pose),
                               _poses(sent.detections, lambda d: d.bbox.center))
    assert [o.detector_label for o in labels.objects] == list(boxes.detector_labels)
    assert any(o.status == ObjectStatus.OK for o in labels.objects)


def detected_objects(autoware, boxes: Boxes):
    msg = autoware.DetectedObjects()
    msg.header.frame_id = boxes.frame_id
    for i in range(len(boxes.ids)):
        obj = autoware.DetectedObject(existence_probability=0.9)
        pose = obj.kinematics.pose_with_covariance.pose
        pose.position.x, pose.position.y, pose.position.z = boxes.centers[i]
        pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = boxes.quaternions[i]
        obj.shape.type = autoware.Shape.BOUNDING_BOX
        obj.shape.dimensions.x, obj.shape.dimensions.y, obj.shape.dimensions.z = boxes.sizes[i]
        obj.classification = [autoware.ObjectClassification(label=autoware.ObjectClassification.UNKNOWN,
                                                            probability=0.2),
                              autoware.ObjectClassification(label=autoware.ObjectClassification.PEDESTRIAN,
                                                            probability=0.8)]
        msg.objects.append(obj)
    return msg


def test_autoware_detected_objects_are_labelled(msgs, client):
    _, boxes, _ = load_sample()
    sent = detected_objects(msgs[2], boxes)
    labels = _send(client, client.autoware_pub, sent)
    assert labels is not None, 'no labels for the DetectedObjects frame'
    assert [o.id for o in labels.objects] == [str(i) for i in range(len(sent.objects))]  # no ids: the index
    np.testing.assert_allclose(_poses(labels.objects, lambda o: o.pose),
                               _poses(sent.objects, lambda o: o.kinematics.pose_with_covariance.pose))
    np.testing.assert_allclose([[o.size.x, o.size.y, o.size.z] for o in labels.objects], boxes.sizes)
    assert {o.detector_label for o in labels.objects} == {'pedestrian'}
    np.testing.assert_allclose([o.detector_score for o in labels.objects], 0.8, rtol=1e-6)


def test_labels_are_published_as_detection3d_array(client):
    points, boxes, _ = load_sample()
    labels = client.frame(sample_cloud(points), boxes)
    assert labels is not None
    stamp = stamp_to_ns(labels.header.stamp)
    assert client.spin_until(lambda: stamp in client.vision_out, 10), 'no Detection3DArray with the labels'
    out = client.vision_out[stamp]
    assert out.header.frame_id == labels.header.frame_id
    assert [d.id for d in out.detections] == [o.id for o in labels.objects]
    np.testing.assert_allclose(_poses(out.detections, lambda d: d.bbox.center), _poses(labels.objects,
                                                                                       lambda o: o.pose))
    for det, obj in zip(out.detections, labels.objects):
        ok = obj.status == ObjectStatus.OK
        assert [r.hypothesis.class_id for r in det.results] == ([h.label for h in obj.top_k] if ok else [])
        np.testing.assert_allclose([r.hypothesis.score for r in det.results],
                                   [h.score for h in obj.top_k] if ok else [])
    assert any(det.results for det in out.detections)


def test_without_the_packages_each_input_and_output_is_off_with_one_line(tiny_checkpoint, tmp_path):
    """The node in the plain venv (no prefix): it labels as before, and says once per configure which
    optional input or output it left off and why."""
    code = 'import sys, importlib.util; sys.exit(any(importlib.util.find_spec(p) for p in sys.argv[1:]))'
    if subprocess.run([sys.executable, '-c', code, *PACKAGES], env=child_env()).returncode:
        pytest.skip('vision_msgs or autoware_perception_msgs is importable without the prefix')
    params = write_params(tmp_path / 'params.yaml', tiny_checkpoint, publish_vision_msgs=True)
    log_path = tmp_path / 'node.log'
    with running_node(params, log_path) as proc:
        deadline = time.monotonic() + START_TIMEOUT
        while 'configured:' not in log_path.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            time.sleep(0.2)
    lines = [line for line in log_path.read_text().splitlines() if 'is not installed' in line]
    assert len(lines) == 3, log_path.read_text()[-3000:]
    for line, package, what in zip(lines, ('vision_msgs', 'autoware_perception_msgs', 'vision_msgs'),
                                   ("input on 'detections_3d'", "input on 'detected_objects'",
                                    "output on 'blendclip/detections_3d'")):
        assert line.split(']: ', 1)[-1].startswith(f'{package} is not installed') and what in line, line


def test_autoware_shapes_become_enclosing_boxes(msgs):
    """Pure conversion on the real message classes: a cylinder is boxed by its diameter, a polygon by
    its footprint's extent (centred on it, rotated with the object), no classification gives ''/NaN."""
    from geometry_msgs.msg import Point32

    from blendclip_ros.conversions.autoware import boxes_from_detected_objects

    autoware = msgs[2]
    msg = autoware.DetectedObjects()
    msg.header.frame_id = 'base_link'
    cylinder = autoware.DetectedObject()
    cylinder.shape.type = autoware.Shape.CYLINDER
    cylinder.shape.dimensions.x, cylinder.shape.dimensions.y, cylinder.shape.dimensions.z = 0.6, 0.6, 1.8
    polygon = autoware.DetectedObject()
    pose = polygon.kinematics.pose_with_covariance.pose
    pose.position.x, pose.orientation.z, pose.orientation.w = 10.0, np.sin(np.pi / 4), np.cos(np.pi / 4)
    polygon.shape.type = autoware.Shape.POLYGON
    polygon.shape.dimensions.z = 2.0
    polygon.shape.footprint.points = [Point32(x=x, y=y) for x, y in ((1, 0), (3, 0), (3, 1), (1, 1))]
    polygon.classification = [autoware.ObjectClassification(label=autoware.ObjectClassification.TRUCK,
                                                            probability=0.6)]
    msg.objects = [cylinder, polygon]
    boxes = boxes_from_detected_objects(msg)
    assert boxes.ids == ('0', '1') and boxes.frame_id == 'base_link'
    np.testing.assert_allclose(boxes.sizes, [[0.6, 0.6, 1.8], [2.0, 1.0, 2.0]])
    # footprint centre (2, 0.5) in the object frame, turned 90 degrees about z, added to (10, 0, 0)
    np.testing.assert_allclose(boxes.centers, [[0, 0, 0], [9.5, 2.0, 0]], atol=1e-12)
    assert boxes.detector_labels == ('', 'truck')
    assert np.isnan(boxes.detector_scores[0]) and boxes.detector_scores[1] == pytest.approx(0.6)
