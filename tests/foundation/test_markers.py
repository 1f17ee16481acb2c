"""RViz MarkerArray: DELETEALL first, 12-edge wireframes that lie on the box, labels, stable colours."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from blendclip_core.geometry import Boxes, quaternion_to_matrix
from blendclip_core.types import ObjectStatus, Predictions
from blendclip_ros.conversions.markers import PALETTE, label_colour, labelled_markers


def labelled(n_ok: int = 3):
    rng = np.random.default_rng(3)
    n = n_ok + 2
    boxes = Boxes.from_yaw(rng.normal(size=(n, 3)) * 10, rng.uniform(1, 4, size=(n, 3)),
                           rng.uniform(-3, 3, n), frame_id='lidar')
    status = [ObjectStatus.OK] * n_ok + [ObjectStatus.NO_POINTS, ObjectStatus.INVALID_BOX]
    indices = np.array([[i % 2, 1 - i % 2] for i in range(n_ok)] + [[-1, -1]] * 2)
    scores = np.array([[0.83, 0.1]] * n_ok + [[np.nan, np.nan]] * 2)
    preds = Predictions(indices, scores, np.full(n, 50), np.array(status), ('car', 'pedestrian'), 'v')
    return boxes, preds, Header(frame_id='lidar')


def test_markers_delete_all_then_box_and_text_per_drawable_object():
    boxes, preds, header = labelled()
    markers = deserialize_message(serialize_message(labelled_markers(preds, boxes, header, lifetime_s=0.25)),
                                  MarkerArray)
    first, rest = markers.markers[0], markers.markers[1:]
    assert first.action == Marker.DELETEALL
    assert len(rest) == 2 * 4  # the INVALID_BOX object is not drawn
    lines = [m for m in rest if m.type == Marker.LINE_LIST]
    texts = [m for m in rest if m.type == Marker.TEXT_VIEW_FACING]
    assert len(lines) == len(texts) == 4
    assert len({(m.ns, m.id) for m in rest}) == len(rest)
    assert all(m.header.frame_id == 'lidar' and m.lifetime.nanosec == 250_000_000 for m in rest)
    assert [t.text for t in texts] == ['car 0.83', 'pedestrian 0.83', 'car 0.83', 'no points']

    for i, line in enumerate(lines):
        local = np.array([(p.x, p.y, p.z) for p in line.points])
        assert local.shape == (24, 3)
        rot = quaternion_to_matrix(np.array([[line.pose.orientation.x, line.pose.orientation.y,
                                              line.pose.orientation.z, line.pose.orientation.w]]))[0]
        world = local @ rot.T + [line.pose.position.x, line.pose.position.y, line.pose.position.z]
        # Back in the box frame every endpoint is a corner, each corner ends 3 edges.
        in_box = (world - boxes.centers[i]) @ boxes.rotations[i]
        np.testing.assert_allclose(np.abs(in_box), np.broadcast_to(boxes.sizes[i] / 2, in_box.shape),
                                   atol=1e-9)
        corners, counts = np.unique(np.round(in_box, 9), axis=0, return_counts=True)
        assert len(corners) == 8 and set(counts) == {3}
        edge_lengths = np.linalg.norm(local[0::2] - local[1::2], axis=1)
        np.testing.assert_allclose(np.sort(edge_lengths), np.sort(np.repeat(boxes.sizes[i], 4)))
        assert texts[i].pose.position.z > boxes.centers[i, 2] + boxes.sizes[i, 2] / 2


def test_colours_follow_labels():
    boxes, preds, header = labelled()
    lines = [m for m in labelled_markers(preds, boxes, header).markers if m.type == Marker.LINE_LIST]
    rgb = [(round(m.color.r, 3), round(m.color.g, 3), round(m.color.b, 3)) for m in lines]
    assert rgb[0] == rgb[2] != rgb[1]  # car, pedestrian, car
    assert rgb[3] == label_colour('')  # no label: grey
    assert len({label_colour(f'class {i}') for i in range(100)}) == len(PALETTE)


def test_colours_are_stable_across_processes():
    code = ('import json; from blendclip_ros.conversions.markers import label_colour; '
            'print(json.dumps([label_colour(w) for w in ("car", "truck", "traffic cone", "bus")]))')
    outputs = []
    for seed in ('1', '2'):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        run = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                             timeout=60, check=True)
        outputs.append(json.loads(run.stdout))
    words = ('car', 'truck', 'traffic cone', 'bus')
    assert outputs[0] == outputs[1] == [list(label_colour(w)) for w in words]


def test_markers_say_what_the_labels_say():
    """Markers are drawn from predictions and boxes, not from the labels message: every drawn object's
    text, colour and pose agree with its LabelledObject (OK, below threshold, no points)."""
    from blendclip_ros.conversions import labelled_objects_to_msg

    boxes, preds, header = labelled()
    preds.status[1] = ObjectStatus.BELOW_THRESHOLD
    labels = labelled_objects_to_msg(preds, boxes, header=header)
    drawn = [o for o in labels.objects if o.status != ObjectStatus.INVALID_BOX]
    markers = labelled_markers(preds, boxes, header).markers[1:]
    lines, texts = markers[0::2], markers[1::2]
    assert len(lines) == len(texts) == len(drawn)
    for obj, line, text in zip(drawn, lines, texts):
        if obj.status == ObjectStatus.OK:
            assert text.text == f'{obj.label} {obj.score:.2f}'
        elif obj.status == ObjectStatus.BELOW_THRESHOLD:
            assert text.text == f'{obj.top_k[0].label}? {obj.top_k[0].score:.2f}'
        assert (line.color.r, line.color.g, line.color.b) == label_colour(obj.label)
        assert line.pose == obj.pose and text.pose.position.x == obj.pose.position.x
