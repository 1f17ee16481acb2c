"""Generated toy triplets, augmentation, pools and the composed, augmented batches of the loop."""

import numpy as np
import pytest

from blendclip_core.data.triplet import REAL, SYNTHETIC
from blendclip_core.text_space.toy import class_embeddings
from blendclip_core.train import curriculum
from blendclip_core.train.augment import AugmentConfig, augment_points
from blendclip_core.train.config import SourceConfig
from blendclip_core.train.sources import ComposerSpec, CurriculumBatches, TripletPool, build_pool, load_source
from blendclip_core.train.toy_data import SHAPES, ToySetConfig, make_toy_triplets


def test_toy_set_is_deterministic_and_shaped_as_asked():
    cfg = ToySetConfig(per_class=3, dim=24, seed=4, points=(20, 30), missing_image=0.5)
    a, b = make_toy_triplets(cfg), make_toy_triplets(cfg)
    assert len(a) == 3 * len(SHAPES)
    assert all(np.array_equal(x.points, y.points) for x, y in zip(a, b))
    assert all(20 <= len(t.points) <= 30 and t.points.shape[1] == 3 for t in a)
    assert all(abs(t.points.mean(0)).max() < 1e-5 for t in a)  # centred
    assert {t.domain for t in a} == {SYNTHETIC}
    assert 0 < sum(t.image_embedding is None for t in a) < len(a)
    real = make_toy_triplets(ToySetConfig(per_class=3, dim=24, domain=REAL, points=(10, 12)))
    assert {t.domain for t in real} == {REAL} and all(len(t.points) <= 12 for t in real)
    with pytest.raises(ValueError, match='unknown toy shapes'):
        make_toy_triplets(ToySetConfig(classes=('blob',)))


def test_class_embeddings_are_fixed_unit_and_nearly_orthogonal():
    e = class_embeddings(list(SHAPES), 64)
    assert np.allclose(np.linalg.norm(e, axis=1), 1)
    assert np.array_equal(e[2], class_embeddings([list(SHAPES)[2]], 64)[0])  # by name, not position
    off = np.abs(e @ e.T - np.eye(len(e))).max()
    assert off < 0.5


def test_augment_is_deterministic_and_keeps_min_points():
    pts = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    cfg = AugmentConfig(dropout_max=0.99, min_points=5, rotate_z_deg=180)
    a = augment_points(pts, cfg, np.random.default_rng(1))
    b = augment_points(pts, cfg, np.random.default_rng(1))
    assert np.array_equal(a, b) and a.shape[1] == 4 and 5 <= len(a) <= 200
    kept = augment_points(pts, AugmentConfig(enabled=False), np.random.default_rng(1))
    assert np.array_equal(kept, pts)
    tiny = augment_points(pts[:2], cfg, np.random.default_rng(3))
    assert len(tiny) == 2  # below min_points: nothing dropped


def test_pool_concatenates_sources_and_skips_small_objects():
    p = build_pool([SourceConfig('toy', 's', {'per_class': 2, 'classes': ['box', 'cone']}),
                    SourceConfig('toy', 'r', {'per_class': 1, 'domain': 'real', 'points': [3, 3],
                                              'classes': ['box', 'cone']})], 16)
    assert len(p) == 6 and p.labels == ['box', 'box', 'cone', 'cone', 'box', 'cone']
    assert p[5].domain == REAL and p[0].text_embedding.shape == (16,)
    assert p.usable(4).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match='unknown data source kind'):
        load_source(SourceConfig('zip'), 16)
    with pytest.raises(ValueError, match='unknown toy source keys'):
        load_source(SourceConfig('toy', params={'pointz': 3}), 16)


def test_curriculum_batches_compose_augment_and_exclude():
    synth = TripletPool([make_toy_triplets(ToySetConfig(per_class=4, dim=8))])
    real = TripletPool([make_toy_triplets(ToySetConfig(per_class=4, dim=8, domain=REAL))])
    spec = ComposerSpec(seed=0, batch_size=10, ranks=(0,), world_size=1, steps_per_epoch=5, unit='epoch')
    ds = CurriculumBatches(synth, real, curriculum.StaticSchedule(0.5), spec, ['box', 'torus'], 3, 8192, 1,
                           AugmentConfig(), 8, total_steps=20)
    b = ds[7]
    assert len(b) == 10 and b.is_real.sum() == 5 and b.real_fraction == 0.5
    assert not {lab for lab, r in zip(b.labels, b.is_real) if r} & {'box', 'torus'}
    assert b.text.shape == (10, 8) and b.image.shape == (10, 8)
    assert np.all(b.image[~b.image_valid] == 0)
    again = ds[7]
    assert np.array_equal(again.objects.points, b.objects.points)  # a pure function of the step
    assert not np.array_equal(ds[8].objects.points[:10], b.objects.points[:10])
    def batches(ranks):
        spec = ComposerSpec(0, 10, ranks, 2, 5, 'epoch')
        return CurriculumBatches(synth, real, curriculum.StaticSchedule(0.5), spec, (), 3, 8192, 1,
                                 AugmentConfig(), 8, 20)

    two, rank1 = batches((0, 1)), batches((1,))
    both, r1 = two[3], rank1[3]
    assert len(both) == 20
    assert np.array_equal(both.objects.points[both.objects.offsets[10]:], r1.objects.points)
