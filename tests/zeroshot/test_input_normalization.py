"""The model card's input normalisation is applied in one place (the classifier), so label_frame and
every other caller feed the encoder what it was trained on; the box size enters as its own channels."""

import numpy as np
import pytest
import torch

from blendclip_core.checkpoint import ModelCard, save_checkpoint
from blendclip_core.classifier import ClassifierError, ZeroShotClassifier
from blendclip_core.encoder import create_model
from blendclip_core.geometry import Boxes
from blendclip_core.normalization import BOX_SIZE_SCALE
from blendclip_core.pipeline import PipelineConfig, label_frame
from blendclip_core.text_space import create_text_space
from blendclip_core.types import ObjectStatus


class SpyEncoder(torch.nn.Module):
    """A real encoder that keeps the packed points of its last call."""

    def __init__(self, **overrides):
        super().__init__()
        torch.manual_seed(0)
        self.inner = create_model('pointbert-tiny', embed_dim=16, **overrides)
        self.config, self.embed_dim, self.in_channels = self.inner.config, 16, self.inner.in_channels
        self.seen = None

    def encode(self, batch):
        self.seen = batch
        return self.inner.encode(batch)


def _classifier(kind: str, **overrides) -> ZeroShotClassifier:
    space = create_text_space('toy', dim=16)
    return ZeroShotClassifier(SpyEncoder(**overrides), space, ['car', 'pedestrian'], device='cpu',
                              input_normalization=kind)


def _frame(n: int = 400):
    rng = np.random.default_rng(0)
    car = rng.uniform([-2.2, -0.9, -0.7], [2.2, 0.9, 0.7], (n, 3)) + [10.0, 5.0, 0.8]
    few = rng.uniform(-0.2, 0.2, (3, 3)) + [0.0, -8.0, 0.9]
    boxes = Boxes.from_yaw([[10.0, 5.0, 0.8], [0.0, -8.0, 0.9]], [[4.5, 1.9, 1.5], [0.6, 0.6, 1.8]],
                           [0.0, 0.0])
    return np.concatenate([car, few]).astype(np.float32), boxes


def test_unit_sphere_and_metric_cards_feed_the_encoder_differently():
    points, boxes = _frame()
    metric, sphere = _classifier('metric'), _classifier('unit_sphere')
    label_frame(points, boxes, metric)
    label_frame(points, boxes, sphere)
    m, s = metric.encoder.seen, sphere.encoder.seen
    assert len(m) == len(s) == 1  # the 3-point box is NO_POINTS under the default min_points
    assert np.linalg.norm(m.points, axis=1).max() > 2.0  # metres, centred by the crop
    assert np.linalg.norm(s.points, axis=1).max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(s.points.mean(axis=0), 0.0, atol=1e-5)
    assert not np.allclose(m.points, s.points)


def test_fps_capped_models_are_cropped_whole_and_capped_by_the_classifier():
    points, boxes = _frame(n=3000)
    sphere = _classifier('unit_sphere')
    sphere.input_max_points = 1024
    pred = label_frame(points, boxes, sphere, PipelineConfig(max_points=512))
    assert pred.num_points[0] == 3000  # the crop kept every point; FPS capped afterwards
    assert sphere.encoder.seen.counts.tolist() == [1024]


def test_default_min_points_makes_sparse_boxes_no_points():
    points, boxes = _frame()
    pred = label_frame(points, boxes, _classifier('metric'))
    assert PipelineConfig().min_points == 5
    assert pred.status.tolist() == [ObjectStatus.OK, ObjectStatus.NO_POINTS]
    assert (pred.indices[1] == -1).all() and np.isnan(pred.scores[1]).all()


def test_box_size_channels_reach_the_encoder():
    points, boxes = _frame()
    clf = _classifier('unit_sphere', in_channels=6, box_size_input=True)
    label_frame(points, boxes, clf)
    seen = clf.encoder.seen.points
    assert seen.shape[1] == 6
    np.testing.assert_allclose(seen[:, 3:], np.tile([[4.5, 1.9, 1.5]], (400, 1)) / BOX_SIZE_SCALE, rtol=1e-6)


def test_from_checkpoint_takes_the_cards_normalization(tmp_path):
    enc = create_model('pointbert-tiny', embed_dim=16)
    path = save_checkpoint(tmp_path / 'm.pt', enc, ModelCard(name='m', text_space='toy',
                                                               input_normalization='unit_sphere'))
    space = create_text_space('toy', dim=16)
    clf = ZeroShotClassifier.from_checkpoint(path, ['car'], text_space=space, device='cpu')
    assert (clf.input_normalization, clf.input_cap, clf.input_max_points) == ('unit_sphere', 'fps', 8192)
    clf = ZeroShotClassifier.from_checkpoint(path, ['car'], text_space=space, device='cpu',
                                             input_normalization='metric')
    assert (clf.input_normalization, clf.input_cap) == ('metric', 'uniform')
    with pytest.raises(ClassifierError, match='input_normalization'):
        _classifier('metres')
