"""Unit tests of blendclip_core.normalization.normalize_objects (no reference code needed)."""

from __future__ import annotations

import numpy as np
import pytest

from blendclip_core.normalization import CAPS, DEFAULT_CAP, NORMALIZATIONS, normalize_objects, unit_sphere
from blendclip_core.types import ObjectBatch

CAP = 64


def _objects(rng: np.random.Generator) -> list[np.ndarray]:
    """Degenerate and ordinary objects, some above CAP, with an intensity channel."""
    line = rng.normal(size=3)
    xyz = [
        np.zeros((0, 3)),
        rng.normal(size=(1, 3)) * 30.0,  # one point
        np.repeat(rng.normal(size=(1, 3)) * 30.0, 5, axis=0),  # identical points
        np.repeat(rng.normal(size=(1, 3)), 100, axis=0),  # identical points, above the cap
        rng.uniform(-5, 5, (40, 1)) * line + 7.0,  # collinear
        rng.uniform(-5, 5, (150, 1)) * line,  # collinear, above the cap
        rng.normal(size=(30, 3)) * 1e-20,  # tiny but nonzero extent
        rng.normal(size=(63, 3)) * [3.0, 1.0, 0.5] + 12.0,
        rng.normal(size=(64, 3)) * 2.0,  # exactly at the cap
        rng.normal(size=(500, 3)) * [4.0, 1.8, 1.5] - 20.0,
    ]
    return [np.hstack([p, rng.uniform(0, 255, (len(p), 1))]).astype(np.float32) for p in xyz]


@pytest.fixture
def batch(rng) -> ObjectBatch:
    return ObjectBatch.from_list(_objects(rng), channels=4)


def _single(batch: ObjectBatch, i: int) -> ObjectBatch:
    return ObjectBatch.from_list([batch.object(i)], channels=batch.points.shape[1])


@pytest.mark.parametrize('kind', NORMALIZATIONS)
@pytest.mark.parametrize('cap', CAPS)
def test_finite_capped_and_channels_carried(batch, kind, cap):
    out = normalize_objects(batch, kind, CAP, cap=cap)
    assert np.isfinite(out.points).all() and out.points.dtype == np.float32
    assert out.counts.tolist() == np.minimum(batch.counts, CAP).tolist()
    for i in range(len(batch)):  # every output row is an input row, xyz transformed, intensity kept
        assert set(out.object(i)[:, 3].tolist()) <= set(batch.object(i)[:, 3].tolist())


def test_unit_sphere_centres_and_scales_each_object(batch):
    out = normalize_objects(batch, 'unit_sphere', 10_000)
    for i in range(len(batch)):
        xyz = out.object(i)[:, :3].astype(np.float64)
        if len(xyz) == 0:
            continue
        np.testing.assert_allclose(xyz.mean(0), 0.0, atol=1e-6)
        extent = np.ptp(batch.object(i)[:, :3], axis=0).max()
        expected = 1.0 if extent > 0 else 0.0  # one point / identical points: left at the origin
        assert np.linalg.norm(xyz, axis=1).max() == pytest.approx(expected, abs=1e-6)
    collinear = out.object(4)[:, :3]
    assert np.linalg.matrix_rank(collinear, tol=1e-5) == 1  # still a line, no NaN


def test_metric_leaves_coordinates_unchanged(batch):
    out = normalize_objects(batch, 'metric', 10_000)
    np.testing.assert_array_equal(out.points, batch.points)
    np.testing.assert_array_equal(out.offsets, batch.offsets)
    assert out.points is not batch.points


@pytest.mark.parametrize('kind', NORMALIZATIONS)
@pytest.mark.parametrize('cap', CAPS)
def test_packed_equals_one_object_at_a_time(batch, kind, cap):
    seeds = np.arange(len(batch)) * 7919 + 1
    packed = normalize_objects(batch, kind, CAP, cap=cap, seed=seeds)
    for i in range(len(batch)):
        alone = normalize_objects(_single(batch, i), kind, CAP, cap=cap, seed=seeds[i])
        np.testing.assert_array_equal(packed.object(i), alone.points, err_msg=f'object {i}')


def test_idempotent_below_the_cap(batch):
    once = normalize_objects(batch, 'unit_sphere', 10_000)
    twice = normalize_objects(once, 'unit_sphere', 10_000)
    np.testing.assert_allclose(twice.points, once.points, rtol=0, atol=1e-6)


def test_metric_uniform_is_idempotent_above_the_cap(batch):
    once = normalize_objects(batch, 'metric', CAP)
    np.testing.assert_array_equal(normalize_objects(once, 'metric', CAP).points, once.points)


def test_unit_sphere_fps_is_not_idempotent_above_the_cap(batch):
    """As in the reference, an FPS-capped object keeps the centre and scale of all its points; a
    second pass would re-centre the subset, so the function must run once per object."""
    once = normalize_objects(batch, 'unit_sphere', CAP)
    twice = normalize_objects(once, 'unit_sphere', CAP)
    for i in range(len(batch)):
        same = np.allclose(twice.object(i), once.object(i), rtol=0, atol=1e-6)
        spread = len(batch.object(i)) and np.ptp(batch.object(i)[:, :3], axis=0).max() > 0
        assert same == (batch.counts[i] <= CAP or not spread), i


def test_fps_spreads_and_is_seeded(rng):
    """Points: a dense blob and 3 far outliers; FPS keeps the outliers, a uniform subset would not."""
    blob = rng.normal(size=(997, 3)) * 0.05
    outliers = np.array([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])
    batch = ObjectBatch.from_list([np.vstack([blob, outliers])])
    for seed in (1, 2, 3):
        out = normalize_objects(batch, 'unit_sphere', 8, seed=seed).points
        assert (np.linalg.norm(out, axis=1) > 0.9).sum() == 3
        np.testing.assert_array_equal(out, normalize_objects(batch, 'unit_sphere', 8, seed=seed).points)
    starts = {tuple(normalize_objects(batch, 'unit_sphere', 8, seed=s).points[0]) for s in range(1, 6)}
    assert len(starts) > 1  # the start point follows the seed


def test_defaults_and_errors(batch):
    assert DEFAULT_CAP == {'unit_sphere': 'fps', 'metric': 'uniform'}
    empty = ObjectBatch.from_list([])
    assert len(normalize_objects(empty, 'unit_sphere', CAP)) == 0
    np.testing.assert_array_equal(unit_sphere(empty), empty.points)
    with pytest.raises(ValueError, match='normalisation'):
        normalize_objects(batch, 'unit-sphere', CAP)
    with pytest.raises(ValueError, match='cap'):
        normalize_objects(batch, 'metric', CAP, cap='random')
    with pytest.raises(ValueError, match='max_points'):
        normalize_objects(batch, 'metric', 0)
    with pytest.raises(ValueError, match='seeds'):
        normalize_objects(batch, 'unit_sphere', CAP, seed=-1)
