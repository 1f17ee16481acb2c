"""autoware_perception_msgs/DetectedObjects adapter, for vehicles that run Autoware's perception.

Duck-typed on the autoware_perception_msgs field names (nothing imports the package, which has no
wheel; `make prefix` builds it from ../shared/upstream). Autoware's objects carry no id: each gets its
index, so outputs still pair with inputs. The detector label is the most probable classification,
named as Autoware's ObjectClassification constants are (lower case), with its probability as score.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from blendclip_core.geometry import Boxes, quaternion_to_matrix

# ObjectClassification.label values, in order (autoware_perception_msgs/msg/ObjectClassification.msg).
CLASSIFICATION_NAMES = ('unknown', 'car', 'truck', 'bus', 'trailer', 'motorcycle', 'bicycle', 'pedestrian',
                        'animal', 'hazard', 'over_drivable', 'under_drivable')
# Shape.type values: the size of the box that encloses each shape is read differently.
SHAPE_POLYGON = 2


def _classification(obj: Any) -> tuple[str, float]:
    classes = list(obj.classification)
    if not classes:
        return '', math.nan
    best = max(classes, key=lambda c: c.probability)
    label = int(best.label)
    name = CLASSIFICATION_NAMES[label] if label < len(CLASSIFICATION_NAMES) else f'class_{label}'
    return name, float(best.probability)


def _extent(obj: Any) -> tuple[np.ndarray, np.ndarray]:
    """(offset of the box centre in the object's frame, l w h). A bounding box is its dimensions; a
    cylinder's are diameter, diameter, height; a polygon footprint (object frame) spans x and y."""
    dims = obj.shape.dimensions
    points = [(p.x, p.y) for p in obj.shape.footprint.points]
    if int(obj.shape.type) != SHAPE_POLYGON or not points:
        return np.zeros(3), np.array([dims.x, dims.y, dims.z], dtype=np.float64)
    xy = np.asarray(points, dtype=np.float64)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    return np.array([*(lo + hi) / 2, 0.0]), np.array([*(hi - lo), dims.z], dtype=np.float64)


def boxes_from_detected_objects(msg: Any) -> Boxes:
    """autoware_perception_msgs/DetectedObjects -> Boxes (pose = kinematics.pose_with_covariance.pose)."""
    objs = list(msg.objects)
    n = len(objs)
    poses = [o.kinematics.pose_with_covariance.pose for o in objs]
    quats = np.array([(p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w) for p in poses],
                     dtype=np.float64).reshape(n, 4)
    centers = np.array([(p.position.x, p.position.y, p.position.z) for p in poses],
                       dtype=np.float64).reshape(n, 3)
    extents = [_extent(o) for o in objs]
    sizes = np.array([e[1] for e in extents], dtype=np.float64).reshape(n, 3)
    offsets = np.array([e[0] for e in extents], dtype=np.float64).reshape(n, 3)
    if n and offsets.any():
        centers = centers + np.einsum('nij,nj->ni', quaternion_to_matrix(quats), offsets)
    best = [_classification(o) for o in objs]
    return Boxes(centers, sizes, quats, tuple(str(i) for i in range(n)), str(msg.header.frame_id),
                 tuple(b[0] for b in best), np.array([b[1] for b in best], dtype=np.float64))
