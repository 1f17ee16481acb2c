"""normalize_objects(..., 'unit_sphere') is the reference's pc_normalize + seeded FPS cap
(data/dataset_3d.py: NuScenes_Objects._load_and_preprocess_points), on the same objects."""

from __future__ import annotations

import numpy as np

from blendclip_core.normalization import normalize_objects
from blendclip_core.types import ObjectBatch

SEED = 4242  # nonzero: the reference's `if seed:` takes seed 0 for 'no seed'
MAX_POINTS = 100  # small, because without numba the reference's FPS loop runs in Python
# Ours centres and scales in float64 and rounds once to float32; the reference works in float32
# throughout (np.mean of float32 data). Its error grows with the distance of the object from the origin
# over its extent: up to 1.8e-6 (unit-sphere units) for the objects below, which sit up to 30 m out
# with extents of a few metres; about 1e-7 for objects already centred by crop_objects.
ATOL = 4e-6


def reference_input(reference, obj: np.ndarray, max_points: int, seed: int | None) -> np.ndarray:
    """What the reference dataset hands its collate for one object (cap_to_npoints on)."""
    pc = obj.copy()
    pc[:, 0:3] = reference.dataset_3d.pc_normalize(pc[:, 0:3])
    if pc.shape[0] > max_points:
        pc = reference.dataset_3d.farthest_point_sample(pc, max_points, seed=seed)
    return pc


def _objects(rng: np.random.Generator) -> list[np.ndarray]:
    line = rng.normal(size=3)
    return [
        rng.normal(size=(1, 3)) + 5.0,  # one point: m == 0, left centred at the origin
        np.array([[1.0, 2.0, 3.0], [1.5, 2.0, 3.0]]),
        rng.uniform(-4, 4, (60, 1)) * line + 10.0,  # collinear
        rng.uniform(-4, 4, (170, 1)) * line - 3.0,  # collinear, capped
        rng.normal(size=(90, 3)) * [4.0, 1.5, 0.7] + [20.0, -7.0, 1.0],
        rng.normal(size=(257, 3)) * [2.0, 0.8, 0.9] - [15.0, 30.0, 0.5],  # capped
        rng.uniform(-1, 1, (333, 3)) * [2.3, 0.9, 0.8],  # capped
    ]


def test_unit_sphere_and_fps_cap_equal_the_reference(reference, rng):
    objs = [o.astype(np.float32) for o in _objects(rng)]
    ours = normalize_objects(ObjectBatch.from_list(objs), 'unit_sphere', MAX_POINTS, seed=SEED)
    assert ours.counts.tolist() == [min(len(o), MAX_POINTS) for o in objs]
    for i, obj in enumerate(objs):
        expected = reference_input(reference, obj, MAX_POINTS, SEED)
        assert np.isfinite(ours.object(i)).all()
        # same points in the same (FPS) order: same start draw, same farthest point at every step
        np.testing.assert_allclose(ours.object(i), expected, rtol=0, atol=ATOL, err_msg=f'object {i}')


def test_difference_identical_points_stay_at_the_origin(reference, rng):
    """Named difference: for an object whose points coincide (a few returns of one spot) the
    reference's float32 mean misses the point by a rounding, so pc_normalize divides that rounding
    error by itself and puts every point on the unit sphere in an arbitrary direction. Ours
    (float64 sums of float32 data are exact here) finds zero extent and leaves the object at the
    origin, as pc_normalize's own `m == 0` branch intends."""
    obj = np.repeat(np.array([[12.3, -4.56, 0.789]], dtype=np.float32), 130, axis=0)
    ref = reference_input(reference, obj, MAX_POINTS, SEED)
    ours = normalize_objects(ObjectBatch.from_list([obj]), 'unit_sphere', MAX_POINTS, seed=SEED).object(0)
    np.testing.assert_allclose(np.linalg.norm(ref, axis=1), 1.0, atol=1e-6)  # rounding noise, scaled up
    assert len(ours) == len(ref) == MAX_POINTS and not ours.any()


def test_fps_start_is_the_reference_draw(reference, rng):
    obj = rng.normal(size=(400, 3)).astype(np.float32)
    start = np.random.Generator(np.random.PCG64(SEED)).integers(0, len(obj))
    ours = normalize_objects(ObjectBatch.from_list([obj]), 'unit_sphere', 10, seed=SEED).object(0)
    ref = reference_input(reference, obj, 10, SEED)
    np.testing.assert_allclose(ours[0], reference.dataset_3d.pc_normalize(obj)[start], atol=ATOL)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=ATOL)


def test_difference_seed_zero_is_seeded_here_and_global_random_in_the_reference(reference, rng):
    """Named difference: the reference's `if seed:` sends seed 0 (and its training objects, which get
    no seed) to np.random's global state; its test objects are seeded by Python's per-process salted
    str hash. Ours is always PCG64(seed): the same points every run, in every process."""
    obj = rng.normal(size=(50, 3)).astype(np.float32)
    ours = normalize_objects(ObjectBatch.from_list([obj]), 'unit_sphere', 5, seed=0).object(0)
    np.random.seed(7)
    ref = reference_input(reference, obj, 5, 0)
    global_start = np.random.RandomState(7).randint(0, len(obj))
    ours_start = np.random.Generator(np.random.PCG64(0)).integers(0, len(obj))
    assert global_start != ours_start  # (42 vs 21 for 50 points)
    unit = reference.dataset_3d.pc_normalize(obj)
    np.testing.assert_allclose(ref[0], unit[global_start], atol=ATOL)
    np.testing.assert_allclose(ours[0], unit[ours_start], atol=ATOL)
    again = normalize_objects(ObjectBatch.from_list([obj]), 'unit_sphere', 5, seed=0).object(0)
    np.testing.assert_array_equal(ours, again)


def test_difference_metric_keeps_coordinates_and_caps_uniformly(reference, rng):
    """Named difference: 'metric' (what our shipped models were trained on) is not the reference's
    input: coordinates stay in metres (crop_objects already centred them) and the cap is the crop's
    seeded uniform subset, in input order, not FPS."""
    obj = (rng.normal(size=(300, 3)) * [2.0, 0.9, 0.8]).astype(np.float32)
    ours = normalize_objects(ObjectBatch.from_list([obj]), 'metric', MAX_POINTS).object(0)
    ref = reference_input(reference, obj, MAX_POINTS, SEED)
    assert np.abs(ref).max() <= 1.0 + ATOL < np.abs(ours).max()
    rows = [int(np.flatnonzero((obj == p).all(1))[0]) for p in ours]
    assert rows == sorted(rows) and len(set(rows)) == MAX_POINTS  # a subset of the input, in order
