"""Shared fixtures of the bag tests: one small generated dataroot and the real single-sweep sample."""

from __future__ import annotations

import pytest
from helpers.nuscenes_dataroot import make_nuscenes_dataroot

SAMPLE_DIR_NAME = 'nuscenes_sample'


@pytest.fixture(scope='session')
def dataroot(tmp_path_factory):
    """2 scenes x 3 keyframes, 2 sweeps before each keyframe, cameras, voids (debris, animal)."""
    root = tmp_path_factory.mktemp('dataroot')
    info = make_nuscenes_dataroot(root, scenes=2, samples_per_scene=3, sweeps_per_sample=2, seed=3,
                                  ground_points=800, image_size=(160, 90))
    return root, info


@pytest.fixture(scope='session')
def sample_dir(repo):
    path = repo / 'data' / SAMPLE_DIR_NAME
    if not (path / 'annotations_lidar.json').is_file():
        pytest.skip(f'{path} missing')
    return path
