"""A model that takes the detector's box size: label_frame appends the box, objects without a box get
the tight box of their own points (points_box_size), and the box channels change what the model sees."""

import numpy as np
import pytest
import torch

from blendclip_core.checkpoint import ModelCard, save_checkpoint
from blendclip_core.classifier import ZeroShotClassifier
from blendclip_core.encoder import create_model
from blendclip_core.geometry import Boxes
from blendclip_core.normalization import append_box_size, box_size_input, points_box_size
from blendclip_core.pipeline import PipelineConfig, label_frame
from blendclip_core.types import ObjectBatch
from blendclip_core.vocabulary import DRIVING


@pytest.fixture(scope='module')
def box_model(tmp_path_factory):
    """pointbert-tiny with the box l/w/h as 3 more channels, unit sphere inputs, seeded class vectors."""
    root = tmp_path_factory.mktemp('box_model')
    emb = np.random.default_rng(0).normal(size=(len(DRIVING), 64)).astype(np.float32)
    np.savez(root / 'classes.npz', names=np.array(DRIVING),
             embeddings=emb / np.linalg.norm(emb, axis=1, keepdims=True))
    torch.manual_seed(0)
    model = create_model('pointbert-tiny', in_channels=6, box_size_input=True).eval()
    card = ModelCard(name='box-tiny', text_space=f'file:{root / "classes.npz"}', logit_scale=30.0,
                     prompt_templates=['point cloud of a {}.'], inference_precision='fp32',
                     input_normalization='unit_sphere')
    path = save_checkpoint(root / 'box.pt', model, card)
    return ZeroShotClassifier.from_checkpoint(path, list(DRIVING), device='cpu')


def _rectangle(length, width, height, yaw, n=400, seed=0):
    rng = np.random.default_rng(seed)
    local = rng.uniform(-0.5, 0.5, (n, 3)) * [length, width, height]
    c, s = np.cos(yaw), np.sin(yaw)
    xy = local[:, :2] @ np.array([[c, s], [-s, c]])
    return np.column_stack([xy, local[:, 2]]).astype(np.float32)


@pytest.mark.parametrize('yaw', [0.0, 0.3, np.pi / 4, 2.0])
def test_points_box_size_is_the_tight_box_whatever_the_yaw(yaw):
    batch = ObjectBatch.from_list([_rectangle(4.5, 1.8, 1.5, yaw, n=2000), np.zeros((1, 3), np.float32)])
    sizes = points_box_size(batch)
    # principal axes of a sample: a degree off the true ones widens w by about 4.5 m x sin(1 deg)
    np.testing.assert_allclose(sizes[0], [4.5, 1.8, 1.5], atol=0.1)
    assert sizes[1].tolist() == [0.0, 0.0, 0.0]  # one point: no extent


def test_objects_without_a_box_get_their_own_extent(box_model):
    assert box_size_input(box_model.encoder)
    objects = [_rectangle(4.5, 1.8, 1.5, 0.4, seed=1), _rectangle(0.6, 0.6, 1.7, 0.0, n=40, seed=2)]
    xyz = ObjectBatch.from_list(objects)
    implicit = box_model.embed(xyz)
    explicit = box_model.embed(append_box_size(xyz, points_box_size(xyz)))
    torch.testing.assert_close(implicit, explicit)
    other_box = box_model.embed(append_box_size(xyz, [[12.0, 2.9, 3.5], [0.3, 0.3, 0.3]]))
    assert (implicit - other_box).abs().max() > 1e-3  # the box channels reach the model


def test_label_frame_gives_the_model_the_detectors_box(box_model):
    """The same points in a larger box: label_frame passes that box, not the points' extent."""
    pts = _rectangle(2.0, 1.0, 1.0, 0.0, n=200, seed=3)
    pts[:, 0] += 10.0
    boxes = Boxes(np.array([[10.0, 0, 0], [10.0, 0, 0]]), np.array([[2.2, 1.2, 1.2], [8.0, 3.0, 3.0]]),
                  np.array([[0, 0, 0, 1.0], [0, 0, 0, 1.0]]), ('small', 'large'), 'lidar')
    pred = label_frame(pts, boxes, box_model, PipelineConfig(min_points=1, top_k=3))
    assert pred.num_points.tolist() == [200, 200]
    crop = ObjectBatch.from_list([pts - [10.0, 0, 0]] * 2)
    want = box_model.classify(append_box_size(crop, boxes.sizes), top_k=3)
    np.testing.assert_allclose(pred.scores, want.scores, atol=1e-5)
    assert not np.allclose(pred.scores[0], pred.scores[1])
