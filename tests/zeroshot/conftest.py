"""Fixtures of the zero-shot tests: the real nuScenes sweep and a brute-force box test."""

import json

import pytest
from helpers.sample import load_sweep


@pytest.fixture(scope='session')
def nuscenes_sweep():
    """(points (M, 5) float32, Boxes, annotation objects) of the real LIDAR_TOP sweep."""
    return load_sweep()


TINY_CLIP = 'bc-zs-tiny-clip'
TINY_CLIP_CONFIG = {
    'embed_dim': 64,
    'vision_cfg': {'image_size': 64, 'layers': 2, 'width': 64, 'patch_size': 32},
    'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 64, 'heads': 2, 'layers': 2},
}


@pytest.fixture(scope='session')
def tiny_clip(tmp_path_factory) -> str:
    """Name of a tiny OpenCLIP architecture registered through open_clip's public API."""
    import open_clip

    path = tmp_path_factory.mktemp('clip_cfg') / f'{TINY_CLIP}.json'
    path.write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(path)
    return TINY_CLIP


@pytest.fixture(scope='session')
def minilm():
    """The real offline MiniLM space, loaded once for the session."""
    from blendclip_core.text_space import MiniLMSpace

    return MiniLMSpace().load()
