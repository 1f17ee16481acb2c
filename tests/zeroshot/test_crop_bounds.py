"""Issue #14: a frame's crop work and output are bounded whatever the boxes (sizes, count, overlap), and
quaternions of any magnitude rotate the box they describe."""

import tracemalloc

import numpy as np
import pytest
from zs_helpers import brute_force_inside, random_boxes, random_cloud

from blendclip_core.geometry import MAX_BOX_SIZE, MAX_BOX_VOLUME, Boxes
from blendclip_core.preprocess import (
    MAX_FRAME_OBJECTS,
    MAX_FRAME_PAIRS,
    MAX_FRAME_POINTS,
    CropLimits,
    crop_objects,
    footprint_pairs,
)
from blendclip_core.types import ObjectStatus


def _concat(*parts: Boxes) -> Boxes:
    return Boxes(np.vstack([b.centers for b in parts]), np.vstack([b.sizes for b in parts]),
                 np.vstack([b.quaternions for b in parts]), sum((b.ids for b in parts), ()))


def _ground_boxes(n: int, seed: int = 0) -> Boxes:
    """n boxes within the size limits that each hold most of the sweep (29 x 29 m over the ground)."""
    rng = np.random.default_rng(seed)
    centers = np.column_stack([rng.uniform(-2, 2, (n, 2)), np.full(n, -0.8)])
    return Boxes.from_yaw(centers, np.tile([29.0, 29.0, 2.3], (n, 1)), rng.uniform(-3, 3, n),
                          ids=[f'g{i}' for i in range(n)])


def test_oversize_boxes_are_invalid_and_counted(nuscenes_sweep):
    points, boxes, objects = nuscenes_sweep
    mm = Boxes(boxes.centers, boxes.sizes * 1000, boxes.quaternions, tuple(f'mm{i}' for i in boxes.ids))
    edge = Boxes.from_yaw(np.zeros((5, 3)), [[MAX_BOX_SIZE, 1, 1], [MAX_BOX_SIZE * 1.01, 1, 1],
                                            [25, 3, 4.5], [20, 10, 11], [1, 1e6, 1]], [0.3] * 5,
                          ids=list('abcde'))
    assert 20 * 10 * 11 > MAX_BOX_VOLUME >= 25 * 3 * 4.5
    cropped = crop_objects(points, _concat(boxes, mm, edge))
    recount = np.array([o['points_in_box_recount'] for o in objects])
    np.testing.assert_array_equal(cropped.points_in_box[:69], recount)  # ordinary boxes: unchanged
    assert (cropped.status[69:138] == ObjectStatus.INVALID_BOX).all()
    assert cropped.status[138:].tolist() == [ObjectStatus.OK, ObjectStatus.INVALID_BOX, ObjectStatus.OK,
                                             ObjectStatus.INVALID_BOX, ObjectStatus.INVALID_BOX]
    assert cropped.num_oversize == 69 + 3
    assert (cropped.batch.counts[69:138] == 0).all() and (cropped.points_in_box[69:138] == 0).all()
    # the limits are data: off, the millimetre boxes swallow the cloud as before
    unbounded = crop_objects(points, mm, limits=CropLimits.unbounded())
    assert unbounded.num_oversize == 0 and unbounded.points_in_box.max() > 30_000


def test_ordinary_frame_is_bit_identical_to_unbounded(nuscenes_sweep):
    points, boxes, _ = nuscenes_sweep
    a = crop_objects(points, boxes, canonical_yaw=True)
    b = crop_objects(points, boxes, canonical_yaw=True, limits=CropLimits.unbounded())
    np.testing.assert_array_equal(a.batch.points, b.batch.points)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert a.examined_fraction == 1.0 and a.frame_cap == 8192 and a.num_oversize == 0


def test_frame_points_cap_keeps_small_objects_whole(nuscenes_sweep):
    points, boxes, objects = nuscenes_sweep
    ground = _ground_boxes(46)
    cropped = crop_objects(points, _concat(ground, boxes))
    counts = cropped.batch.counts
    assert counts.sum() <= MAX_FRAME_POINTS
    assert (cropped.status[:46] == ObjectStatus.OK).all() and cropped.frame_cap < 8192
    assert (counts[:46] == cropped.frame_cap).all()  # the big objects share the budget
    recount = np.array([o['points_in_box_recount'] for o in objects])
    np.testing.assert_array_equal(counts[46:], recount)  # the real objects (<= 479 points) stay whole
    # counts stay exact (no subsampling of the cloud here) and kept points are inside their box
    expected = brute_force_inside(points[:, :3], ground)
    np.testing.assert_array_equal(cropped.points_in_box[:46], [len(e) for e in expected])
    for i in (0, 45):
        got = cropped.indices[cropped.batch.offsets[i]:cropped.batch.offsets[i + 1]]
        assert np.isin(got, expected[i]).all() and len(np.unique(got)) == len(got)


def test_overlapping_boxes_examine_a_bounded_subsample(nuscenes_sweep):
    points, _, _ = nuscenes_sweep
    boxes = _ground_boxes(MAX_FRAME_OBJECTS, seed=1)  # as many as a frame keeps, each 29 m wide
    tracemalloc.start()
    cropped = crop_objects(points, boxes)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200e6, f'peak {peak / 1e6:.0f} MB'
    full = footprint_pairs(points[:, :3], boxes.centers, boxes.sizes / 2, boxes.rotations).sum()
    assert full > 5 * MAX_FRAME_PAIRS  # about 25M pairs if every box examined the whole cloud
    assert full * cropped.examined_fraction <= MAX_FRAME_PAIRS * 1.0001
    assert (cropped.status == ObjectStatus.OK).all() and cropped.batch.counts.sum() <= MAX_FRAME_POINTS
    # counts are estimates from a uniform subsample: close to the truth
    exact = np.array([len(e) for e in brute_force_inside(points[:, :3], boxes.subset([0, 1, 2]))])
    np.testing.assert_allclose(cropped.points_in_box[:3], exact, rtol=0.1)
    again = crop_objects(points, boxes)
    np.testing.assert_array_equal(again.indices, cropped.indices)  # deterministic


def test_objects_beyond_the_frame_limit_are_invalid():
    rng = np.random.default_rng(5)
    points = random_cloud(rng, 2000)
    n = MAX_FRAME_OBJECTS + 52
    boxes = random_boxes(rng, n, size=(0.5, 2.0))
    bad = boxes.sizes.copy()
    bad[:10, 0] = -1  # invalid anyway: not counted against the object limit
    boxes = Boxes(boxes.centers, bad, boxes.quaternions, boxes.ids)
    cropped = crop_objects(points, boxes)
    assert (cropped.status[:10] == ObjectStatus.INVALID_BOX).all()
    assert (cropped.status[10:10 + MAX_FRAME_OBJECTS] != ObjectStatus.INVALID_BOX).all()
    assert (cropped.status[10 + MAX_FRAME_OBJECTS:] == ObjectStatus.INVALID_BOX).all()
    assert cropped.num_oversize == 42


def test_footprint_pairs_bound_the_points_inside():
    rng = np.random.default_rng(6)
    points = random_cloud(rng, 5000)
    boxes = random_boxes(rng, 300, size=(0.2, 25.0), tilt=True)
    bound = footprint_pairs(points[:, :3], boxes.centers, boxes.sizes / 2, boxes.rotations)
    inside = np.array([len(e) for e in brute_force_inside(points[:, :3], boxes, size_limits=False)])
    assert (bound >= inside).all() and bound.sum() < 4 * inside.sum()


@pytest.mark.parametrize('scale', [1e-3, 1e30, 1e200, 1e300, 1.7e308])
def test_quaternions_of_any_magnitude_rotate_the_box(nuscenes_sweep, scale):
    points, boxes, _ = nuscenes_sweep
    scaled = Boxes(boxes.centers, boxes.sizes, boxes.quaternions * scale, boxes.ids)
    assert scaled.valid_mask().all()
    np.testing.assert_allclose(scaled.yaws, boxes.yaws, atol=1e-12)
    a, b = crop_objects(points, boxes), crop_objects(points, scaled)
    np.testing.assert_array_equal(b.points_in_box, a.points_in_box)
    np.testing.assert_array_equal(b.indices, a.indices)


def test_zero_and_nonfinite_quaternions_are_invalid():
    quats = np.array([[0, 0, 0, 0], [0, 0, np.nan, 1], [np.inf, 0, 0, 1], [0, 0, 0, -np.inf],
                      [0, 0, 0, 1e-12], [1e300, 0, 0, 1e300]])
    n = len(quats)
    boxes = Boxes(np.zeros((n, 3)), np.ones((n, 3)), quats, tuple('abcdef'))
    cropped = crop_objects(np.zeros((10, 3), np.float32), boxes)
    assert cropped.status.tolist() == [ObjectStatus.INVALID_BOX] * 5 + [ObjectStatus.OK]


def test_limits_reject_nonsense():
    from blendclip_core.preprocess import CropError
    for kwargs in ({'max_box_size': 0}, {'max_pairs': -1}, {'max_frame_points': 0}):
        with pytest.raises(CropError):
            CropLimits(**kwargs)


def test_a_huge_margin_is_bounded_like_huge_boxes(nuscenes_sweep):
    """The size limits apply to the boxes as given; a margin that grows every box over the whole cloud
    still meets the pair and point budgets."""
    points, boxes, _ = nuscenes_sweep
    many = _concat(*[Boxes(boxes.centers, boxes.sizes, boxes.quaternions, tuple(f'{k}{i}' for i in boxes.ids))
                     for k in range(8)])
    cropped = crop_objects(points, many, margin=1e5)
    assert (cropped.status == ObjectStatus.OK).all()
    assert cropped.examined_fraction < MAX_FRAME_PAIRS / (len(points) * len(many)) * 1.01
    assert cropped.batch.counts.sum() <= MAX_FRAME_POINTS
    np.testing.assert_allclose(cropped.points_in_box, len(points), rtol=0.05)  # each holds all of it
