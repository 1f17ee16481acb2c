"""The node's publishers: what it creates at configure, with which QoS, and the extra outputs a frame
feeds (markers and vision_msgs only while someone subscribes: they cost more than the labels)."""

from __future__ import annotations

import copy
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from visualization_msgs.msg import MarkerArray

from blendclip.msg import LabelledObjectArray, Vocabulary
from blendclip_ros.conversions.vision import detection3d_array_from_labelled

from . import params as P
from .inputs import vision_msgs_types

RELIABLE_OUT = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
LATCHED_OUT = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


def qos_overridable() -> dict[str, Any]:
    return {'qos_overriding_options': QoSOverridingOptions.with_default_policies()}


def own(qos: QoSProfile) -> QoSProfile:
    """A copy for one entity: rclpy applies `qos_overrides.*` to the profile object it is given, so a
    shared profile would carry one topic's override to every entity created after it."""
    return copy.copy(qos)


def create_publishers(node, params: P.NodeParams, pubs: dict[str, Any]) -> None:
    """Fill `pubs` one by one, so that a failure half-way still lets the caller release what was made."""
    for key, msg_type, topic, qos, options in (
            ('labels', LabelledObjectArray, params.labels_topic, RELIABLE_OUT, qos_overridable()),
            ('markers', MarkerArray, params.markers_topic, RELIABLE_OUT, qos_overridable()),
            ('vocabulary', Vocabulary, params.vocabulary_topic, LATCHED_OUT, {})):
        pubs[key] = node.create_lifecycle_publisher(msg_type, topic, own(qos), **options)
    vision = vision_msgs_types()
    if params.publish_vision_msgs and vision is not None:
        pubs['vision'] = node.create_lifecycle_publisher(
            vision.Detection3DArray, params.vision_labels_topic, own(RELIABLE_OUT), **qos_overridable())


def publish_extras(pubs: dict[str, Any], params: P.NodeParams, outcome) -> None:
    """Markers and the vision_msgs copy of one frame's labels, each only while subscribed."""
    if params.publish_markers and pubs['markers'].get_subscription_count() > 0:
        pubs['markers'].publish(outcome.markers())
    if 'vision' in pubs and pubs['vision'].get_subscription_count() > 0:
        pubs['vision'].publish(detection3d_array_from_labelled(outcome.labels, vision_msgs_types()))
