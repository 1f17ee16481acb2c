"""blendclip-replay: publish a bag's topics into a live ROS 2 graph at the recorded rate.

For machines without `ros2 bag play` (e.g. ROS from PyPI wheels). Messages go out as the bag's raw
CDR bytes (rclpy `publish(bytes)`), so nothing is decoded on the way; rclpy only needs each type's
Python class for its typesupport. Topics whose type is not installed are skipped and reported.
QoS: sensor-data (best effort) for clouds and images, transient-local for /tf_static (and any topic
recorded as latched), reliable otherwise; --reliable makes everything reliable.

  blendclip-replay out_bag --rate 0.5 --clock --wait-for-subscribers 1
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import QosDurability

from blendclip_ros.conversions.stamps import split_ns

log = logging.getLogger(__name__)

SENSOR_TYPES = frozenset({'sensor_msgs/msg/PointCloud2', 'sensor_msgs/msg/Image',
                          'sensor_msgs/msg/CompressedImage', 'sensor_msgs/msg/LaserScan'})
LATCHED_TOPICS = frozenset({'/tf_static'})
NOT_WAITED_FOR = frozenset({'/tf', '/tf_static', '/clock'})
# What a labelling node consumes: by default --wait-for-subscribers waits on topics of these types.
NODE_INPUT_TYPES = frozenset({'sensor_msgs/msg/PointCloud2', 'blendclip/msg/DetectedBoxArray',
                              'vision_msgs/msg/Detection3DArray',
                              'autoware_perception_msgs/msg/DetectedObjects'})
MAX_LATCHED_DEPTH = 1000
CLOCK_PERIOD_S = 0.025  # /clock at 40 Hz between messages, as `ros2 bag play --clock` defaults to


class ReplayError(RuntimeError):
    """The bag cannot be replayed as asked (no such topic, nothing publishable, no subscribers)."""


@dataclass(frozen=True)
class ReplayConfig:
    rate: float = 1.0  # playback speed factor (2.0 = twice as fast)
    loop: bool = False  # start over at the end until interrupted
    start_offset: float = 0.0  # seconds of the bag to skip
    clock: bool = False  # publish /clock with the bag time (for use_sim_time:=true)
    topics: tuple[str, ...] = ()  # only these ('' = all)
    wait_for_subscribers: int = 0  # before the first message, wait until every waited topic has this many
    wait_topics: tuple[str, ...] = ()  # default: clouds and box arrays (else all but /tf*, /clock)
    wait_timeout: float = 60.0  # seconds; then fail (ReplayError)
    reliable: bool = False  # reliable QoS for every topic, also clouds
    ack_timeout: float = 5.0  # at the end, wait this long for reliable subscribers to acknowledge
    # After the subscribers show up: discovery is not symmetric, the subscriber may not have matched
    # this publisher yet, and best-effort messages sent before it has are lost.
    settle: float = 0.5


# Every CDR message starts with a 4-byte encapsulation header. Fast DDS stalls a reliable stream at a
# zero-length payload (its later samples wait until the writer's history drops it; Jazzy and Kilted
# alike), so records shorter than that are counted, not sent; every other record goes out byte for byte.
CDR_HEADER_BYTES = 4


@dataclass
class ReplayStats:
    published: dict[str, int] = field(default_factory=dict)
    skipped_topics: dict[str, str] = field(default_factory=dict)  # topic -> why
    not_messages: dict[str, int] = field(default_factory=dict)  # topic -> records under a CDR header
    loops: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [f'published {sum(self.published.values())} messages in {self.seconds:.1f} s '
               f'({self.loops} pass{"es" if self.loops != 1 else ""})']
        out += [f'  {t}: {n}' for t, n in sorted(self.published.items())]
        out += [f'  skipped {t}: {why}' for t, why in sorted(self.skipped_topics.items())]
        out += [f'  not sent {t}: {n} record(s) shorter than a CDR header'
                for t, n in sorted(self.not_messages.items())]
        return out


def message_class(msgtype: str):
    """'pkg/msg/Type' -> the installed rclpy message class (ImportError/AttributeError if absent)."""
    pkg, kind, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{pkg}.{kind}'), name)


def qos_for(topic: str, msgtype: str, connections, reliable: bool, depth: int):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    latched = topic in LATCHED_TOPICS or any(q.durability == QosDurability.TRANSIENT_LOCAL
                                             for c in connections for q in c.ext.offered_qos_profiles)
    if latched:
        return QoSProfile(depth=min(max(depth, 1), MAX_LATCHED_DEPTH), reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL)
    if msgtype in SENSOR_TYPES and not reliable:
        return qos_profile_sensor_data
    return QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class Replayer:
    """Owns one rclpy node with a publisher per replayed topic."""

    def __init__(self, node, reader: AnyReader, config: ReplayConfig) -> None:
        self.node, self.reader, self.config = node, reader, config
        self.stats = ReplayStats()
        self.connections = []
        self.publishers: dict[str, object] = {}
        self.msgtypes: dict[str, str] = {}
        by_topic: dict[str, list] = {}
        for conn in reader.connections:
            if not config.topics or conn.topic in config.topics:
                by_topic.setdefault(conn.topic, []).append(conn)
        missing = set(config.topics) - set(by_topic)
        if missing:
            raise ReplayError(f'topics not in the bag: {sorted(missing)}')
        for topic, conns in sorted(by_topic.items()):
            msgtype = conns[0].msgtype
            if any(c.msgtype != msgtype for c in conns):
                raise ReplayError(f'{topic} holds several types {sorted({c.msgtype for c in conns})}; '
                                  'pick the other topics with --topics')
            try:
                cls = message_class(msgtype)
            except (ImportError, AttributeError, ValueError) as exc:
                self.stats.skipped_topics[topic] = f'{msgtype} not installed ({exc})'
                log.warning('skipping %s: message type %s is not installed', topic, msgtype)
                continue
            depth = sum(c.msgcount for c in conns)
            self.msgtypes[topic] = msgtype
            self.publishers[topic] = node.create_publisher(
                cls, topic, qos_for(topic, msgtype, conns, config.reliable, depth))
            self.stats.published[topic] = 0
            self.connections += conns
        if not self.publishers:
            raise ReplayError('no topic of the bag can be published (types not installed?)')
        self.clock_pub = None
        if config.clock:
            from rosgraph_msgs.msg import Clock
            self.clock_pub, self._clock_cls = node.create_publisher(Clock, '/clock', 10), Clock

    def wait_for_subscribers(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        n = self.config.wait_for_subscribers
        if n <= 0:
            return
        topics = self.config.wait_topics or self.default_wait_topics()
        unknown = [t for t in topics if t not in self.publishers]
        if unknown:
            raise ReplayError(f'cannot wait for subscribers of topics that are not replayed: {unknown}')
        deadline = time.monotonic() + self.config.wait_timeout
        while not should_stop():
            counts = {t: self.publishers[t].get_subscription_count() for t in topics}
            if all(c >= n for c in counts.values()):
                log.info('subscribers ready: %s', counts)
                time.sleep(self.config.settle)
                return
            if time.monotonic() > deadline:
                raise ReplayError(f'timed out after {self.config.wait_timeout} s waiting for {n} '
                                  f'subscriber(s): {counts}')
            time.sleep(0.05)

    def default_wait_topics(self) -> tuple[str, ...]:
        inputs = tuple(t for t, m in self.msgtypes.items() if m in NODE_INPUT_TYPES)
        return inputs or tuple(t for t in self.publishers if t not in NOT_WAITED_FOR)

    def _messages(self) -> Iterator[tuple]:
        start = self.reader.start_time + int(self.config.start_offset * 1e9)
        return self.reader.messages(connections=self.connections, start=start)

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> ReplayStats:
        if self.config.rate <= 0:
            raise ReplayError(f'rate must be > 0, got {self.config.rate}')
        from rclpy.impl.implementation_singleton import rclpy_implementation

        begin = time.monotonic()
        while True:
            try:
                self._one_pass(should_stop)
            except (rclpy_implementation.RCLError, rclpy_implementation.InvalidHandle):
                if self.node.context.ok():
                    raise
                # Ctrl-C between the stop check and a publish: rclpy's signal handler shuts the context
                # down from its own thread, and the publish found it invalid (Jazzy: RCLError) or the
                # publisher already destroyed with it (Kilted: InvalidHandle). An interrupt, not a failure.
                break
            self.stats.loops += 1
            if not self.config.loop or should_stop():
                break
        if not should_stop() and self.node.context.ok():  # acknowledgements need a live context
            self._flush()
        self.stats.seconds = time.monotonic() - begin
        return self.stats

    def _one_pass(self, should_stop) -> None:
        wall0 = bag0 = None
        for conn, t, raw in self._messages():
            if should_stop():
                return
            if wall0 is None:
                wall0, bag0 = time.monotonic(), t
            self._wait_until(t, wall0, bag0, should_stop)
            self._publish_clock(t)
            if len(raw) < CDR_HEADER_BYTES:  # no message; an empty payload stalls a reliable DDS stream
                self.stats.not_messages[conn.topic] = self.stats.not_messages.get(conn.topic, 0) + 1
                continue
            self.publishers[conn.topic].publish(bytes(raw))
            self.stats.published[conn.topic] += 1

    def _wait_until(self, t_ns: int, wall0: float, bag0: int, should_stop) -> None:
        """Sleep until bag time `t_ns` is due; with --clock keep /clock ticking meanwhile, like
        `ros2 bag play --clock` does, so sim-time timers run between sparse messages."""
        deadline = wall0 + (t_ns - bag0) * 1e-9 / self.config.rate
        while not should_stop():
            now = time.monotonic()
            if now >= deadline:
                return
            if self.clock_pub is None:
                time.sleep(deadline - now)
                return
            time.sleep(min(deadline - now, CLOCK_PERIOD_S))
            elapsed_ns = int((time.monotonic() - wall0) * self.config.rate * 1e9)
            self._publish_clock(min(bag0 + elapsed_ns, t_ns))  # never past the next message

    def _publish_clock(self, t_ns: int) -> None:
        if self.clock_pub is not None:
            msg = self._clock_cls()
            msg.clock.sec, msg.clock.nanosec = split_ns(t_ns)
            self.clock_pub.publish(msg)

    def _flush(self) -> None:
        """Give reliable subscribers time to receive the last messages before the node goes away."""
        from rclpy.duration import Duration
        from rclpy.qos import ReliabilityPolicy
        for pub in self.publishers.values():
            if pub.qos_profile.reliability == ReliabilityPolicy.RELIABLE:
                pub.wait_for_all_acked(Duration(seconds=self.config.ack_timeout))


def replay(bag: str | Path, config: ReplayConfig | None = None, args=None,
           node_name: str = 'blendclip_replay') -> ReplayStats:
    """Initialise rclpy (with `args`, e.g. --ros-args), replay, shut down."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    config = config or ReplayConfig()
    rclpy.init(args=args)
    node = rclpy.create_node(node_name)
    replayer = None
    try:
        with AnyReader([Path(bag)]) as reader:
            replayer = Replayer(node, reader, config)
            stop = lambda: not rclpy.ok()  # noqa: E731
            replayer.wait_for_subscribers(stop)
            return replayer.run(stop)
    except (KeyboardInterrupt, ExternalShutdownException):
        return replayer.stats if replayer is not None else ReplayStats()
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='blendclip-replay', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('bag', type=Path)
    p.add_argument('--rate', type=float, default=1.0, help='speed factor (default 1.0 = recorded rate)')
    p.add_argument('--loop', action='store_true')
    p.add_argument('--start-offset', type=float, default=0.0, help='seconds of the bag to skip')
    p.add_argument('--clock', action='store_true', help='publish /clock (nodes with use_sim_time:=true)')
    p.add_argument('--topics', nargs='*', default=(), help='replay only these topics')
    p.add_argument('--wait-for-subscribers', type=int, default=0, metavar='N',
                   help='wait until the waited topics have N subscribers each before starting')
    p.add_argument('--wait-topics', nargs='*', default=(),
                   help='topics to wait on (default: the clouds and box arrays, what the node reads)')
    p.add_argument('--wait-timeout', type=float, default=60.0)
    p.add_argument('--reliable', action='store_true', help='reliable QoS for every topic, clouds too')
    return p


def main(argv=None) -> int:
    from rclpy.utilities import remove_ros_args
    argv = sys.argv if argv is None else ['blendclip-replay', *argv]
    args = build_parser().parse_args(remove_ros_args(argv)[1:])
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    config = ReplayConfig(args.rate, args.loop, args.start_offset, args.clock, tuple(args.topics),
                          args.wait_for_subscribers, tuple(args.wait_topics), args.wait_timeout,
                          args.reliable)
    try:
        stats = replay(args.bag, config, args=argv)
    except (ReplayError, AnyReaderError, FileNotFoundError, ValueError) as exc:
        print(f'blendclip-replay: error: {exc}', file=sys.stderr)
        return 2
    for line in stats.lines():
        print(line)
    return 0


if __name__ == '__main__':
    sys.exit(main())
