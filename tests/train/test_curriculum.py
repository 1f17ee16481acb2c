"""The curriculum composer: counts, determinism, rank streams, schedules, class exclusion."""

import numpy as np
import pytest

from blendclip_core.train import curriculum as cur


def test_ramp_schedule_shape():
    s = cur.RampSchedule(warmup=2, ramp=4, max_fraction=0.3)
    assert [s(t) for t in (0, 1.99, 2)] == [0.0, 0.0, 0.0]
    assert s(4) == pytest.approx(0.15)
    assert s(6) == pytest.approx(0.3) and s(100) == pytest.approx(0.3)
    assert cur.RampSchedule(warmup=1, ramp=0, max_fraction=0.2)(1) == 0.2  # no ramp: jump


def test_static_and_points_schedules():
    assert cur.StaticSchedule(0.015625)(123) == 0.015625
    p = cur.PiecewiseSchedule(((0, 0.0), (10, 0.5), (20, 0.1)))
    assert p(-1) == 0.0 and p(5) == pytest.approx(0.25) and p(15) == pytest.approx(0.3) and p(99) == 0.1
    with pytest.raises(ValueError):
        cur.PiecewiseSchedule(((5, 0.1), (1, 0.2)))
    with pytest.raises(ValueError, match='unknown curriculum schedule'):
        cur.build_schedule('cosine')
    assert cur.build_schedule('points', points=[[0, 0], [1, 1]])(0.5) == 0.5


@pytest.mark.parametrize('fraction', [0.0, 1 / 64, 0.1, 0.3, 0.5, 1.0])
@pytest.mark.parametrize('batch', [1, 7, 64])
def test_counts_are_round_r_times_b(fraction, batch):
    b = cur.compose_batch(3, batch, 100, 1000, cur.StaticSchedule(fraction), rng_seed=0)
    expected = int(np.floor(fraction * batch + 0.5))
    assert b.n_real == expected and len(b.synth_indices) == batch - expected
    assert sorted(b.order.tolist()) == list(range(batch))  # a permutation: every sample once
    items = b.items()
    assert sum(real for real, _ in items) == expected
    assert all(0 <= i < (100 if real else 1000) for real, i in items)


def test_one_in_64_is_one_real_sample():
    # The paper's 1.5 %: one real object per 64-batch, at every step.
    s = cur.StaticSchedule(1 / 64)
    assert all(cur.compose_batch(k, 64, 50, 500, s, 1).n_real == 1 for k in range(20))


def test_deterministic_and_step_dependent():
    s = cur.StaticSchedule(0.3)
    a = cur.compose_batch(17, 32, 100, 1000, s, rng_seed=5)
    b = cur.compose_batch(17, 32, 100, 1000, s, rng_seed=5)
    assert a.items() == b.items()
    assert cur.compose_batch(18, 32, 100, 1000, s, rng_seed=5).items() != a.items()
    assert cur.compose_batch(17, 32, 100, 1000, s, rng_seed=6).items() != a.items()


def test_ranks_draw_disjoint_streams():
    s = cur.StaticSchedule(0.5)
    batches = cur.compose_global_batch(4, 64, 4, n_real=10**9, n_synth=10**9, schedule=s, rng_seed=0)
    assert [b.n_real for b in batches] == [32] * 4  # every rank holds round(r * B) itself
    drawn = [set(b.real_indices.tolist()) | {-1 - i for i in b.synth_indices.tolist()} for b in batches]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not drawn[i] & drawn[j]  # from a pool of 1e9, overlap would mean shared streams
    assert cur.compose_batch(4, 64, 10**9, 10**9, s, 0, rank=2, world_size=4).items() == batches[2].items()
    with pytest.raises(ValueError):
        cur.compose_batch(0, 4, 1, 1, s, 0, rank=4, world_size=4)


def test_with_replacement_covers_pool_uniformly():
    s = cur.StaticSchedule(1.0)
    counts = np.zeros(10)
    for k in range(200):
        np.add.at(counts, cur.compose_batch(k, 50, 10, 5, s, 0).real_indices, 1)
    assert counts.sum() == 200 * 50 and counts.min() > 0.8 * 1000  # uniform, about 1000 each


def test_class_exclusion_for_unseen_class_experiments():
    labels = ['car', 'pedestrian', 'bus', 'car', 'pedestrian', 'truck'] * 10
    pool = cur.real_pool(labels, ['pedestrian', 'bus'])
    s = cur.StaticSchedule(1.0)
    for k in range(30):
        b = cur.compose_batch(k, 16, pool, 100, s, 0)
        assert {labels[i] for i in b.real_indices} <= {'car', 'truck'}
    b2 = cur.compose_batch(0, 16, len(labels), 100, s, 0, real_labels=labels, excluded_real_classes=['car'])
    assert 'car' not in {labels[i] for i in b2.real_indices}


def test_empty_sides():
    s = cur.StaticSchedule(0.5)
    assert cur.compose_batch(0, 8, 0, 10, s, 0).n_real == 0  # no real data: all synthetic
    assert cur.compose_batch(0, 8, 10, 0, s, 0).n_real == 8  # no synthetic: all real
    with pytest.raises(ValueError, match='empty'):
        cur.compose_batch(0, 8, 0, 0, s, 0)
    with pytest.raises(ValueError, match='outside'):
        cur.compose_batch(0, 8, 5, 5, cur.StaticSchedule(1.5), 0)
