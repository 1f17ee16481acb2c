"""The shipped default's labels on the real sweep, recorded: a refactor must not move them.

Recorded before and after the seams redesign (#15) with identical results; a retrained default changes
them on purpose, and then this file is re-recorded with the new model (tests/zeroshot/data/).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from blendclip_core.classifier import ZeroShotClassifier
from blendclip_core.pipeline import PipelineConfig, label_frame
from blendclip_core.vocabulary import DRIVING

RECORDED = Path(__file__).parent / 'data' / 'default_labels_sample.json'


@pytest.fixture(scope='module')
def default_classifier():
    return ZeroShotClassifier.from_checkpoint(None, list(DRIVING), device='cpu')


def test_default_model_labels_the_sample_sweep_as_recorded(nuscenes_sweep, default_classifier):
    points, boxes, _ = nuscenes_sweep
    want = json.loads(RECORDED.read_text())
    pred = label_frame(points[:, :3], boxes, default_classifier, PipelineConfig(min_points=1))
    assert [pred.label(i) for i in range(len(boxes))] == want['labels']
    assert pred.status.tolist() == want['status'] and pred.num_points.tolist() == want['num_points']
    np.testing.assert_allclose(pred.scores[:, 0], want['scores'], atol=2e-5)
