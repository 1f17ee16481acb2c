"""crop_objects against a per-box brute-force loop, on random and on real data, plus its edge cases."""

import tracemalloc

import numpy as np
import pytest
from zs_helpers import brute_force_inside, random_boxes, random_cloud

from blendclip_core.geometry import Boxes
from blendclip_core.preprocess import CropError, CropLimits, crop_objects
from blendclip_core.types import ObjectStatus

# brute-force comparisons keep every pair: only the box size limits apply, as in brute_force_inside
EXACT = CropLimits(max_objects=None, max_pairs=None, max_frame_points=None)


def _assert_matches_brute_force(points, boxes, cropped, margin=0.0, size_limits=True):
    expected = brute_force_inside(points[:, :3], boxes, margin, size_limits)
    np.testing.assert_array_equal(cropped.points_in_box, [len(e) for e in expected])
    for i, exp in enumerate(expected):
        got = cropped.indices[cropped.batch.offsets[i]:cropped.batch.offsets[i + 1]]
        np.testing.assert_array_equal(got, exp, err_msg=f'box {i}')


@pytest.mark.parametrize('tilt', [False, True])
def test_random_boxes_match_brute_force(tilt):
    rng = np.random.default_rng(3)
    points = random_cloud(rng, 20_000)
    boxes = random_boxes(rng, 300, tilt=tilt)
    cropped = crop_objects(points, boxes, max_points=10**9, limits=EXACT)
    _assert_matches_brute_force(points, boxes, cropped)
    assert cropped.points_in_box.sum() > 1000  # the test is not vacuous


def test_real_sweep_counts_equal_recount(nuscenes_sweep):
    points, boxes, objects = nuscenes_sweep
    cropped = crop_objects(points, boxes)
    recount = np.array([o['points_in_box_recount'] for o in objects])
    np.testing.assert_array_equal(cropped.points_in_box, recount)
    _assert_matches_brute_force(points, boxes, cropped)
    assert len(cropped.batch) == 69 and cropped.num_nonfinite == 0
    empty = recount == 0
    assert (cropped.status[empty] == ObjectStatus.NO_POINTS).all()
    assert (cropped.status[~empty] == ObjectStatus.OK).all()


def test_output_is_centred_and_canonical_yaw_derotates(nuscenes_sweep):
    points, boxes, objects = nuscenes_sweep
    big = int(np.argmax([o['points_in_box_recount'] for o in objects]))  # the 479-point truck
    plain = crop_objects(points, boxes.subset([big]))
    canon = crop_objects(points, boxes.subset([big]), canonical_yaw=True)
    obj, obj_c = plain.batch.object(0), canon.batch.object(0)
    np.testing.assert_allclose(obj.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(obj_c.mean(0), 0, atol=1e-4)
    raw = points[plain.indices, :3].astype(np.float64)
    np.testing.assert_allclose(obj + plain.centroids[0], raw, atol=1e-4)  # z-up, only shifted
    yaw = boxes.yaws[big]
    rot = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    np.testing.assert_allclose(obj_c @ rot.T, obj, atol=1e-4)
    # in the box frame the truck's long side lies along x
    assert np.ptp(obj_c[:, 0]) > np.ptp(obj_c[:, 1])


def test_margin_grows_each_half_size():
    boxes = Boxes.from_yaw([[0, 0, 0]], [[2, 2, 2]], [0.0])  # axis-aligned: face points are exact
    points = np.array([[0.99, 0, 0], [1.0, 0, 0], [1.2, 0, 0], [0, 1.29, 0], [0, 0, 1.31], [0, 0, -1.3]],
                      np.float32)
    assert crop_objects(points, boxes).points_in_box[0] == 2  # on the face counts as inside
    grown = crop_objects(points, boxes, margin=0.3)
    assert grown.points_in_box[0] == 5
    assert 4 not in grown.indices  # 1.31 > 1.3: still outside
    rng = np.random.default_rng(0)
    cloud = random_cloud(rng, 5000)
    many = random_boxes(rng, 100)
    _assert_matches_brute_force(cloud, many, crop_objects(cloud, many, margin=0.4, max_points=10**9,
                                                          limits=EXACT), 0.4)


def test_nonfinite_points_are_dropped_and_counted():
    boxes = Boxes.from_yaw([[0, 0, 0]], [[2, 2, 2]], [0.0])
    points = np.array([[0, 0, 0, 1], [np.nan, 0, 0, 1], [0.5, np.inf, 0, 1], [0.1, 0.1, -np.inf, 1],
                       [0.5, 0.5, 0.5, np.nan], [3e38, 3e38, 3e38, 0]], np.float32)
    cropped = crop_objects(points, boxes, channels=4)
    assert cropped.num_nonfinite == 3
    np.testing.assert_array_equal(cropped.indices, [0, 4])  # a NaN intensity is not a NaN point
    assert np.isfinite(cropped.batch.points[:, :3]).all()


def test_invalid_boxes_get_status_and_empty_entries():
    centers = [[0, 0, 0], [0, 0, 0], [np.nan, 0, 0], [0, 0, 0], [0, 0, 0]]
    sizes = [[2, 2, 2], [0, 2, 2], [2, 2, 2], [-1, 2, 2], [2, 2, 2]]
    quats = [[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
    boxes = Boxes(np.array(centers, float), np.array(sizes, float), np.array(quats, float), tuple('abcde'))
    points = np.zeros((10, 3), np.float32)
    cropped = crop_objects(points, boxes)
    assert cropped.status.tolist() == [ObjectStatus.OK] + [ObjectStatus.INVALID_BOX] * 4
    assert cropped.batch.counts.tolist() == [10, 0, 0, 0, 0]
    assert cropped.points_in_box.tolist() == [10, 0, 0, 0, 0]
    assert np.isnan(cropped.centroids[1:]).all()


def test_min_points_and_empty_inputs():
    boxes = Boxes.from_yaw([[0, 0, 0], [10, 0, 0]], [[2, 2, 2], [2, 2, 2]], [0, 0])
    points = np.array([[0, 0, 0], [0.5, 0, 0], [10, 0, 0]], np.float32)
    cropped = crop_objects(points, boxes, min_points=2)
    assert cropped.status.tolist() == [ObjectStatus.OK, ObjectStatus.NO_POINTS]
    assert cropped.points_in_box.tolist() == [2, 1]
    assert cropped.batch.counts.tolist() == [2, 0]
    none = crop_objects(np.zeros((0, 3), np.float32), boxes)
    assert none.status.tolist() == [ObjectStatus.NO_POINTS] * 2 and len(none.batch.points) == 0
    no_boxes = crop_objects(points, Boxes.empty())
    assert len(no_boxes.batch) == 0 and no_boxes.batch.points.shape == (0, 3)


def test_cap_is_deterministic_subset_independent_of_other_boxes():
    rng = np.random.default_rng(1)
    points = rng.uniform(-1, 1, (5000, 4)).astype(np.float32)
    boxes = Boxes.from_yaw([[0, 0, 0], [0.5, 0.5, 0]], [[2, 2, 2], [0.5, 0.5, 0.5]], [0, 0])
    a = crop_objects(points, boxes, max_points=300)
    b = crop_objects(points, boxes.subset([0]), max_points=300)
    assert a.points_in_box[0] == 5000 and a.batch.counts[0] == 300
    np.testing.assert_array_equal(a.indices[:300], b.indices)
    assert len(np.unique(b.indices)) == 300 and (np.diff(b.indices) > 0).all()
    # a uniform subset keeps the spread of the object
    assert np.ptp(points[b.indices, 0]) > 1.8


def test_ten_thousand_boxes_match_brute_force():
    rng = np.random.default_rng(7)
    points = random_cloud(rng, 4000)
    boxes = random_boxes(rng, 10_000, size=(0.2, 8.0))
    cropped = crop_objects(points, boxes, max_points=10**9, limits=EXACT)
    _assert_matches_brute_force(points, boxes, cropped)
    assert len(cropped.batch) == 10_000


def test_huge_overlapping_boxes_stay_in_bounded_memory():
    rng = np.random.default_rng(2)
    points = random_cloud(rng, 10_000)
    n = 800  # every box holds every point: 8M inside pairs if nothing were capped chunk by chunk
    boxes = Boxes.from_yaw(np.zeros((n, 3)), np.full((n, 3), 1e4), rng.uniform(-3, 3, n))
    tracemalloc.start()
    cropped = crop_objects(points, boxes, max_points=16, limits=CropLimits.unbounded())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (cropped.points_in_box == len(points)).all()
    assert (cropped.batch.counts == 16).all()
    assert peak < 100e6, f'peak {peak / 1e6:.0f} MB'


def test_bad_arguments_raise_typed_errors():
    boxes = Boxes.from_yaw([[0, 0, 0]], [[1, 1, 1]], [0])
    with pytest.raises(CropError):
        crop_objects(np.zeros((5, 2), np.float32), boxes)
    with pytest.raises(CropError):
        crop_objects(np.zeros((5, 3), np.float32), boxes, channels=4)
    with pytest.raises(CropError):
        crop_objects(np.zeros((5, 3), np.float32), boxes, max_points=0)
    with pytest.raises(CropError):
        crop_objects(np.zeros((5, 3), np.float32), boxes, margin=float('nan'))
    # float64 input is accepted and converted
    assert crop_objects(np.zeros((5, 3)), boxes).points_in_box[0] == 5


def test_absurd_box_sizes_and_boxes_away_from_the_cloud():
    """With the size limits off (the default makes such boxes INVALID_BOX), the grid still copes."""
    rng = np.random.default_rng(4)
    points = random_cloud(rng, 3000)
    boxes = Boxes.from_yaw([[0, 0, 0], [0, 0, 0], [1e6, 0, 0], [0, 0, 500], [5, 5, 0]],
                           [[1e300, 1e300, 1e300], [1e30, 2, 1e30], [10, 10, 10], [10, 10, 10], [4, 4, 4]],
                           [0.2, 1.0, 0, 0, 0.5])
    cropped = crop_objects(points, boxes, max_points=10**9, limits=CropLimits.unbounded())
    _assert_matches_brute_force(points, boxes, cropped, size_limits=False)
    assert cropped.points_in_box[0] == 3000 and cropped.points_in_box[2:4].tolist() == [0, 0]
    assert cropped.points_in_box[1] > 0 and cropped.points_in_box[4] > 0
    shrunk = crop_objects(points, boxes.subset([4]), margin=-2.5)  # a negative margin may empty a box
    assert shrunk.status.tolist() == [ObjectStatus.NO_POINTS]


def test_property_any_boxes_match_brute_force():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=25, deadline=None, derandomize=True)
    @given(seed=st.integers(0, 2**31), n_boxes=st.integers(0, 40), n_points=st.integers(0, 3000),
           scale=st.sampled_from([0.05, 1.0, 30.0]), tilt=st.booleans(), margin=st.floats(-0.2, 0.5))
    def check(seed, n_boxes, n_points, scale, tilt, margin):
        rng = np.random.default_rng(seed)
        points = random_cloud(rng, n_points, extent=10.0)
        boxes = random_boxes(rng, n_boxes, extent=12.0, size=(0.01 * scale, 4 * scale), tilt=tilt)
        cropped = crop_objects(points, boxes, margin=margin, max_points=10**9, limits=EXACT)
        _assert_matches_brute_force(points, boxes, cropped, margin)

    check()
