"""The test side of the node integration tests: real rclpy in this process, the node in another.

Builds clouds and boxes from the real nuScenes sample, publishes them, and collects what the node
publishes (labels, vocabulary, diagnostics), with bounded waits everywhere.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import PointCloud2

from blendclip.msg import DetectedBoxArray, LabelledObjectArray, Vocabulary
from blendclip_core.geometry import Boxes
from blendclip_ros.conversions import boxes_to_msg, points_to_cloud
from blendclip_ros.conversions.stamps import ns_to_stamp, stamp_to_ns
from blendclip_ros.node.diagnostics import parse_status_values, status_name

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SAMPLE = REPO / 'data' / 'nuscenes_sample'
TEXT_SPACE = 'minilm:all-MiniLM-L6-v2'  # real, offline; 384-d
TEST_VOCABULARY = ['car', 'truck', 'bus', 'pedestrian', 'bicycle', 'traffic cone', 'barrier']
TEST_TEMPLATES = ['point cloud of a {}.']
# Boxes may come in the ego frame: the sample's lidar2ego as 'base_link->LIDAR_TOP' (pose of LIDAR_TOP).
EGO_FRAME = 'base_link'
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def load_sample() -> tuple[np.ndarray, Boxes, dict]:
    """The real sweep (N, 5: x y z intensity ring) and its 69 boxes in LIDAR_TOP."""
    ann = json.loads((SAMPLE / 'annotations_lidar.json').read_text())
    points = np.fromfile(SAMPLE / ann['lidar_file'], dtype=np.float32).reshape(-1, 5)
    objs = ann['objects']
    boxes = Boxes(np.array([o['center_xyz'] for o in objs]), np.array([o['size_lwh'] for o in objs]),
                  np.array([o['quaternion_xyzw'] for o in objs]), tuple(f'obj-{o["index"]}' for o in objs),
                  'LIDAR_TOP', tuple(o['label'] for o in objs), np.linspace(0.5, 0.9, len(objs)))
    return points, boxes, ann


def sample_cloud(points: np.ndarray, frame_id: str = 'LIDAR_TOP') -> PointCloud2:
    return points_to_cloud(points, ('x', 'y', 'z', 'intensity', 'ring'), frame_id=frame_id)


DEFAULT_TOPICS = ('/lidar/points', '/detections', '/blendclip/objects')


class NodeClient:
    """Publishes inputs to and reads outputs of the node named `node` (default topics)."""

    def __init__(self, context, node: str = '/blendclip', keep_labels: bool = True,
                 topics: tuple[str, str, str] = DEFAULT_TOPICS) -> None:
        """topics: cloud in, boxes in, labels out (as the node's remappings name them)."""
        self.node_path = node
        self.keep_labels = keep_labels
        self.node = rclpy.create_node('blendclip_test_client', context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        n = self.node
        cloud_topic, boxes_topic, labels_topic = topics
        self.labels_topic = labels_topic
        self.cloud_pub = n.create_publisher(PointCloud2, cloud_topic, qos_profile_sensor_data)
        self.boxes_pub = n.create_publisher(DetectedBoxArray, boxes_topic, RELIABLE)
        self.labels: dict[int, LabelledObjectArray] = {}
        self.received_at: dict[int, int] = {}  # labels' stamp -> time.time_ns() when they arrived
        self.vocabularies: list[Vocabulary] = []
        self.diagnostics: list[dict] = []
        n.create_subscription(LabelledObjectArray, labels_topic, self._on_labels, RELIABLE)
        n.create_subscription(Vocabulary, '/blendclip/vocabulary', self.vocabularies.append, LATCHED)
        n.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.set_params = n.create_client(SetParameters, f'{node}/set_parameters')
        self.change_state = n.create_client(ChangeState, f'{node}/change_state')
        self._last_stamp = 0

    def _on_labels(self, msg: LabelledObjectArray) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        self.received_at.setdefault(stamp, time.time_ns())
        if self.keep_labels:
            self.labels[stamp] = msg

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == status_name(self.node_path):
                self.diagnostics.append(parse_status_values(status))

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()

    # ------------------------------------------------------------------------------------- waiting
    def spin_until(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return bool(predicate())

    def wait_active(self, timeout: float) -> bool:
        """Active = the vocabulary was published (at activation) and our publishers are matched."""
        return self.spin_until(lambda: bool(self.vocabularies) and self.cloud_pub.get_subscription_count() > 0
                               and self.boxes_pub.get_subscription_count() > 0
                               and self.node.count_publishers(self.labels_topic) > 0, timeout)

    def counters(self) -> dict:
        return self.diagnostics[-1] if self.diagnostics else {}

    def wait_counter(self, key: str, at_least: float, timeout: float = 20.0) -> dict:
        ok = self.spin_until(lambda: self.counters().get(key, 0) >= at_least, timeout)
        assert ok, f'{key} did not reach {at_least}: {self.counters().get(key)}'
        return self.counters()

    # ------------------------------------------------------------------------------------- frames
    def next_stamp(self) -> int:
        """Node-clock-like wall time, strictly increasing (the node drops non-increasing stamps)."""
        self._last_stamp = max(time.time_ns(), self._last_stamp + 1_000_000)
        return self._last_stamp

    def send(self, cloud: PointCloud2, boxes: DetectedBoxArray | Boxes, stamp: int | None = None,
             cloud_stamp: int | None = None) -> int:
        stamp = self.next_stamp() if stamp is None else stamp
        if isinstance(boxes, Boxes):
            boxes = boxes_to_msg(boxes)
        cloud.header.stamp = ns_to_stamp(stamp if cloud_stamp is None else cloud_stamp)
        boxes.header.stamp = ns_to_stamp(stamp)
        self.cloud_pub.publish(cloud)
        self.boxes_pub.publish(boxes)
        return stamp

    def frame(self, cloud, boxes, timeout: float = 30.0, **kwargs) -> LabelledObjectArray | None:
        """Send one frame and wait for its labels (None if none came within `timeout`)."""
        stamp = self.send(cloud, boxes, **kwargs)
        self.spin_until(lambda: stamp in self.labels, timeout)
        return self.labels.get(stamp)

    # ------------------------------------------------------------------------------------- services
    def _call(self, client, request, timeout: float = 15.0):
        assert client.wait_for_service(timeout_sec=timeout), f'{client.srv_name} not available'
        future = client.call_async(request)
        assert self.spin_until(future.done, timeout), f'{client.srv_name} did not answer'
        return future.result()

    def set_parameter(self, name: str, value: ParameterValue):
        """SetParameters on the node's parameter service -> SetParametersResult."""
        request = SetParameters.Request(parameters=[ParameterMsg(name=name, value=value)])
        return self._call(self.set_params, request).results[0]

    def transition(self, transition_id: int) -> bool:
        return self._call(self.change_state, ChangeState.Request(
            transition=Transition(id=transition_id))).success


def string_array(values) -> ParameterValue:
    return ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=list(values))


def integer(value: int) -> ParameterValue:
    return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)


def double(value: float) -> ParameterValue:
    return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)


def string(value: str) -> ParameterValue:
    return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)


def lidar2ego_entry() -> str:
    from blendclip_core.geometry import matrix_to_quaternion

    m = np.array(json.loads((SAMPLE / 'annotations_lidar.json').read_text())['lidar2ego'])
    q = matrix_to_quaternion(m[None, :3, :3])[0]
    return f'{EGO_FRAME}->LIDAR_TOP: ' + ' '.join(f'{v:.9f}' for v in [*m[:3, 3], *q])


def write_params(path: Path, checkpoint: Path, **overrides) -> Path:
    """The shipped params file with the test's model, vocabulary and faster diagnostics."""
    doc = yaml.safe_load((REPO / 'config' / 'blendclip.params.yaml').read_text())
    params = doc['/**']['ros__parameters']
    params.update(checkpoint=str(checkpoint), cpu_threads=1, vocabulary=TEST_VOCABULARY,
                  prompt_templates=TEST_TEMPLATES, diagnostics_period=0.2,
                  static_transforms=[lidar2ego_entry()], **overrides)
    # A standard QoS override (checked on the graph by the integration test).
    params['qos_overrides'] = {'/blendclip/markers': {'publisher': {'reliability': 'best_effort'}}}
    path.write_text(yaml.safe_dump(doc))
    return path


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The editable install may predate a package; the node must import this checkout.
    env['PYTHONPATH'] = os.pathsep.join([str(REPO), *filter(None, [env.get('PYTHONPATH')])])
    env.update(OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1', RCUTILS_COLORIZED_OUTPUT='0')
    return env
