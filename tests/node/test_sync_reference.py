"""StampSynchronizer pairs like the reference, message_filters (../shared/upstream/message_filters/src):
`TimeSynchronizer` for exact stamps (slop 0) and `ApproximateTimeSynchronizer` with a slop, fed the
same (stream, stamp) events in the same order, on recorded and random stamp sequences.

Where ours differs by design, the tests say why and assert exactly how:
1. slop is inclusive here (a gap equal to the slop pairs; slop 0 = identical stamps); message_filters
   pairs only gaps strictly below the slop (its slop 0 never pairs);
2. pairing is in stamp order: a message not newer than the last pair is stale and dropped, and a pair
   evicts everything older on both streams (the node labels frames in order; an older frame paired
   after a newer one would publish labels going back in time). message_filters keeps older messages
   and pairs them later;
3. equal gaps on both sides: ours takes the older stamp whatever the arrival order; message_filters
   takes the one that arrived first;
4. a full queue: ours pairs the new message first and queues it only if unpaired; message_filters
   queues it first, and a new message older than a full queue is evicted before it can pair.
With rules 1-3 applied to message_filters from outside (`InOrderReference`), the two agree on
arbitrary random sequences, out-of-order arrivals, duplicates and ties included.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.duration import Duration
from upstream import import_from_source

from blendclip_ros.conversions.stamps import stamp_to_ns
from blendclip_ros.node.sync import StampSynchronizer

MS = 1_000_000
SAMPLE = Path(__file__).resolve().parents[2] / 'data' / 'nuscenes_sample'


@pytest.fixture(scope='module')
def mf():
    return import_from_source('message_filters', 'message_filters', 'src')


def _msg(stamp_ns: int) -> SimpleNamespace:
    stamp = Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp))


def _ns(msg) -> int:
    return stamp_to_ns(msg.header.stamp)


class Reference:
    """message_filters synchronizer over two inputs (cloud, boxes), recording (cloud, boxes) stamps."""

    def __init__(self, mf, slop_ns: int, queue_size: int) -> None:
        self.inputs = (mf.SimpleFilter(), mf.SimpleFilter())
        if slop_ns == 0:
            self.sync = mf.TimeSynchronizer(list(self.inputs), queue_size)
        else:
            self.sync = mf.ApproximateTimeSynchronizer(list(self.inputs), queue_size, slop_ns / 1e9)
            self.sync.slop = Duration(nanoseconds=slop_ns)  # it takes float seconds: the exact value
        self.pairs: list[tuple[int, int]] = []
        self.sync.registerCallback(self._paired)

    def _paired(self, cloud, boxes) -> None:
        self.pairs.append((_ns(cloud), _ns(boxes)))

    def add(self, stream: str, stamp_ns: int) -> None:
        self.inputs[stream == 'boxes'].signalMessage(_msg(stamp_ns))


class InOrderReference(Reference):
    """ApproximateTimeSynchronizer with our rules 1-3 applied around it (see the module docstring)."""

    def __init__(self, mf, slop_ns: int, queue_size: int) -> None:
        super().__init__(mf, 1, queue_size)
        self.sync.slop = Duration(nanoseconds=slop_ns + 1)  # rule 1: gap < slop + 1 ns <=> gap <= slop
        self.last: int | None = None

    def _paired(self, cloud, boxes) -> None:
        super()._paired(cloud, boxes)
        self.last = max(_ns(cloud), _ns(boxes))

    def add(self, stream: str, stamp_ns: int) -> None:
        if self.last is not None and stamp_ns <= self.last:
            return  # rule 2: stale
        super().add(stream, stamp_ns)
        for queue in self.sync.queues:
            # rules 2 and 3: nothing at or before the last pair; queued in stamp order
            kept = sorted((t, m) for t, m in queue.items() if self.last is None or t > self.last)
            queue.clear()
            queue.update(kept)


def ours(events, slop_ns: int, queue_size: int) -> list[tuple[int, int]]:
    sync = StampSynchronizer(slop_ns=slop_ns, queue_size=queue_size, stale_reset_after=0)
    pairs = []
    for stream, stamp in events:
        pair = (sync.add_cloud if stream == 'cloud' else sync.add_boxes)(stamp, stamp)
        if pair is not None:
            pairs.append((pair.cloud_stamp_ns, pair.boxes_stamp_ns))
    return pairs


def reference(reference_type, mf, events, slop_ns: int, queue_size: int) -> list[tuple[int, int]]:
    ref = reference_type(mf, slop_ns, queue_size)
    for stream, stamp in events:
        ref.add(stream, stamp)
    return ref.pairs


def lidar_and_detector(rng, frames: int, period_ms: float, latency_ms: tuple[float, float],
                       jitter_ms: float, drop: float, stamp_offset_ms: float) -> list[tuple[str, int]]:
    """A lidar stream and a detector that answers each cloud later (its stamp = the cloud's + offset,
    jittered); frames dropped on either side; events in arrival order, each stream monotonic."""
    events, answered = [], 0
    t0 = 1_700_000_000 * 10**9
    for i in range(frames):
        stamp = t0 + int(i * period_ms * MS)
        if rng.random() > drop:
            events.append((stamp, 'cloud', stamp))
        if rng.random() > drop:
            boxes_stamp = stamp + int((stamp_offset_ms + rng.uniform(-jitter_ms, jitter_ms)) * MS)
            answered = max(answered + 1, stamp + int(rng.uniform(*latency_ms) * MS))  # in order
            events.append((answered, 'boxes', boxes_stamp))
    return [(stream, s) for _, stream, s in sorted(events)]


def recorded_nuscenes_sensors() -> list[tuple[str, int]]:
    """The real sample's LIDAR_TOP sweep and its six camera exposures (nuScenes stamps, microseconds),
    cameras as the second stream, in stamp order."""
    ann = json.loads((SAMPLE / 'annotations_lidar.json').read_text())
    lidar_us = int(ann['lidar_file'].split('__')[-1].split('.')[0])
    cams_us = sorted(int(p.name.split('__')[-1].split('.')[0]) for p in (SAMPLE / 'cameras').glob('*.jpg'))
    assert len(cams_us) == 6
    events = [('cloud', lidar_us * 1000)] + [('boxes', us * 1000) for us in cams_us]
    return sorted(events, key=lambda e: e[1])


def test_recorded_nuscenes_stamps_pair_alike(mf):
    events = recorded_nuscenes_sensors()
    for slop_ms in (1, 5, 20, 50):
        expected = reference(Reference, mf, events, slop_ms * MS, 10)
        assert ours(events, slop_ms * MS, 10) == expected
    assert ours(events, MS, 10) == [(1532402927647951000, 1532402927647423000)]  # CAM_BACK_LEFT, 0.5 ms
    assert ours(events, 0, 10) == reference(Reference, mf, events, 0, 10) == []


@pytest.mark.parametrize('seed', range(6))
def test_exact_pairs_like_time_synchronizer(mf, seed):
    rng = np.random.default_rng(seed)
    events = lidar_and_detector(rng, 300, 100, (5, 250), 0, 0.1, 0)  # detector copies the cloud's stamp
    expected = reference(Reference, mf, events, 0, 10)
    assert len(expected) > 200 and ours(events, 0, 10) == expected


@pytest.mark.parametrize('seed', range(6))
def test_approximate_pairs_like_message_filters(mf, seed):
    """Monotonic streams, slop under half the period: at most one partner within the slop, where
    message_filters and ours must make the same pairs."""
    rng = np.random.default_rng(100 + seed)
    period = (50, 100)[seed % 2]
    events = lidar_and_detector(rng, 300, period, (5, 3 * period), 8, 0.15, 3)
    slop_ns = 15 * MS + 1234  # no gap on a whole-ms grid equals it (the inclusive/strict boundary)
    expected = reference(Reference, mf, events, slop_ns, 10)
    assert len(expected) > 150 and ours(events, slop_ns, 10) == expected


def random_events(rng, n: int) -> list[tuple[str, int]]:
    """Stamps on a coarse grid (ties and duplicates happen), streams interleaved at random, with
    out-of-order arrivals and occasional jumps back."""
    events, t = [], 1000
    for _ in range(n):
        t += int(rng.integers(-3, 8))
        stamp = max(0, t + int(rng.integers(-6, 7)))
        events.append(('cloud' if rng.random() < 0.5 else 'boxes', stamp * MS))
    return events


@pytest.mark.parametrize('seed', range(40))
def test_approximate_equals_message_filters_with_in_order_rules(mf, seed):
    rng = np.random.default_rng(seed)
    events = random_events(rng, 400)
    slop_ns = int(rng.choice([0, 1, 2, 3, 5, 8])) * MS
    expected = reference(InOrderReference, mf, events, slop_ns, 1000)
    assert len(expected) > 20 and ours(events, slop_ns, 1000) == expected


def test_difference_1_slop_is_inclusive_here(mf):
    events = [('cloud', 100 * MS), ('boxes', 110 * MS)]
    assert ours(events, 10 * MS, 10) == [(100 * MS, 110 * MS)]
    assert reference(Reference, mf, events, 10 * MS, 10) == []
    assert reference(Reference, mf, events, 10 * MS + 1, 10) == [(100 * MS, 110 * MS)]


def test_difference_2_pairs_stay_in_stamp_order(mf):
    # After (135, 130), the older box 100 pairs with cloud 140 in message_filters (40 ms < 50 ms slop);
    # ours evicted it with the pair, and drops the late cloud 120 as stale.
    events = [('boxes', 100 * MS), ('boxes', 130 * MS), ('cloud', 135 * MS), ('cloud', 140 * MS),
              ('cloud', 120 * MS), ('boxes', 121 * MS)]
    assert reference(Reference, mf, events, 50 * MS, 10) == [(135 * MS, 130 * MS), (140 * MS, 100 * MS),
                                                            (120 * MS, 121 * MS)]
    sync = StampSynchronizer(slop_ns=50 * MS, queue_size=10, stale_reset_after=0)
    assert ours(events, 50 * MS, 10) == [(135 * MS, 130 * MS)]
    for stream, stamp in events:
        (sync.add_cloud if stream == 'cloud' else sync.add_boxes)(stamp, stamp)
    assert sync.counters.stale == 2 and sync.counters.evicted_unpaired == 1


def test_difference_3_equal_gaps_take_the_older_stamp(mf):
    events = [('boxes', 110 * MS), ('boxes', 90 * MS), ('cloud', 100 * MS)]  # 110 arrives first
    assert ours(events, 20 * MS, 10) == [(100 * MS, 90 * MS)]
    assert reference(Reference, mf, events, 20 * MS, 10) == [(100 * MS, 110 * MS)]


def test_difference_4_full_queue(mf):
    # Boxes 60, 70, 80 fill the queue (size 3); cloud 5, then its box 5 (late, but nothing paired yet):
    # ours pairs box 5 on arrival; message_filters queues it first and evicts it as the oldest.
    events = [('boxes', 60 * MS), ('boxes', 70 * MS), ('boxes', 80 * MS), ('cloud', 5 * MS),
              ('boxes', 5 * MS)]
    assert ours(events, 0, 3) == [(5 * MS, 5 * MS)]
    assert reference(Reference, mf, events, 0, 3) == []
    assert reference(Reference, mf, events, 0, 4) == [(5 * MS, 5 * MS)]  # room for it: the same pair
