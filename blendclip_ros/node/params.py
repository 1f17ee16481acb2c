"""The node's parameters: declared once with descriptors, read into a frozen dataclass, validated.

Three kinds, said in each descriptor's description:
- read-only (model, text space, device, autostart): fixed for the life of the process;
- configure-time (topics, sync, limits, static transforms): changeable only while unconfigured,
  they take effect at the next `configure`;
- dynamic (vocabulary, prompt templates, thresholds): changeable at any time through the parameter
  service; validated in `validate_dynamic`, applied by the worker between frames.
QoS of every topic is overridable with the standard `qos_overrides.<topic>.<publisher|subscription>.*`
parameters (rclpy QoSOverridingOptions), declared when the entities are created.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

from blendclip_core.depth_views import CLASSIFIERS
from blendclip_core.geometry import quaternion_to_matrix
from blendclip_core.normalization import NORMALIZATIONS
from blendclip_core.pipeline import PipelineConfig
from blendclip_core.vocabulary import (
    DEFAULT_TEMPLATES,
    DRIVING,
    VocabularyError,
    validate_labels,
    validate_templates,
)

READ_ONLY = 'read-only'
MODEL_FORMATS = ('auto', 'checkpoint', 'aoti', 'onnx')  # export.FORMATS and our checkpoint files
CONFIGURE = 'configure-time'
DYNAMIC = 'dynamic'


@dataclass(frozen=True)
class StaticTransform:
    """p_parent = rotation @ p_child + translation (the tf convention for child in parent)."""

    parent: str
    child: str
    rotation: np.ndarray
    translation: np.ndarray

    def inverse(self) -> StaticTransform:
        r_inv = self.rotation.T
        return StaticTransform(self.child, self.parent, r_inv, -r_inv @ self.translation)


@dataclass(frozen=True)
class NodeParams:
    """Everything the node reads from parameters (see `SPECS` for descriptions and ranges)."""

    autostart: bool = False
    checkpoint: str = ''
    model_format: str = 'auto'
    input_normalization: str = ''
    text_space: str = ''
    classifier: str = 'points'
    device: str = 'auto'
    cpu_threads: int = 0
    realtime_priority: int = 0
    vocabulary: tuple[str, ...] = DRIVING
    prompt_templates: tuple[str, ...] = DEFAULT_TEMPLATES
    top_k: int = 5
    score_threshold: float = 0.0
    min_points: int = PipelineConfig.min_points  # the pipeline's default (5): one place
    box_margin: float = 0.0
    max_boxes: int = 2048
    sync_slop: float = 0.0
    sync_queue_size: int = 10
    max_stamp_age: float = 0.0
    max_stamp_future: float = 5.0
    stamp_jump_reset: float = 10.0
    static_transforms: tuple[str, ...] = ()
    cloud_topic: str = 'lidar/points'
    boxes_topic: str = 'detections'
    detections_topic: str = 'detections_3d'
    autoware_topic: str = 'detected_objects'
    vision_labels_topic: str = 'blendclip/detections_3d'
    labels_topic: str = 'blendclip/objects'
    markers_topic: str = 'blendclip/markers'
    vocabulary_topic: str = 'blendclip/vocabulary'
    subscribe_vision_msgs: bool = True
    subscribe_autoware_msgs: bool = True
    publish_vision_msgs: bool = False
    publish_markers: bool = True
    diagnostics_period: float = 1.0
    latency_window: int = 2000

    @property
    def sync_slop_ns(self) -> int:
        return int(round(self.sync_slop * 1e9))

    @property
    def max_stamp_age_ns(self) -> int:
        return int(round(self.max_stamp_age * 1e9))

    @property
    def max_stamp_future_ns(self) -> int:
        return int(round(self.max_stamp_future * 1e9))

    @property
    def stamp_jump_reset_ns(self) -> int:
        return int(round(self.stamp_jump_reset * 1e9))


@dataclass(frozen=True)
class ParamSpec:
    name: str
    kind: str
    description: str
    float_range: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = None
    choices: tuple[str, ...] | None = None


SPECS: tuple[ParamSpec, ...] = (
    ParamSpec('autostart', READ_ONLY, 'Configure and activate on start-up (no lifecycle manager).'),
    ParamSpec('checkpoint', READ_ONLY, "Point-encoder checkpoint file, or the folder of a blendclip-export "
              "artefact; '' = the packaged default model."),
    ParamSpec('model_format', READ_ONLY, "What `checkpoint` is: 'checkpoint' (a .pt file), 'aoti' or 'onnx' "
              "(an exported folder, labelling with its own vocabulary only), or 'auto' (read from the path); "
              'a named format the path does not hold fails configure.', choices=MODEL_FORMATS),
    ParamSpec('input_normalization', READ_ONLY, "The encoder's input normalisation: '' = the model card's; "
              "'metric' or 'unit_sphere' to load a checkpoint whose card does not record it.",
              choices=('', *NORMALIZATIONS)),
    ParamSpec('text_space', READ_ONLY, "Text space spec, e.g. 'openclip:ViT-B-16:/path/weights.safetensors' "
              "or 'minilm'; '' = the one named in the checkpoint's model card."),
    ParamSpec('classifier', READ_ONLY, "'points' (the point encoder), 'depth_views' (CLIP2Point: OpenCLIP's "
              "image tower on depth renders, no point encoder; the OpenCLIP model is `text_space` if it "
              "names one, else the card's, else ViT-B-16 DataComp) or 'both' (mean of both paths' logits).",
              choices=CLASSIFIERS),
    ParamSpec('device', READ_ONLY, "'auto' (CUDA when present, else CPU), 'cpu', 'cuda' or 'cuda:N'."),
    ParamSpec('cpu_threads', READ_ONLY, 'torch CPU threads (0 = torch default). On a small CPU, 1 keeps a '
              'core free for the executor; oversubscribed threads are much slower.', int_range=(0, 256)),
    ParamSpec('realtime_priority', CONFIGURE, "SCHED_FIFO priority (1-99) of the node's two Python "
              'threads, the executor and the processing thread, so that other work cannot take their cores '
              'mid-frame; 0 = ordinary scheduling. Needs CAP_SYS_NICE or `ulimit -r`, and real-time CPU '
              'time for the cgroup; without them the node warns and runs at ordinary priority.',
              int_range=(0, 99)),
    ParamSpec('vocabulary', DYNAMIC, 'Labels to choose from (free text, unique, non-empty).'),
    ParamSpec('prompt_templates', DYNAMIC, "Prompts per label, each with one '{}'; embeddings are averaged."),
    ParamSpec('top_k', DYNAMIC, 'Labels reported per object (capped at the vocabulary size).',
              int_range=(1, 100)),
    ParamSpec('score_threshold', DYNAMIC, 'Objects whose best score is lower get STATUS_BELOW_THRESHOLD.',
              float_range=(0.0, 1.0)),
    ParamSpec('min_points', DYNAMIC, 'Objects with fewer points inside the box get STATUS_NO_POINTS.',
              int_range=(1, 100000)),
    ParamSpec('box_margin', DYNAMIC, 'Metres added to every box face when cropping points.',
              float_range=(0.0, 5.0)),
    ParamSpec('max_boxes', CONFIGURE, 'Frames with more boxes than this are skipped and counted.',
              int_range=(1, 100000)),
    ParamSpec('sync_slop', CONFIGURE, 'Seconds cloud and box stamps may differ (0 = exact match).',
              float_range=(0.0, 1.0)),
    ParamSpec('sync_queue_size', CONFIGURE, 'Unpaired messages kept per input while waiting for a partner.',
              int_range=(1, 1000)),
    ParamSpec('max_stamp_age', CONFIGURE, 'Drop inputs older than this many seconds by the node clock '
              '(0 = off; keep 0 when replaying bags without /clock).', float_range=(0.0, 3600.0)),
    ParamSpec('max_stamp_future', CONFIGURE, 'Drop inputs stamped more than this many seconds ahead of the '
              'node clock, so one bad stamp cannot make later frames stale (0 = off; not applied while the '
              'clock reads 0, i.e. simulated time before /clock).', float_range=(0.0, 3600.0)),
    ParamSpec('stamp_jump_reset', CONFIGURE, 'An input stamped more than this many seconds before the last '
              'pair means the stamps restarted (bag loop, clock reset): pairing starts afresh from it '
              '(0 = off; a long run of stale inputs resets as well).', float_range=(0.0, 3600.0)),
    ParamSpec('static_transforms', CONFIGURE, "Fixed frames for boxes not in the cloud's frame: "
              "'parent->child: x y z qx qy qz qw' or 'parent->child: x y z roll pitch yaw' (pose of child "
              'in parent, metres/radians); inverses are used as needed.'),
    ParamSpec('cloud_topic', CONFIGURE, 'sensor_msgs/PointCloud2 input (sensor-data QoS).'),
    ParamSpec('boxes_topic', CONFIGURE, 'blendclip/DetectedBoxArray input.'),
    ParamSpec('detections_topic', CONFIGURE, 'vision_msgs/Detection3DArray input (only when vision_msgs '
              'is installed and subscribe_vision_msgs is true).'),
    ParamSpec('autoware_topic', CONFIGURE, 'autoware_perception_msgs/DetectedObjects input (only when '
              'autoware_perception_msgs is installed and subscribe_autoware_msgs is true).'),
    ParamSpec('labels_topic', CONFIGURE, 'blendclip/LabelledObjectArray output.'),
    ParamSpec('markers_topic', CONFIGURE, 'visualization_msgs/MarkerArray output for RViz.'),
    ParamSpec('vocabulary_topic', CONFIGURE, 'blendclip/Vocabulary output (transient local).'),
    ParamSpec('vision_labels_topic', CONFIGURE, 'vision_msgs/Detection3DArray output of the labels (only '
              'when vision_msgs is installed and publish_vision_msgs is true).'),
    ParamSpec('subscribe_vision_msgs', CONFIGURE, 'Also accept vision_msgs/Detection3DArray boxes.'),
    ParamSpec('subscribe_autoware_msgs', CONFIGURE, 'Also accept autoware_perception_msgs/DetectedObjects '
              'boxes.'),
    ParamSpec('publish_vision_msgs', CONFIGURE, 'Also publish the labels as vision_msgs/Detection3DArray '
              '(class text and score in each hypothesis; built only while someone subscribes).'),
    ParamSpec('publish_markers', CONFIGURE, 'Publish RViz markers (built only while someone subscribes).'),
    ParamSpec('diagnostics_period', CONFIGURE, 'Seconds between /diagnostics messages.',
              float_range=(0.05, 60.0)),
    ParamSpec('latency_window', CONFIGURE, 'Frames the latency percentiles are computed over.',
              int_range=(10, 100000)),
)
SPEC_BY_NAME = {s.name: s for s in SPECS}
TOPIC_NAMES = tuple(s.name for s in SPECS if s.name.endswith('_topic'))
DYNAMIC_NAMES = frozenset(s.name for s in SPECS if s.kind == DYNAMIC)
CONFIGURE_NAMES = frozenset(s.name for s in SPECS if s.kind == CONFIGURE)
_DEFAULTS = NodeParams()
_STRING_ARRAYS = frozenset(f.name for f in dataclasses.fields(NodeParams) if f.type == 'tuple[str, ...]')


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(name=spec.name, description=f'[{spec.kind}] {spec.description}',
                            read_only=spec.kind == READ_ONLY)
    if spec.name in _STRING_ARRAYS:
        d.type = ParameterType.PARAMETER_STRING_ARRAY
    if spec.float_range is not None:
        d.floating_point_range = [FloatingPointRange(from_value=spec.float_range[0],
                                                     to_value=spec.float_range[1], step=0.0)]
    if spec.int_range is not None:
        d.integer_range = [IntegerRange(from_value=spec.int_range[0], to_value=spec.int_range[1], step=0)]
    return d


def declare(node) -> None:
    """Declare every parameter on `node` (values from overrides / params files win over defaults)."""
    from rclpy.parameter import Parameter

    for spec in SPECS:
        default = getattr(_DEFAULTS, spec.name)
        if isinstance(default, tuple):
            # An empty list cannot carry its element type; declare it typed but unset instead.
            default = list(default) if default else Parameter.Type.STRING_ARRAY
        node.declare_parameter(spec.name, default, descriptor(spec))


def read(node) -> NodeParams:
    """Current parameter values as a validated NodeParams (raises ValueError with the reason)."""
    values = {}
    for spec in SPECS:
        try:
            value = node.get_parameter(spec.name).value
        except Exception:  # noqa: BLE001 - typed-but-unset (ParameterUninitializedException)
            value = None
        values[spec.name] = value
    return from_values(values)


def from_values(values: Mapping[str, Any]) -> NodeParams:
    kwargs = {}
    for f in dataclasses.fields(NodeParams):
        value = values.get(f.name)
        if value is None:
            continue
        if f.name in _STRING_ARRAYS:
            value = tuple(str(v) for v in value)
        kwargs[f.name] = value
    params = NodeParams(**kwargs)
    reason = validate(params)
    if reason:
        raise ValueError(reason)
    return params


def validate(params: NodeParams) -> str | None:
    """None when valid, else a reason a person can act on."""
    for name in ('vocabulary', 'prompt_templates'):
        reason = validate_dynamic(name, getattr(params, name))
        if reason:
            return reason
    for spec in SPECS:
        value = getattr(params, spec.name)
        rng = spec.float_range or spec.int_range
        if rng is not None and not (rng[0] <= value <= rng[1]):
            return f'{spec.name}={value} is outside [{rng[0]}, {rng[1]}]'
        if spec.choices is not None and value not in spec.choices:
            return f'{spec.name}={value!r} is not one of {spec.choices}'
    try:
        parse_static_transforms(params.static_transforms)
    except ValueError as exc:
        return str(exc)
    for name in TOPIC_NAMES:
        reason = validate_topic(name, getattr(params, name))
        if reason:
            return reason
    return None


def validate_topic(name: str, topic: str) -> str | None:
    """rcl's own topic name rules, checked before anything is created."""
    from rclpy.validate_topic_name import validate_topic_name

    try:
        validate_topic_name(str(topic))
    except Exception as exc:  # noqa: BLE001 - InvalidTopicNameException, message says why
        return f'{name}: {str(exc).splitlines()[0]} ({topic!r})'
    return None


def validate_dynamic(name: str, value: Any) -> str | None:
    """Reason to reject a run-time change of a dynamic parameter, None if it is fine."""
    if name == 'vocabulary':
        return _vocabulary_reason(validate_labels, value)
    if name == 'prompt_templates':
        return _vocabulary_reason(validate_templates, value)
    spec = SPEC_BY_NAME[name]
    rng = spec.float_range or spec.int_range
    if isinstance(value, float) and not math.isfinite(value):
        return f'{name} must be finite'
    if rng is not None and not (rng[0] <= value <= rng[1]):
        return f'{name}={value} is outside [{rng[0]}, {rng[1]}]'
    return None


def _vocabulary_reason(check, values: Sequence[str]) -> str | None:
    """The core vocabulary rules (blendclip_core.vocabulary), as a rejection reason or None."""
    try:
        check(list(values or ()))
    except VocabularyError as exc:
        return str(exc)
    return None


def parse_static_transforms(entries: Iterable[str]) -> dict[tuple[str, str], StaticTransform]:
    """'parent->child: x y z qx qy qz qw | x y z roll pitch yaw' entries -> (parent, child) -> transform.

    Inverses are added, so a lookup works in either direction.
    """
    out: dict[tuple[str, str], StaticTransform] = {}
    for entry in entries:
        head, sep, numbers = str(entry).partition(':')
        parent, arrow, child = head.partition('->')
        parent, child = parent.strip(), child.strip()
        if not sep or not arrow or not parent or not child:
            raise ValueError(f"static transform {entry!r}: expected 'parent->child: x y z qx qy qz qw'")
        try:
            vals = np.array([float(v) for v in numbers.split()], dtype=np.float64)
        except ValueError:
            raise ValueError(f'static transform {entry!r}: values must be numbers') from None
        if len(vals) not in (6, 7) or not np.isfinite(vals).all():
            raise ValueError(f'static transform {entry!r}: need 6 (x y z roll pitch yaw) or 7 '
                             f'(x y z qx qy qz qw) finite numbers, got {len(vals)}')
        rotation = _rpy_to_matrix(*vals[3:]) if len(vals) == 6 else _quat_matrix(vals[3:])
        tf = StaticTransform(parent, child, rotation, vals[:3])
        out[(parent, child)] = tf
        out[(child, parent)] = tf.inverse()
    return out


def _quat_matrix(q: np.ndarray) -> np.ndarray:
    if np.linalg.norm(q) < 1e-9:
        raise ValueError('static transform quaternion must not be zero')
    return quaternion_to_matrix(q[None])[0]


def _rpy_to_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = (math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch),
                              math.cos(yaw), math.sin(yaw))
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    return rz @ ry @ rx
