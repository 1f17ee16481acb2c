"""The node's inputs on the executor thread: count, read the header stamp, pair, hand off. O(1) each.

Clouds and DetectedBoxArrays are subscribed as raw bytes: bytes that are no message reach us and are
counted (a typed subscription's RMW drops them unseen), and the executor reads only their header stamp
(conversions/cdr.py); the frame worker decodes them. A vision_msgs Detection3DArray (when installed)
comes as a message. Nothing raised here may end the executor's spin: callbacks are guarded.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import PointCloud2

from blendclip.msg import DetectedBoxArray
from blendclip_ros.conversions.cdr import cdr_stamp_ns
from blendclip_ros.conversions.stamps import stamp_to_ns

from .params import NodeParams
from .sync import Pair, StampSynchronizer

# Optional interface packages (no wheels; `make prefix` builds them from ../shared/upstream). Without one,
# its input (or output) is off and the node says so once at configure (missing_interfaces).
try:
    import vision_msgs.msg as _vision_msgs
    from vision_msgs.msg import Detection3DArray
except ImportError:  # pragma: no cover - depends on the install
    _vision_msgs = Detection3DArray = None
try:
    from autoware_perception_msgs.msg import DetectedObjects
except ImportError:  # pragma: no cover - depends on the install
    DetectedObjects = None

BOXES_IN = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


class FrameInputs:
    """Pairs clouds and boxes by stamp and submits each pair, with the time it was complete."""

    def __init__(self, counters: Counter, warn: Callable[[str, str], None],
                 submit: Callable[[tuple[Pair, float]], Any], now_ns: Callable[[], int]) -> None:
        self._counters, self._warn, self._submit, self._now_ns = counters, warn, submit, now_ns
        self.sync: StampSynchronizer | None = None
        self._params = NodeParams()

    def configure(self, p: NodeParams) -> None:
        """A new synchroniser for these parameters; its counters cover the life of the process."""
        old, self._params = self.sync, p
        self.sync = StampSynchronizer(p.sync_slop_ns, p.sync_queue_size, p.max_stamp_age_ns,
                                      max_future_ns=p.max_stamp_future_ns, jump_back_ns=p.stamp_jump_reset_ns)
        if old is not None:
            self.sync.counters = old.counters

    def reset(self) -> None:
        if self.sync is not None:
            self.sync.reset()

    def subscriptions(self) -> list[tuple]:
        """(message type, topic, guarded callback, QoS, raw) of every input to subscribe to."""
        p = self._params
        inputs = [(PointCloud2, p.cloud_topic, self.cloud_raw, qos_profile_sensor_data, True),
                  (DetectedBoxArray, p.boxes_topic, self.boxes_raw, BOXES_IN, True)]
        if Detection3DArray is not None and p.subscribe_vision_msgs:
            inputs.append((Detection3DArray, p.detections_topic, self.boxes, BOXES_IN, False))
        if DetectedObjects is not None and p.subscribe_autoware_msgs:
            inputs.append((DetectedObjects, p.autoware_topic, self.boxes, BOXES_IN, False))
        return [(msg_type, topic, self._guarded(callback), qos, raw)
                for msg_type, topic, callback, qos, raw in inputs]

    def _guarded(self, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        """An exception out of a subscription callback would end the executor's spin (the process):
        count it and warn instead. Nothing is expected to get here; this is the last line."""
        @functools.wraps(callback)
        def guarded(msg: Any) -> None:
            try:
                callback(msg)
            except Exception as exc:  # noqa: BLE001 - untrusted input must never stop the node
                self._counters['callbacks_failed'] += 1
                self._warn('callback', f'{callback.__name__} failed: {type(exc).__name__}: {exc}')
        return guarded

    def cloud_raw(self, data: bytes) -> None:
        self._counters['clouds_received'] += 1
        stamp_ns = cdr_stamp_ns(data)
        if stamp_ns is None:  # too short or not CDR: no stamp to pair by
            self._counters['clouds_malformed'] += 1
            self._counters['clouds_malformed_cdr'] += 1
            self._warn('cloud_cdr', f'{self._params.cloud_topic}: {len(data)} bytes that are not a '
                       'PointCloud2, skipped')
            return
        self._pair(self.sync.add_cloud(stamp_ns, data, self._now_ns()))

    def boxes(self, msg: Any) -> None:
        self._counters['boxes_received'] += 1
        self._pair(self.sync.add_boxes(stamp_to_ns(msg.header.stamp), msg, self._now_ns()))

    def boxes_raw(self, data: bytes) -> None:
        self._counters['boxes_received'] += 1
        stamp_ns = cdr_stamp_ns(data)
        if stamp_ns is None:  # too short or not CDR; the rest is checked when the worker reads it
            self._counters['boxes_malformed'] += 1
            self._warn('boxes_malformed', f'{self._params.boxes_topic}: {len(data)} bytes that are not a '
                       'DetectedBoxArray, skipped')
            return
        self._pair(self.sync.add_boxes(stamp_ns, data, self._now_ns()))

    def _pair(self, pair: Pair | None) -> None:
        if pair is not None:
            self._submit((pair, time.perf_counter()))


def vision_msgs_types() -> Any:
    """The `vision_msgs.msg` module (for conversions/vision.py's writer), None when not installed."""
    return _vision_msgs


def missing_interfaces(p: NodeParams) -> list[str]:
    """One line for each optional input or output these parameters ask for whose package is missing."""
    wanted = ((p.subscribe_vision_msgs, Detection3DArray, 'vision_msgs', 'Detection3DArray input on',
               p.detections_topic, 'subscribe_vision_msgs'),
              (p.subscribe_autoware_msgs, DetectedObjects, 'autoware_perception_msgs',
               'DetectedObjects input on', p.autoware_topic, 'subscribe_autoware_msgs'),
              (p.publish_vision_msgs, Detection3DArray, 'vision_msgs', 'Detection3DArray output on',
               p.vision_labels_topic, 'publish_vision_msgs'))
    return [f'{package} is not installed: the {what} {topic!r} is off (set {switch}:=false to silence this)'
            for on, msg_type, package, what, topic, switch in wanted if on and msg_type is None]
