"""Real-data scoring: a track seen twice counts once, floors, and the majority baseline."""

import pytest

from blendclip_core.evaluation.real import RealObject, by_points, majority_baseline, once_per_track, score


def obj(track, target, points, top, source='av2'):
    return RealObject(source, 'f', track, target, points, (top, (top + 1) % 10, (top + 2) % 10))


def test_a_track_in_two_sweeps_keeps_the_sweep_with_most_points():
    kept = once_per_track([obj('t1', 0, 4, 7), obj('t1', 0, 9, 0), obj('t2', 7, 3, 7), obj('t1', 0, 9, 5)])
    assert sorted((o.track, o.num_points, o.ranked[0]) for o in kept) == [('t1', 9, 0), ('t2', 3, 7)]


def test_score_at_a_floor_beside_the_majority_baseline():
    objects = [obj('a', 0, 10, 0), obj('b', 0, 10, 0), obj('c', 0, 10, 7), obj('d', 7, 10, 6),
               obj('e', 7, 2, 7)]
    s = score(objects, 5)
    assert s['n'] == 4 and s['top1'] == 0.5 and s['top3'] == 0.75
    assert s['classmean'] == pytest.approx((2 / 3 + 0) / 2)
    assert s['top1_majority'] == 0.75 and s['classmean_majority'] == 0.5 and s['top3_majority'] == 1.0
    assert score(objects, 20) == {'n': 0}


def test_majority_baseline_and_point_buckets():
    assert majority_baseline([0, 5, 3, 2]) == {'top1': 0.5, 'top3': 1.0, 'classmean': 1 / 3}
    buckets = by_points([obj('a', 0, 1, 0), obj('b', 7, 2, 0), obj('c', 0, 4, 0), obj('d', 0, 25, 1)])
    assert (buckets['points_1_2_n'], buckets['points_1_2_top1']) == (2, 0.5)
    assert buckets['points_5_19_n'] == 0 and buckets['points_5_19_top1'] is None
    assert (buckets['points_20_up_n'], buckets['points_20_up_top1']) == (1, 0.0)
