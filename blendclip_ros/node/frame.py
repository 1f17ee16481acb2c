"""What the node does with one frame, without rclpy.init: messages in, messages and counts out.

Kept apart from the node class so the lifecycle node stays glue and the per-frame path (conversion,
frame check, the core `label_frame` call, message building) can be driven without a ROS graph.
Nothing here raises on bad input: the outcome says what was skipped or counted and why.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blendclip_core.geometry import Boxes
from blendclip_core.types import ObjectStatus
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

from .params import NodeParams, StaticTransform

# Latency windows reported on /diagnostics (milliseconds):
WINDOWS = (
    'processing',  # worker: frame taken -> labels (and markers) published
    'model',  # encoder + classifier inside label_frame
    'ros_overhead',  # processing - model: conversion, cropping, message building, publishing
    'convert',  # messages -> numpy (cloud view + copy of finite xyz, boxes), frame transform
    'crop',  # points of every box (blendclip_core.preprocess, inside label_frame)
    'build',  # the LabelledObjectArray's bytes (CDR) from the predictions
    'publish',  # publish() calls (and marker building when someone subscribes)
    'queue_wait',  # pair complete -> worker starts it
    'stamp_to_publish',  # header stamp -> labels published, node clock (needs synced clocks)
)

# Counters always reported (0 until something happens), so monitors and tests can rely on the keys.
COUNTERS = (
    'clouds_received', 'boxes_received', 'frames_published', 'frames_failed', 'frames_skipped_too_many_boxes',
    'frames_skipped_frame_mismatch', 'frames_skipped_boxes_malformed', 'clouds_malformed', 'clouds_empty',
    'points_nonfinite', 'boxes_total', 'boxes_malformed', 'objects_labelled', 'objects_no_points',
    'objects_invalid_box', 'objects_below_threshold', 'parameters_rejected', 'vocabulary_updates',
    'vocabulary_update_failures', 'vocabulary_updates_superseded', 'callbacks_failed',
)

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
    counts: Counter = field(default_factory=Counter)
    skip_reason: str = ''  # '' = answered; else the counter suffix frames_skipped_<reason>
    message: str = ''  # a warning for the log (throttled by the node)
    warn_kind: str = ''
    model_ms: float = 0.0
    timings: dict = field(default_factory=dict)  # convert_ms, crop_ms, model_ms, build_ms
    labels_cdr: bytes = b''  # the LabelledObjectArray serialised, what the node publishes; b'' if skipped
    parts: tuple | None = field(default=None, repr=False)  # (predictions, boxes, header, model name)
    _labels: Any = field(default=None, repr=False)

    @property
    def labels(self) -> Any:
        """The LabelledObjectArray (None when the frame was skipped), made on first use: the node
        publishes `labels_cdr` and needs the message objects only for markers."""
        if self._labels is None and self.parts is not None:
            predictions, boxes, header, model = self.parts
            self._labels = labelled_objects_to_msg(predictions, boxes, header=header, model=model)
        return self._labels


class LoadedModel:
    """Encoder + text space + vocabulary embeddings, as the node uses them (worker thread only)."""

    def __init__(self, classifier: Any, name: str, device: str, text_space: str) -> None:
        self.classifier = classifier
        self.name = name
        self.device = device
        self.text_space = text_space

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.classifier.labels)

    @property
    def templates(self) -> tuple[str, ...]:
        return tuple(self.classifier.templates)

    @property
    def vocabulary_version(self) -> str:
        return str(self.classifier.vocabulary_version)

    def set_vocabulary(self, labels, templates) -> None:
        self.classifier.set_vocabulary(list(labels), list(templates))

    def build_vocabulary(self, labels, templates) -> Any:
        """The slow half of a vocabulary change (text embeddings, on the CPU), safe to run on another
        thread while frames are labelled: nothing the worker uses is touched."""
        return self.classifier.build_vocabulary(list(labels), list(templates), device='cpu')

    def use_vocabulary(self, vocab: Any) -> None:
        """The quick half, on the worker thread: copy to the device and swap (labels and embeddings
        together). The copy stays off other threads: a CUDA graph may be capturing on the worker."""
        self.classifier.use_vocabulary(vocab)

    def describe(self) -> str:
        return f'model {self.name!r} on {self.device}, text space {self.text_space!r}'

    def release(self) -> None:
        self.classifier = None


def load_model(params: NodeParams) -> LoadedModel:
    """Checkpoint + text space + vocabulary embeddings on the chosen device (raises with a reason)."""
    if params.checkpoint and not Path(params.checkpoint).expanduser().is_file():
        raise FileNotFoundError(f'checkpoint not found: {params.checkpoint}')
    from blendclip_core.checkpoint import default_checkpoint_path
    from blendclip_core.classifier import ZeroShotClassifier

    if params.cpu_threads:
        import torch

        torch.set_num_threads(params.cpu_threads)
    path = Path(params.checkpoint).expanduser() if params.checkpoint else default_checkpoint_path()
    if not path:
        raise FileNotFoundError('no checkpoint given and no packaged default model found; set `checkpoint`')
    classifier = ZeroShotClassifier.from_checkpoint(
        path, list(params.vocabulary), list(params.prompt_templates), device=params.device,
        text_space=params.text_space or None, top_k=params.top_k)
    channels = int(getattr(classifier.encoder, 'in_channels', 3))
    if channels != 3:
        raise ValueError(f'{path}: the encoder takes {channels} input channels; the node feeds xyz only')
    return LoadedModel(classifier, classifier.model_name, str(classifier.device), classifier.text_space_spec)


def empty_device_cache() -> None:
    """Give cached CUDA memory back after the model is dropped (no-op without CUDA)."""
    import sys

    torch = sys.modules.get('torch')
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def boxes_of(msg: Any) -> Boxes:
    """Our DetectedBoxArray or a vision_msgs Detection3DArray -> Boxes."""
    if hasattr(msg, 'detections'):
        return boxes_from_detection3d_array(msg)
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
    """One paired frame -> LabelledObjectArray (header copied from the boxes) plus counters.

    boxes_msg: DetectedBoxArray, a vision_msgs Detection3DArray, or a serialised DetectedBoxArray.
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
    t1 = time.perf_counter()
    predictions, timings = _label(points, crop_boxes, model, settings)
    t2 = time.perf_counter()
    for status, count in zip(*np.unique(predictions.status, return_counts=True)):
        out.counts[STATUS_COUNTER.get(ObjectStatus(int(status)), 'objects_other')] += int(count)
    out.parts = (predictions, boxes, header, model.name)
    out.labels_cdr = labelled_objects_cdr(predictions, boxes, header, model.name)
    out.model_ms = timings['model_ms']
    out.timings = {'convert_ms': (t1 - t0) * 1e3, 'crop_ms': timings['crop_ms'], 'model_ms': out.model_ms,
                   'build_ms': (time.perf_counter() - t2) * 1e3}
    return out


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


def markers_msg(labels_msg: Any):
    return labelled_markers(labels_msg)
