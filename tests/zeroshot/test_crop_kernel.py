"""The compiled crop (blendclip_core/crop_kernel.py) gives exactly what the numpy path gives."""

import numpy as np
import pytest
from zs_helpers import random_boxes, random_cloud

from blendclip_core import crop_kernel
from blendclip_core import preprocess as P
from blendclip_core.geometry import quaternion_to_matrix


@pytest.fixture
def numpy_only(monkeypatch):
    """A context in which crop_objects takes the numpy path."""
    def disable():
        monkeypatch.setattr(P, 'upright_points_in_boxes', lambda *a: None)
        monkeypatch.setattr(P, 'centred_objects', lambda *a: None)
    return disable


def _crop_both(numpy_only, monkeypatch, points, boxes, **kw):
    fast = P.crop_objects(points, boxes, **kw)
    with monkeypatch.context():
        numpy_only()
        slow = P.crop_objects(points, boxes, **kw)
    return fast, slow


def _assert_same(a, b):
    for field in ('status', 'points_in_box', 'indices', 'centroids'):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    np.testing.assert_array_equal(a.batch.offsets, b.batch.offsets)
    np.testing.assert_array_equal(a.batch.points, b.batch.points)  # bit for bit
    assert a.num_nonfinite == b.num_nonfinite


def test_numba_is_installed_and_compiles():
    assert crop_kernel.warm_up()  # a dependency: the node's speed relies on it


def test_real_sweep_same_as_numpy_path(nuscenes_sweep, numpy_only, monkeypatch):
    points, boxes, _ = nuscenes_sweep
    for margin in (0.0, 0.25):
        for canonical in (False, True):
            for channels, cap in ((3, 8192), (4, 16)):
                fast, slow = _crop_both(numpy_only, monkeypatch, points, boxes, margin=margin,
                                        canonical_yaw=canonical, channels=channels, max_points=cap)
                _assert_same(fast, slow)
    assert fast.points_in_box.sum() > 500


@pytest.mark.parametrize('seed', range(8))
def test_random_frames_same_as_numpy_path(seed, numpy_only, monkeypatch):
    rng = np.random.default_rng(seed)
    points = np.concatenate([random_cloud(rng, 8000), rng.normal(size=(8000, 1)).astype(np.float32)], 1)
    points[rng.integers(0, len(points), 30), rng.integers(0, 3, 30)] = np.nan  # dropped and counted
    boxes = random_boxes(rng, int(rng.integers(1, 300)))
    fast, slow = _crop_both(numpy_only, monkeypatch, points, boxes, margin=float(rng.uniform(-0.3, 0.5)),
                            canonical_yaw=bool(seed % 2), channels=3 + seed % 2,
                            max_points=int(rng.integers(4, 200)), min_points=int(rng.integers(1, 4)))
    _assert_same(fast, slow)
    assert fast.num_nonfinite > 0


def test_kernel_declines_tilted_boxes_and_large_candidate_sets():
    rng = np.random.default_rng(0)
    xyz = random_cloud(rng, 5000)[:, :3]
    tilted = random_boxes(rng, 10, tilt=True)
    rot = quaternion_to_matrix(tilted.quaternions)
    assert crop_kernel.upright_points_in_boxes(xyz, tilted.centers, tilted.sizes / 2, rot) is None
    upright = random_boxes(rng, 10)
    rot = quaternion_to_matrix(upright.quaternions)
    assert crop_kernel.upright_points_in_boxes(xyz, upright.centers, upright.sizes / 2, rot) is not None
    # every box covers the whole cloud: 600 x 5000 candidate pairs, over the budget -> numpy path
    centres, rots = np.zeros((600, 3)), np.repeat(rot[:1], 600, 0)
    assert crop_kernel.upright_points_in_boxes(xyz, centres, np.full((600, 3), 1e3), rots) is None
