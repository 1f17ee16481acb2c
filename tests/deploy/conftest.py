"""Fixtures of the deployment tests: a tiny checkpoint, its two exports (compiled once per session),
the eager classifier they are compared with, and the real nuScenes sweep."""

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.sample import load_sweep

from blendclip_core.checkpoint import ModelCard, save_checkpoint
from blendclip_core.classifier import ZeroShotClassifier
from blendclip_core.encoder import create_model
from blendclip_core.export import export_artefact
from blendclip_core.vocabulary import DRIVING


@pytest.fixture(autouse=True)
def _few_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # the CI machine has 2 cores shared by everything
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory) -> Path:
    """pointbert-tiny (random weights) in a `file:` text space of seeded class vectors for DRIVING."""
    root = tmp_path_factory.mktemp('tiny_model')
    classes = root / 'classes.npz'
    emb = np.random.default_rng(0).normal(size=(len(DRIVING), 64)).astype(np.float32)
    np.savez(classes, names=np.array(DRIVING), embeddings=emb / np.linalg.norm(emb, axis=1, keepdims=True))
    torch.manual_seed(0)
    model = create_model('pointbert-tiny').eval()
    card = ModelCard(name='deploy-tiny', text_space=f'file:{classes}', logit_scale=30.0,
                     prompt_templates=['point cloud of a {}.'], inference_precision='fp32')
    return save_checkpoint(root / 'tiny.pt', model, card)


@pytest.fixture(scope='session')
def exported(tiny_checkpoint, tmp_path_factory) -> dict[str, Path]:
    """format -> artefact folder of the tiny checkpoint (AOTInductor compiles once: ~30 s on 2 cores)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp('exported')
    return {fmt: export_artefact(tiny_checkpoint, fmt, root / fmt) for fmt in ('aoti', 'onnx')}


@pytest.fixture(scope='session')
def eager(tiny_checkpoint) -> ZeroShotClassifier:
    return ZeroShotClassifier.from_checkpoint(tiny_checkpoint, device='cpu')


@pytest.fixture(scope='session')
def nuscenes_sweep():
    """(points (M, 5) float32, Boxes) of the real LIDAR_TOP sweep (69 labelled boxes)."""
    return load_sweep()[:2]
