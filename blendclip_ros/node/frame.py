"""The per-frame message path, shared by the node and the offline labeller (blendclip-label-bag).

One paired (cloud, boxes) in -> a `FrameOutcome`: the labels as the serialised LabelledObjectArray that
is published (node) or written (bag) unchanged, markers built from the same predictions and boxes,
counts and timings. No rclpy.init, no ROS graph: conversion, the frame check, the core `label_frame`
call, message building. Nothing here raises on bad input: the outcome says what was skipped or counted
and why.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from blendclip_core.geometry import Boxes
from blendclip_core.types import ObjectStatus, Predictions
from blendclip_ros.conversions.autoware import boxes_from_detected_objects
from blendclip_ros.conversions.boxes import boxes_from_msg, labelled_objects_to_msg
from blendclip_ros.conversions.cdr import (
    CdrLayoutError,
    TooManyBoxesError,
    detected_boxes_from_cdr,
    labelled_objects_cdr,
)
from blendclip_ros.conversions.markers import labelled_markers
from blendclip_ros.conversions.pointcloud import MalformedCloudError, cloud_to_xyz
from blendclip_ros.conversions.vision import boxes_from_detection3d_array

from .model import LoadedModel
from .params import NodeParams, StaticTransform

STATUS_COUNTER = {
    ObjectStatus.OK: 'objects_labelled',
    ObjectStatus.NO_POINTS: 'objects_no_points',
    ObjectStatus.INVALID_BOX: 'objects_invalid_box',
    ObjectStatus.BELOW_THRESHOLD: 'objects_below_threshold',
}


@dataclass(frozen=True)
class FrameSettings:
    """The dynamic, per-frame part of the parameters (swapped atomically on a change)."""

    top_k: int
    score_threshold: float
    min_points: int
    box_margin: float
    max_boxes: int

    @classmethod
    def from_params(cls, p: NodeParams) -> FrameSettings:
        return cls(p.top_k, p.score_threshold, p.min_points, p.box_margin, p.max_boxes)


@dataclass
class FrameOutcome:
    """What one frame gave: labels and markers to send (unless skipped), counts, timings, a warning."""

    counts: Counter = field(default_factory=Counter)
    skip_reason: str = ''  # '' = answered; else the counter suffix frames_skipped_<reason>
    message: str = ''  # a warning for the log (throttled by the node)
    warn_kind: str = ''
    model_ms: float = 0.0
    timings: dict = field(default_factory=dict)  # convert_ms, crop_ms, model_ms, build_ms
    labels_cdr: bytes = b''  # the LabelledObjectArray serialised (published, written); b'' if skipped
    predictions: Predictions | None = field(default=None, repr=False)  # None when skipped
    boxes: Boxes | None = field(default=None, repr=False)  # the input boxes (their frame, as labelled)
    header: Any = field(default=None, repr=False)  # the box array's header, copied into the labels
    model: str = ''  # model name written into the labels

    @property
    def labels(self) -> Any:
        """The LabelledObjectArray as message objects (None when skipped), for tools and tests: the same
        message `labels_cdr` holds."""
        if self.predictions is None:
            return None
        return labelled_objects_to_msg(self.predictions, self.boxes, header=self.header, model=self.model)

    def markers(self) -> Any:
        """The RViz MarkerArray of this frame's predictions and boxes (None when skipped)."""
        if self.predictions is None:
            return None
        return labelled_markers(self.predictions, self.boxes, self.header)


def boxes_of(msg: Any) -> Boxes:
    """Our DetectedBoxArray, a vision_msgs Detection3DArray or an Autoware DetectedObjects -> Boxes."""
    if hasattr(msg, 'detections'):
        return boxes_from_detection3d_array(msg)
    if hasattr(msg, 'objects'):
        return boxes_from_detected_objects(msg)
    return boxes_from_msg(msg)


def boxes_and_header(msg: Any, max_boxes: int | None = None) -> tuple[Boxes, Any]:
    """Boxes and the header to copy into the labels, from a box message or a serialised DetectedBoxArray
    (the node subscribes to those raw: conversions/cdr.py reads them without rclpy's message objects).

    Serialised input is untrusted: CdrLayoutError for anything that is not a DetectedBoxArray in CDR of
    either byte order, TooManyBoxesError above `max_boxes` (checked before the boxes are read).
    """
    if not isinstance(msg, (bytes, bytearray, memoryview)):
        return boxes_of(msg), msg.header
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    boxes, sec, nanosec, frame_id = detected_boxes_from_cdr(msg, max_boxes)
    return boxes, Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


class UndecodableCloudError(MalformedCloudError):
    """Bytes on the cloud topic that are not a serialised PointCloud2."""

    reason = 'cdr'


def cloud_message(msg: Any) -> Any:
    """A PointCloud2, or the serialised bytes of one (the node subscribes raw so that bytes which are no
    cloud are counted instead of dropped unseen inside the RMW). Raises UndecodableCloudError."""
    if not isinstance(msg, (bytes, bytearray, memoryview)):
        return msg
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import PointCloud2

    try:  # Fast CDR checks every length against the bytes left: bounded by the message size
        return deserialize_message(bytes(msg), PointCloud2)
    except Exception as exc:  # noqa: BLE001 - rclpy raises RMWError/RuntimeError/... by version
        raise UndecodableCloudError(f'{len(msg)} bytes are not a PointCloud2: {exc}') from None


def boxes_in_cloud_frame(boxes: Boxes, cloud_frame: str,
                         transforms: dict[tuple[str, str], StaticTransform]) -> Boxes | None:
    """The boxes expressed in the cloud's frame, or None when no static transform connects them.

    An empty frame_id on either side is taken to mean 'the same frame' (simple publishers leave it
    empty).
    """
    if not boxes.frame_id or not cloud_frame or boxes.frame_id == cloud_frame:
        return boxes
    tf = transforms.get((cloud_frame, boxes.frame_id))
    if tf is None:
        return None
    return boxes.transformed(tf.rotation, tf.translation, cloud_frame)


def label_frame_msgs(cloud_msg: Any, boxes_msg: Any, model: LoadedModel, settings: FrameSettings,
                     transforms: dict[tuple[str, str], StaticTransform]) -> FrameOutcome:
    """One paired frame -> LabelledObjectArray bytes (header copied from the boxes) plus counters.

    cloud_msg: a PointCloud2 or its serialised bytes. boxes_msg: DetectedBoxArray, a vision_msgs
    Detection3DArray, or a serialised DetectedBoxArray.
    """
    out = FrameOutcome()
    t0 = time.perf_counter()
    decoded = _decode_boxes(boxes_msg, settings.max_boxes, out)
    if decoded is None:
        return out
    boxes, header = decoded
    try:
        cloud_msg, cloud_error = cloud_message(cloud_msg), None
        cloud_frame = str(cloud_msg.header.frame_id)
    except UndecodableCloudError as exc:  # answered like any malformed cloud, in the boxes' frame
        cloud_msg, cloud_error, cloud_frame = None, exc, boxes.frame_id
    crop_boxes = boxes_in_cloud_frame(boxes, cloud_frame, transforms)
    if crop_boxes is None:
        out.skip_reason = 'frame_mismatch'
        out.message = (f'boxes in frame {boxes.frame_id!r}, cloud in {cloud_frame!r}, no static transform '
                       f"between them: set static_transforms ['{cloud_frame}->{boxes.frame_id}: x y z qx qy "
                       "qz qw'] or publish the boxes in the cloud's frame")
        return out
    points = _points(cloud_msg, cloud_error, out)
    t1 = time.perf_counter()
    predictions, timings = _label(points, crop_boxes, model, settings)
    t2 = time.perf_counter()
    for status, count in zip(*np.unique(predictions.status, return_counts=True)):
        out.counts[STATUS_COUNTER.get(ObjectStatus(int(status)), 'objects_other')] += int(count)
    out.predictions, out.boxes, out.header, out.model = predictions, boxes, header, model.name
    out.labels_cdr = labelled_objects_cdr(predictions, boxes, header, model.name)
    out.model_ms = timings['model_ms']
    out.timings = {'convert_ms': (t1 - t0) * 1e3, 'crop_ms': timings['crop_ms'], 'model_ms': out.model_ms,
                   'build_ms': (time.perf_counter() - t2) * 1e3}
    return out


def _points(cloud_msg: Any, cloud_error: Exception | None, out: FrameOutcome) -> np.ndarray:
    """The cloud's finite xyz; none (and counted) when it is empty or malformed."""
    try:
        if cloud_error is not None:
            raise cloud_error
        if int(cloud_msg.width) * int(cloud_msg.height) == 0:
            # Empty whatever its layout says: drivers publish a bare PointCloud2() for an empty sweep, and
            # that is an empty cloud, not a malformed one (cloud_to_xyz itself reads 0-point clouds).
            points, dropped = np.zeros((0, 3), np.float32), 0
        else:
            points, dropped = cloud_to_xyz(cloud_msg)
    except MalformedCloudError as exc:
        # Answer every box (no usable points) rather than go silent: downstream sees the frame.
        points, dropped = np.zeros((0, 3), np.float32), 0
        out.counts['clouds_malformed'] += 1
        out.counts[f'clouds_malformed_{exc.reason}'] += 1
        out.message, out.warn_kind = f'malformed cloud, boxes answered without points: {exc}', 'malformed'
    out.counts['points_nonfinite'] += dropped
    if len(points) == 0 and not out.counts['clouds_malformed']:
        out.counts['clouds_empty'] += 1
    return points


def _decode_boxes(boxes_msg: Any, max_boxes: int, out: FrameOutcome) -> tuple[Boxes, Any] | None:
    """(boxes, header), or None with `out` saying why the frame is skipped (too many, malformed)."""
    try:
        boxes, header = boxes_and_header(boxes_msg, max_boxes)
    except TooManyBoxesError as exc:
        n = exc.count
    except CdrLayoutError as exc:
        out.counts['boxes_malformed'] += 1
        out.skip_reason = 'boxes_malformed'
        out.message = f'box message skipped, not a DetectedBoxArray: {exc}'
        return None
    else:
        n = len(boxes)
    out.counts['boxes_total'] += n
    if n > max_boxes:
        out.skip_reason = 'too_many_boxes'
        out.message = f'frame with {n} boxes skipped (max_boxes={max_boxes})'
        return None
    return boxes, header


def _label(points: np.ndarray, boxes: Boxes, model: LoadedModel, settings: FrameSettings):
    """The core call; returns (Predictions, {'crop_ms', 'model_ms'})."""
    from blendclip_core.pipeline import PipelineConfig, label_frame

    config = PipelineConfig(top_k=settings.top_k, score_threshold=settings.score_threshold,
                            min_points=settings.min_points, box_margin=settings.box_margin)
    t0 = time.perf_counter()
    result = label_frame(points, boxes, model.classifier, config)
    total_ms = (time.perf_counter() - t0) * 1e3
    timings = getattr(result, 'timings', None) or {}
    # Without the split (another pipeline version) everything counts as model time: never flatters overhead.
    model_ms = float(timings.get('model_ms', total_ms))
    return result, {'model_ms': model_ms, 'crop_ms': float(timings.get('crop_ms', total_ms - model_ms))}
