"""One side of tests/foundation/test_two_process.py, run as its own process (`peer.py pub|sub`).

Protocol on stdin/stdout (one line each): the subscriber prints READY once its subscriptions exist
and MATCHED once it has matched both publishers; the publisher prints MATCHED once both of its
publishers have a matched subscription, then waits for GO on stdin before sending. Each side ends by
printing one JSON line of per-message digests, so the test compares what was sent and received.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from blendclip.msg import LabelledObjectArray
from blendclip_core.geometry import Boxes
from blendclip_core.types import ObjectStatus, Predictions
from blendclip_ros.conversions import array_to_cloud, cloud_to_xyz, labelled_objects_to_msg

# Best effort like sensor-data QoS (what the default Fast DDS SHM segment drops); the depth keeps a
# starved subscriber (busy 2-core CI machine) from discarding samples the transport did deliver.
QOS = QoSProfile(depth=50, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)
CLOUD_LAYOUT = np.dtype([('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('intensity', '<f4'),
                         ('ring', '<u2'), ('time', '<f8')])


def make_cloud(seq: int, points: int) -> PointCloud2:
    rng = np.random.default_rng(seq)
    arr = np.zeros(points, dtype=CLOUD_LAYOUT)
    for name in ('x', 'y', 'z', 'intensity'):
        arr[name] = rng.normal(scale=30, size=points)
    arr['ring'] = rng.integers(0, 32, points)
    arr['time'] = np.linspace(0, 0.1, points)
    return array_to_cloud(arr, header=Header(frame_id=f'lidar/{seq}'))


def make_objects(seq: int) -> LabelledObjectArray:
    rng = np.random.default_rng(1000 + seq)
    n = 1 + seq % 5
    boxes = Boxes.from_yaw(rng.normal(size=(n, 3)), rng.uniform(1, 3, (n, 3)), rng.uniform(-3, 3, n),
                           ids=[f'{seq}-{i}' for i in range(n)], frame_id='lidar')
    status = np.array([ObjectStatus.OK if i % 3 else ObjectStatus.NO_POINTS for i in range(n)])
    indices = np.where(status[:, None] == ObjectStatus.OK, [[seq % 3, (seq + 1) % 3]], -1)
    scores = np.where(indices >= 0, [[0.7, 0.2]], np.nan)
    preds = Predictions(indices, scores, rng.integers(0, 500, n), status, ('car', 'truck', 'bus'),
                        f'vocab-{seq}')
    return labelled_objects_to_msg(preds, boxes, header=Header(frame_id=f'lidar/{seq}'), model='test')


def cloud_digest(msg: PointCloud2) -> list:
    xyz, dropped = cloud_to_xyz(msg, extra_fields=('intensity', 'ring', 'time'))
    return [msg.width, msg.height, msg.point_step, msg.row_step, msg.is_bigendian,
            [(f.name, f.offset, f.datatype, f.count) for f in msg.fields],
            hashlib.sha256(bytes(msg.data)).hexdigest(), hashlib.sha256(xyz.tobytes()).hexdigest(), dropped]


def f32(value: float) -> float | str:
    """A float32 field as the receiver sees it (the sender's message still holds the float64)."""
    return 'nan' if math.isnan(value) else float(np.float32(value))


def objects_digest(msg: LabelledObjectArray) -> list:
    return [msg.vocabulary_version, msg.model, msg.header.frame_id, [
        [o.id, o.label, f32(o.score), o.status, o.num_points, o.detector_label,
         f32(o.detector_score), [(h.label, f32(h.score)) for h in o.top_k],
         [o.pose.position.x, o.pose.position.y, o.pose.position.z, o.pose.orientation.z,
          o.pose.orientation.w, o.size.x, o.size.y, o.size.z]]
        for o in msg.objects]]


def seq_of(header: Header) -> int:
    return int(header.frame_id.rsplit('/', 1)[1])


def spin_until(node, condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        rclpy.spin_once(node, timeout_sec=0.02)
    return True


def say(line: str) -> None:
    sys.stdout.write(line + '\n')
    sys.stdout.flush()


def publish(args: argparse.Namespace, node) -> int:
    clouds = node.create_publisher(PointCloud2, f'{args.prefix}/points', QOS)
    objects = node.create_publisher(LabelledObjectArray, f'{args.prefix}/objects', QOS)
    matched = lambda: clouds.get_subscription_count() > 0 and objects.get_subscription_count() > 0  # noqa: E731
    if not spin_until(node, matched, args.timeout):
        return 3
    say('MATCHED')
    if sys.stdin.readline().strip() != 'GO':
        return 4
    sent = {'clouds': {}, 'objects': {}}
    for seq in range(args.count):
        cloud, labels = make_cloud(seq, args.points), make_objects(seq)
        clouds.publish(cloud)
        objects.publish(labels)
        sent['clouds'][seq] = cloud_digest(cloud)
        sent['objects'][seq] = objects_digest(labels)
        time.sleep(1.0 / args.rate)
    say(json.dumps(sent))
    sys.stdin.readline()  # stay up (samples in flight) until the test closes stdin
    return 0


def subscribe(args: argparse.Namespace, node) -> int:
    got = {'clouds': {}, 'objects': {}}
    cloud_sub = node.create_subscription(
        PointCloud2, f'{args.prefix}/points',
        lambda m: got['clouds'].__setitem__(seq_of(m.header), cloud_digest(m)), QOS)
    objects_sub = node.create_subscription(
        LabelledObjectArray, f'{args.prefix}/objects',
        lambda m: got['objects'].__setitem__(seq_of(m.header), objects_digest(m)), QOS)
    say('READY')
    matched = lambda: cloud_sub.get_publisher_count() > 0 and objects_sub.get_publisher_count() > 0  # noqa: E731
    if not spin_until(node, matched, args.timeout):
        return 3
    say('MATCHED')
    spin_until(node, lambda: all(len(v) == args.count for v in got.values()), args.timeout)
    say(json.dumps(got))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('role', choices=['pub', 'sub'])
    parser.add_argument('--prefix', required=True)
    parser.add_argument('--count', type=int, default=20)
    parser.add_argument('--rate', type=float, default=10.0)
    parser.add_argument('--points', type=int, default=35_000)
    parser.add_argument('--timeout', type=float, default=30.0)
    args = parser.parse_args(argv)
    rclpy.init()
    node = rclpy.create_node(f'foundation_{args.role}')
    try:
        return (publish if args.role == 'pub' else subscribe)(args, node)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
