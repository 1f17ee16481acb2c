"""Shared fixtures of the bag tests: one small generated dataroot and the real single-sweep sample."""

from __future__ import annotations

import pytest
import yaml
from bag_test_utils import make_tiny_checkpoint
from helpers.nuscenes_dataroot import make_nuscenes_dataroot

from blendclip_core.vocabulary import NUSCENES_10, NUSCENES_EVAL_TEMPLATES

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


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp('model') / 'bags-tiny.pt'
    return make_tiny_checkpoint(path, NUSCENES_10, NUSCENES_EVAL_TEMPLATES)


@pytest.fixture(scope='session')
def params_file(repo, tiny_checkpoint, tmp_path_factory):
    """The shipped node parameters with the test model and the protocol's vocabulary and prompt."""
    data = yaml.safe_load((repo / 'config' / 'blendclip.params.yaml').read_text())
    p = data['/**']['ros__parameters']
    p.update(checkpoint=str(tiny_checkpoint), device='cpu', vocabulary=list(NUSCENES_10),
             prompt_templates=list(NUSCENES_EVAL_TEMPLATES), top_k=5, autostart=True)
    path = tmp_path_factory.mktemp('params') / 'params.yaml'
    path.write_text(yaml.safe_dump(data))
    return path
