"""Read a labelled bag back for evaluation: predictions paired with ground truth by stamp and box id.

rosbags only (no rclpy): the bag's own definitions decode it, so evaluation runs wherever Python does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader

from blendclip_core.geometry import Boxes, quaternion_to_matrix

log = logging.getLogger(__name__)

PREDICTIONS = '/blendclip/objects'
GROUND_TRUTH = '/ground_truth/categories'
CLOUD = '/lidar/points'
TF_STATIC = '/tf_static'
EGO_FRAME = 'base_link'


class LabelledBagError(ValueError):
    """The bag lacks the topics an evaluation needs."""


@dataclass
class Prediction:
    labels: tuple[str, ...]  # ranked, best first ('' never appears)
    scores: tuple[float, ...]
    num_points: int
    status: int
    center: tuple[float, float, float] = (np.nan, np.nan, np.nan)  # box centre in the cloud frame


@dataclass
class LabelledFrame:
    stamp_ns: int
    gt: Boxes  # ids, poses, sizes in the cloud frame; detector_labels = fine category
    gt_classes: tuple[str, ...]
    gt_num_points: np.ndarray
    predictions: dict[str, Prediction] = field(default_factory=dict)  # by box id; empty if unlabelled
    labelled: bool = False


def _stamp(header) -> int:
    return header.stamp.sec * 10**9 + header.stamp.nanosec


def _boxes(objects, frame_id: str) -> Boxes:
    if not objects:
        return Boxes.empty(frame_id)
    return Boxes(np.array([[o.pose.position.x, o.pose.position.y, o.pose.position.z] for o in objects]),
                 np.array([[o.size.x, o.size.y, o.size.z] for o in objects]),
                 np.array([[o.pose.orientation.x, o.pose.orientation.y, o.pose.orientation.z,
                            o.pose.orientation.w] for o in objects]),
                 tuple(o.id for o in objects), frame_id, tuple(o.detector_label for o in objects))


def _prediction(obj) -> Prediction:
    labels = tuple(h.label for h in obj.top_k) or ((obj.label,) if obj.label else ())
    scores = tuple(float(h.score) for h in obj.top_k) or ((float(obj.score),) if obj.label else ())
    p = obj.pose.position
    return Prediction(labels, scores, int(obj.num_points), int(obj.status), (p.x, p.y, p.z))


@dataclass
class LabelledBag:
    frames: list[LabelledFrame]
    frame_to_ego: dict[str, tuple[np.ndarray, np.ndarray]]  # cloud frame -> (R, t) into base_link
    model: str = ''
    vocabulary_version: str = ''
    unmatched_prediction_frames: int = 0  # prediction arrays whose stamp has no ground truth

    def ego_centers(self, frame: LabelledFrame) -> np.ndarray:
        """Box centres in base_link when /tf_static has the cloud frame, else in the cloud frame."""
        rt = self.frame_to_ego.get(frame.gt.frame_id)
        if rt is None:
            return frame.gt.centers
        return frame.gt.centers @ rt[0].T + rt[1]


def read_labelled_bag(path: str | Path, predictions_topic: str = PREDICTIONS,
                      ground_truth_topic: str = GROUND_TRUTH) -> LabelledBag:
    path = Path(path)
    with AnyReader([path]) as reader:
        topics = {c.topic for c in reader.connections}
        for topic in (predictions_topic, ground_truth_topic):
            if topic not in topics:
                raise LabelledBagError(f'{path} has no {topic} (topics: {sorted(topics)}); '
                                       'label it with blendclip-label-bag or record the node')
        frames: dict[int, LabelledFrame] = {}
        preds: list = []
        frame_to_ego: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        wanted = [c for c in reader.connections
                  if c.topic in (predictions_topic, ground_truth_topic, TF_STATIC)]
        for conn, _, raw in reader.messages(connections=wanted):
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == ground_truth_topic:
                frames[_stamp(msg.header)] = LabelledFrame(
                    _stamp(msg.header), _boxes(msg.objects, msg.header.frame_id),
                    tuple(o.label for o in msg.objects),
                    np.array([o.num_points for o in msg.objects], np.int64))
            elif conn.topic == predictions_topic:
                preds.append(msg)
            else:
                for tr in msg.transforms:
                    if tr.header.frame_id == EGO_FRAME:
                        q, v = tr.transform.rotation, tr.transform.translation
                        rotation = quaternion_to_matrix(np.array([[q.x, q.y, q.z, q.w]]))[0]
                        frame_to_ego[tr.child_frame_id] = (rotation, np.array([v.x, v.y, v.z]))
    bag = LabelledBag([], frame_to_ego)
    for msg in preds:
        frame = frames.get(_stamp(msg.header))
        if frame is None:
            bag.unmatched_prediction_frames += 1
            continue
        frame.labelled = True
        frame.predictions = {o.id: _prediction(o) for o in msg.objects}
        bag.model, bag.vocabulary_version = msg.model, msg.vocabulary_version
    bag.frames = [frames[k] for k in sorted(frames)]
    return bag


def read_cloud_xyz(path: str | Path, stamp_ns: int, topic: str = CLOUD) -> np.ndarray:
    """(N, 3) float32 xyz of the cloud with this header stamp (for the bird's-eye view)."""
    from blendclip_ros.conversions.pointcloud import cloud_to_xyz
    with AnyReader([Path(path)]) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        for conn, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            if _stamp(msg.header) == stamp_ns:
                return np.asarray(cloud_to_xyz(msg).points, dtype=np.float32)
    return np.zeros((0, 3), np.float32)
