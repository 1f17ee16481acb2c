"""Session fixtures of the node tests (helpers are in node_harness.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from node_harness import TEST_TEMPLATES, TEXT_SPACE


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised pointbert-tiny projected into the MiniLM space, saved in our format."""
    from blendclip_core.checkpoint import ModelCard, save_checkpoint
    from blendclip_core.encoder import create_model

    path = tmp_path_factory.mktemp('model') / 'tiny-node-test.pt'
    model = create_model('pointbert-tiny', embed_dim=384)
    save_checkpoint(path, model, ModelCard(name='tiny-node-test', text_space=TEXT_SPACE,
                                           prompt_templates=TEST_TEMPLATES))
    return path
