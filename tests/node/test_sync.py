"""StampSynchronizer: exact and approximate pairing, bounded queues, stale and old inputs counted."""

import pytest

from blendclip_ros.node.sync import StampSynchronizer

MS = 1_000_000


def test_exact_pairs_in_either_arrival_order():
    s = StampSynchronizer(slop_ns=0)
    assert s.add_cloud(100 * MS, 'c1') is None
    pair = s.add_boxes(100 * MS, 'b1')
    assert (pair.cloud, pair.boxes, pair.cloud_stamp_ns) == ('c1', 'b1', 100 * MS)
    assert s.add_boxes(150 * MS, 'b2') is None
    pair = s.add_cloud(150 * MS, 'c2')
    assert (pair.cloud, pair.boxes) == ('c2', 'b2')
    assert s.counters.paired == 2 and s.pending() == {'cloud': 0, 'boxes': 0}


def test_exact_does_not_pair_different_stamps():
    s = StampSynchronizer(slop_ns=0)
    s.add_cloud(100 * MS, 'c')
    assert s.add_boxes(101 * MS, 'b') is None
    assert s.counters.paired == 0


def test_approximate_picks_closest_within_slop():
    s = StampSynchronizer(slop_ns=20 * MS)
    s.add_boxes(90 * MS, 'b90')
    s.add_boxes(105 * MS, 'b105')
    pair = s.add_cloud(100 * MS, 'c100')
    assert pair.boxes == 'b105'
    # b90 is older than the pair and can never match in order: evicted and counted
    assert s.counters.evicted_unpaired == 1 and s.pending() == {'cloud': 0, 'boxes': 0}
    assert s.add_cloud(200 * MS, 'c200') is None
    assert s.add_boxes(230 * MS, 'b230') is None  # 30 ms > slop


def test_stale_and_too_old_are_dropped_and_counted():
    s = StampSynchronizer(slop_ns=0, max_age_ns=500 * MS)
    s.add_cloud(1000 * MS, 'c')
    assert s.add_boxes(1000 * MS, 'b') is not None
    assert s.add_cloud(900 * MS, 'late') is None
    assert s.add_boxes(1000 * MS, 'again') is None
    assert s.counters.stale == 2
    assert s.add_cloud(2000 * MS, 'old', now_ns=3000 * MS) is None
    assert s.counters.too_old == 1
    assert s.add_cloud(2000 * MS, 'fresh', now_ns=2100 * MS) is None
    assert s.pending()['cloud'] == 1


def test_queues_are_bounded_oldest_evicted():
    s = StampSynchronizer(slop_ns=0, queue_size=3)
    for t in (5, 1, 4, 2, 3):  # out of order arrival
        s.add_cloud(t * MS, f'c{t}')
    assert s.pending()['cloud'] == 3 and s.counters.evicted_unpaired == 2
    assert s.add_boxes(1 * MS, 'b1') is None  # c1 was the oldest, evicted
    assert s.add_boxes(3 * MS, 'b3').cloud == 'c3'


def test_duplicate_stamp_keeps_newest_and_reset_forgets():
    s = StampSynchronizer()
    s.add_cloud(MS, 'first')
    s.add_cloud(MS, 'second')
    assert s.counters.duplicate_stamp == 1
    assert s.add_boxes(MS, 'b').cloud == 'second'
    s.reset()
    assert s.add_cloud(MS // 2, 'after reset') is None and s.counters.stale == 0


def test_rejects_bad_settings():
    with pytest.raises(ValueError):
        StampSynchronizer(slop_ns=-1)
    with pytest.raises(ValueError):
        StampSynchronizer(queue_size=0)
