"""The per-frame message path (node and label-bag) without a ROS graph: frame checks and skips that
happen before the model."""

import numpy as np

from blendclip_core.geometry import Boxes
from blendclip_ros.conversions import boxes_to_msg, points_to_cloud
from blendclip_ros.node import diagnostics, frame
from blendclip_ros.node import params as P


def _boxes(frame='LIDAR_TOP', n=3):
    return Boxes.from_yaw(np.arange(3 * n, dtype=float).reshape(n, 3), np.ones((n, 3)), np.zeros(n),
                          frame_id=frame)


def test_boxes_in_cloud_frame_uses_static_transform_either_direction():
    tfs = P.parse_static_transforms(['base_link->LIDAR_TOP: 1 0 2 0 0 0.7071067811865476 0.7071067811865476'])
    ego = _boxes('base_link')
    moved = frame.boxes_in_cloud_frame(ego, 'LIDAR_TOP', tfs)
    tf = tfs[('LIDAR_TOP', 'base_link')]
    np.testing.assert_allclose(moved.centers, ego.centers @ tf.rotation.T + tf.translation)
    assert moved.frame_id == 'LIDAR_TOP' and moved.ids == ego.ids
    # and back: the round trip is the identity
    back = frame.boxes_in_cloud_frame(moved, 'base_link', tfs)
    np.testing.assert_allclose(back.centers, ego.centers, atol=1e-12)
    np.testing.assert_allclose(np.abs((back.quaternions * ego.quaternions).sum(1)), 1.0, atol=1e-12)
    assert frame.boxes_in_cloud_frame(ego, 'map', tfs) is None
    assert frame.boxes_in_cloud_frame(_boxes(''), 'map', tfs) is not None  # '' = same frame


def test_skips_before_the_model_is_touched():
    cloud = points_to_cloud(np.zeros((10, 3)), frame_id='LIDAR_TOP')
    settings = frame.FrameSettings(top_k=5, score_threshold=0.0, min_points=1, box_margin=0.0, max_boxes=2)
    out = frame.label_frame_msgs(cloud, boxes_to_msg(_boxes(n=3)), None, settings, {})
    assert out.skip_reason == 'too_many_boxes' and out.labels is None and 'max_boxes=2' in out.message
    settings = frame.FrameSettings(top_k=5, score_threshold=0.0, min_points=1, box_margin=0.0, max_boxes=10)
    out = frame.label_frame_msgs(cloud, boxes_to_msg(_boxes('map')), None, settings, {})
    assert out.skip_reason == 'frame_mismatch' and "'LIDAR_TOP->map: x y z qx qy qz qw'" in out.message


def test_frame_settings_follow_params():
    s = frame.FrameSettings.from_params(P.NodeParams(top_k=3, box_margin=0.2))
    assert (s.top_k, s.box_margin, s.max_boxes) == (3, 0.2, 2048)
    assert set(diagnostics.COUNTERS) >= set(frame.STATUS_COUNTER.values())


def test_boxes_of_accepts_vision_msgs_shape():
    """vision_msgs has no wheel here: a duck-typed Detection3DArray takes the same path the node uses."""
    from types import SimpleNamespace as NS

    def det(i, x):
        pose = NS(position=NS(x=x, y=0.0, z=0.0), orientation=NS(x=0.0, y=0.0, z=0.0, w=1.0))
        hyp = NS(hypothesis=NS(class_id='car', score=0.7))
        return NS(id=f'd{i}', bbox=NS(center=pose, size=NS(x=4.0, y=2.0, z=1.5)), results=[hyp])

    msg = NS(header=NS(frame_id='LIDAR_TOP'), detections=[det(0, 1.0), det(1, 5.0)])
    boxes = frame.boxes_of(msg)
    assert boxes.ids == ('d0', 'd1') and boxes.frame_id == 'LIDAR_TOP'
    np.testing.assert_array_equal(boxes.centers[:, 0], [1.0, 5.0])
    assert boxes.detector_labels == ('car', 'car')
    ours = frame.boxes_of(boxes_to_msg(_boxes()))
    assert len(ours) == 3
