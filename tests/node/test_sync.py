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


S = 1_000_000_000
MAX_STAMP = (2**31 - 1) * S + 999_999_999  # the largest builtin_interfaces/Time


@pytest.mark.parametrize('future', [3600 * S, MAX_STAMP])
def test_a_future_stamp_is_dropped_and_does_not_make_later_frames_stale(future):
    now = 1_000 * S
    s = StampSynchronizer(max_future_ns=5 * S, max_age_ns=2 * S)
    assert s.add_cloud(now + future if future < MAX_STAMP else future, 'c-future', now_ns=now) is None
    assert s.add_boxes(now + future if future < MAX_STAMP else future, 'b-future', now_ns=now) is None
    assert s.counters.from_future == 2 and s.pending() == {'cloud': 0, 'boxes': 0}
    for i in range(1, 4):  # every later valid frame pairs
        t = now + i * 100 * MS
        s.add_cloud(t, f'c{i}', now_ns=t)
        assert s.add_boxes(t, f'b{i}', now_ns=t).cloud == f'c{i}'
    assert s.counters.stale == 0 and s.counters.paired == 3
    # a little ahead (clocks of two hosts) is fine; the bound is what counts
    assert s.add_cloud(now + 4 * S, 'c-ahead', now_ns=now) is None and s.pending()['cloud'] == 1


def test_future_check_waits_for_a_clock():
    """Simulated time before the first /clock reads 0: every stamp would look like the future."""
    s = StampSynchronizer(max_future_ns=5 * S)
    s.add_cloud(1_000 * S, 'c', now_ns=0)
    assert s.add_boxes(1_000 * S, 'b', now_ns=0) is not None and s.counters.from_future == 0


def test_a_jump_back_beyond_the_bound_restarts_pairing():
    s = StampSynchronizer(jump_back_ns=2 * S)
    s.add_cloud(100 * S, 'c')
    assert s.add_boxes(100 * S, 'b') is not None
    s.add_cloud(101 * S, 'waiting')  # queued when the bag loops: belongs to the old timeline
    assert s.add_cloud(99 * S, 'late') is None and s.counters.stale == 1  # within the bound: stale
    assert s.add_cloud(10 * S, 'c-loop') is None  # 90 s back: the bag looped, or one bad stamp
    assert s.counters.jumped_back == 1 and s.counters.resets == 0  # held apart until it pairs
    assert s.add_boxes(10 * S, 'b-loop').cloud == 'c-loop'  # both streams jumped: the bag looped
    assert s.counters.resets == 1 and s.pending() == {'cloud': 0, 'boxes': 0}  # 'waiting' was old
    s.add_cloud(11 * S, 'c11')
    assert s.add_boxes(11 * S, 'b11').cloud == 'c11'  # the new timeline pairs as usual


def test_one_message_from_the_past_does_not_flush_a_waiting_frame():
    """A garbage or replayed stamp far in the past (one message, not a restart of both streams) must not
    cost the frame whose cloud is already waiting for its boxes."""
    s = StampSynchronizer(jump_back_ns=2 * S)
    s.add_cloud(100 * S, 'c')
    assert s.add_boxes(100 * S, 'b') is not None
    s.add_cloud(101 * S, 'waiting')
    for t in (5, 50, 0):
        assert s.add_boxes(t * S, 'bad') is None
    assert s.add_boxes(101 * S, 'b101').cloud == 'waiting'
    assert s.counters.resets == 0 and s.counters.jumped_back == 3


def test_a_run_of_stale_messages_restarts_pairing_even_without_the_bounds():
    """Future check and jump bound off (or a restart shorter than the bound): a pair far ahead would
    make every later message stale forever; a run of stale messages resets instead."""
    s = StampSynchronizer(stale_reset_after=6)
    s.add_cloud(10**6 * S, 'c-bad')
    assert s.add_boxes(10**6 * S, 'b-bad') is not None
    for i in range(3):  # 3 frames, 6 stale messages: the 6th resets
        s.add_cloud((10 + i) * S, f'c{i}')
        s.add_boxes((10 + i) * S, f'b{i}')
    assert s.counters.stale == 6 and s.counters.resets == 1
    s.add_cloud(20 * S, 'c20')
    assert s.add_boxes(20 * S, 'b20').cloud == 'c20'
    # an occasional stale message does not reset: the run restarts at every pair
    for i in range(10):
        t = (30 + i) * S
        s.add_cloud(t, 'c')
        s.add_boxes(t, 'b')
        s.add_boxes(t - MS, 'late')
    assert s.counters.resets == 1


def test_new_bounds_reject_negative_values():
    for kwargs in ({'max_future_ns': -1}, {'jump_back_ns': -1}, {'stale_reset_after': -1}):
        with pytest.raises(ValueError):
            StampSynchronizer(**kwargs)


def test_a_pair_stamped_ahead_of_the_clock_does_not_make_later_frames_stale():
    """Within the future bound (clock skew, a nanosec field out of range) a frame is labelled, but the
    correctly stamped frames after it must not be stale for the seconds it was ahead."""
    s = StampSynchronizer(max_future_ns=5 * S, jump_back_ns=10 * S)
    now = 1_000 * S
    s.add_cloud(now + 4 * S, 'c-ahead', now_ns=now)
    assert s.add_boxes(now + 4 * S, 'b-ahead', now_ns=now) is not None
    s.add_cloud(now + 100 * MS, 'c', now_ns=now + 100 * MS)
    assert s.add_boxes(now + 100 * MS, 'b', now_ns=now + 100 * MS).cloud == 'c'
    assert s.counters.stale == 0
    # a frame stamped before the ahead pair was formed but delivered after it is not stale either
    s.add_cloud(now + 4 * S, 'c-ahead2', now_ns=now + 300 * MS)
    assert s.add_boxes(now + 4 * S, 'b-ahead2', now_ns=now + 300 * MS) is not None
    s.add_cloud(now + 200 * MS, 'c-late', now_ns=now + 310 * MS)
    assert s.add_boxes(now + 200 * MS, 'b-late', now_ns=now + 310 * MS).cloud == 'c-late'
    assert s.counters.stale == 0
    # without a clock (simulated time before /clock) the pair's own stamp orders, as before
    s = StampSynchronizer(max_future_ns=5 * S)
    s.add_cloud(now, 'c', now_ns=0)
    assert s.add_boxes(now, 'b', now_ns=0) is not None
    assert s.add_cloud(now - MS, 'late', now_ns=0) is None and s.counters.stale == 1
