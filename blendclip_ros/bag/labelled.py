"""Read a labelled bag back for evaluation: predictions paired with ground truth by stamp and box id.

rosbags only (no rclpy): the bag's own definitions decode it, so evaluation runs wherever Python does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError

from blendclip_core.evaluation.labelled import LabelledFrame, Prediction
from blendclip_core.geometry import Boxes, quaternion_to_matrix
from blendclip_ros.conversions.stamps import stamp_to_ns

from .corrupt import CorruptMessages
from .writer import is_bag_temporary

log = logging.getLogger(__name__)

PREDICTIONS = '/blendclip/objects'
GROUND_TRUTH = '/ground_truth/categories'
CLOUD = '/lidar/points'
TF_STATIC = '/tf_static'
EGO_FRAME = 'base_link'


class LabelledBagError(ValueError):
    """The bag lacks the topics an evaluation needs, is incomplete, or cannot be read at all."""


def check_bag_complete(path: Path) -> None:
    """Refuse what a writer did not finish: our tools' temporaries (`.<name>.tmp-<pid>`, left by a
    killed nuscenes2bag or label-bag) and rosbag2 folders without metadata.yaml (written last)."""
    if is_bag_temporary(path):
        raise LabelledBagError(f'{path} is an incomplete bag: the temporary of a writer that did not '
                               'finish (killed?); rerun the tool that writes it')
    if not path.exists():
        raise LabelledBagError(f'{path}: no such bag')
    if path.is_dir() and not (path / 'metadata.yaml').is_file():
        raise LabelledBagError(f'{path} is an incomplete bag: no metadata.yaml (its writer did not '
                               'finish); rerun the tool, or `ros2 bag reindex` a recording')


def _stamp(header) -> int:
    return stamp_to_ns(header.stamp)


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
    corrupt: CorruptMessages = field(default_factory=CorruptMessages)  # records that did not decode

    def ego_centers(self, frame: LabelledFrame) -> np.ndarray:
        """Box centres in base_link when /tf_static has the cloud frame, else in the cloud frame."""
        rt = self.frame_to_ego.get(frame.gt.frame_id)
        if rt is None:
            return frame.gt.centers
        return frame.gt.centers @ rt[0].T + rt[1]


def read_labelled_bag(path: str | Path, predictions_topic: str = PREDICTIONS,
                      ground_truth_topic: str = GROUND_TRUTH) -> LabelledBag:
    """Predictions and ground truth of a complete bag; corrupt records are skipped and counted."""
    path = Path(path)
    check_bag_complete(path)
    bag = LabelledBag([], {})
    frames: dict[int, LabelledFrame] = {}
    preds: list = []
    try:
        with AnyReader([path]) as reader:
            topics = {c.topic for c in reader.connections}
            for topic in (predictions_topic, ground_truth_topic):
                if topic not in topics:
                    raise LabelledBagError(f'{path} has no {topic} (topics: {sorted(topics)}); '
                                           'label it with blendclip-label-bag or record the node')
            wanted = [c for c in reader.connections
                      if c.topic in (predictions_topic, ground_truth_topic, TF_STATIC)]
            for conn, t, raw in reader.messages(connections=wanted):
                try:
                    msg = reader.deserialize(raw, conn.msgtype)
                except Exception as exc:  # noqa: BLE001 - any bytes can be in a record
                    bag.corrupt.add(conn.topic, t, exc)
                    continue
                if conn.topic == ground_truth_topic:
                    frames[_stamp(msg.header)] = LabelledFrame(
                        _stamp(msg.header), _boxes(msg.objects, msg.header.frame_id),
                        tuple(o.label for o in msg.objects),
                        np.array([o.num_points for o in msg.objects], np.int64))
                elif conn.topic == predictions_topic:
                    preds.append(msg)
                else:
                    bag.frame_to_ego.update(_ego_transforms(msg))
    except (AnyReaderError, KeyError, EOFError) as exc:
        # Damaged storage (truncated mcap, bad metadata.yaml): rosbags' reader errors say what.
        raise LabelledBagError(f'{path}: cannot read the bag: {exc}') from exc
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


def _ego_transforms(msg) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for tr in msg.transforms:
        if tr.header.frame_id == EGO_FRAME:
            q, v = tr.transform.rotation, tr.transform.translation
            rotation = quaternion_to_matrix(np.array([[q.x, q.y, q.z, q.w]]))[0]
            out[tr.child_frame_id] = (rotation, np.array([v.x, v.y, v.z]))
    return out


def read_cloud_xyz(path: str | Path, stamp_ns: int, topic: str = CLOUD) -> np.ndarray:
    """(N, 3) float32 xyz of the cloud with this header stamp (for the bird's-eye view)."""
    from blendclip_ros.conversions.pointcloud import cloud_to_xyz
    with AnyReader([Path(path)]) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        for conn, _, raw in reader.messages(connections=conns):
            try:
                msg = reader.deserialize(raw, conn.msgtype)
            except Exception:  # noqa: BLE001 - a corrupt cloud: the view is drawn without its points
                continue
            if _stamp(msg.header) == stamp_ns:
                try:
                    return np.asarray(cloud_to_xyz(msg).points, dtype=np.float32)
                except ValueError as exc:  # MalformedCloudError: the view is drawn without points
                    log.warning('cloud at %d ns not drawn: %s', stamp_ns, exc)
    return np.zeros((0, 3), np.float32)
