"""vision_msgs/Detection3DArray adapter, for vehicles whose detectors speak vision_msgs.

vision_msgs has no wheel here, so nothing imports it: readers use the vision_msgs (ROS 2, 4.x) field
names only, and the writer takes the message classes as an argument (pass the `vision_msgs.msg`
module). The open-vocabulary label goes into ObjectHypothesis.class_id, as the issue asks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from blendclip_core.geometry import Boxes
from blendclip_core.types import ObjectStatus


def _best_hypothesis(detection: Any) -> tuple[str, float]:
    results = list(detection.results)
    if not results:
        return '', math.nan
    best = max(results, key=lambda r: r.hypothesis.score)
    return str(best.hypothesis.class_id), float(best.hypothesis.score)


def boxes_from_detection3d_array(msg: Any) -> Boxes:
    """vision_msgs/Detection3DArray -> Boxes; the best hypothesis becomes the detector label/score.

    Detections without an id get their index, so outputs still pair with inputs.
    """
    dets = list(msg.detections)
    n = len(dets)
    centers = np.array([(d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.center.position.z)
                        for d in dets], dtype=np.float64).reshape(n, 3)
    quats = np.array([(d.bbox.center.orientation.x, d.bbox.center.orientation.y,
                       d.bbox.center.orientation.z, d.bbox.center.orientation.w) for d in dets],
                     dtype=np.float64).reshape(n, 4)
    sizes = np.array([(d.bbox.size.x, d.bbox.size.y, d.bbox.size.z) for d in dets],
                     dtype=np.float64).reshape(n, 3)
    best = [_best_hypothesis(d) for d in dets]
    return Boxes(centers, sizes, quats, tuple(str(d.id) or str(i) for i, d in enumerate(dets)),
                 str(msg.header.frame_id), tuple(b[0] for b in best),
                 np.array([b[1] for b in best], dtype=np.float64))


def detection3d_array_from_labelled(msg: Any, types: Any):
    """blendclip/LabelledObjectArray -> vision_msgs/Detection3DArray built from `types`.

    types: anything with Detection3DArray, Detection3D and ObjectHypothesisWithPose classes
    (the `vision_msgs.msg` module on a vehicle). Objects with status OK carry their top-k labels as
    hypotheses (class_id = label text, pose = box pose); others are kept as boxes without results.
    """
    out = types.Detection3DArray()
    out.header = msg.header
    detections = []
    for obj in msg.objects:
        det = types.Detection3D()
        det.header = msg.header
        det.id = obj.id
        det.bbox.center = obj.pose
        det.bbox.size = obj.size
        results = []
        if obj.status == ObjectStatus.OK:
            for hyp in obj.top_k:
                result = types.ObjectHypothesisWithPose()
                result.hypothesis.class_id = hyp.label
                result.hypothesis.score = float(hyp.score)
                result.pose.pose = obj.pose
                results.append(result)
        det.results = results
        detections.append(det)
    out.detections = detections
    return out
