"""Depth-view zero-shot classification (CLIP2Point) with a real tiny random OpenCLIP model built offline:
the renders by hand-computed pixels, per-view depth normalisation, batching, the view-averaged image
embeddings, classification of 1..8,192-point objects, the dual path, label_frame and predict."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from blendclip_core.checkpoint import ModelCard, save_checkpoint
from blendclip_core.classifier import ClassifierError, ZeroShotClassifier
from blendclip_core.depth_render import DepthRenderConfig, project_depth, render_depth, view_rotations
from blendclip_core.depth_views import (
    DEPTH_TEMPLATES,
    CombinedClassifier,
    DepthViewClassifier,
    load_classifier,
)
from blendclip_core.encoder import create_model
from blendclip_core.pipeline import PipelineConfig, label_frame
from blendclip_core.predict import predict
from blendclip_core.text_space import OpenClipSpace, create_text_space
from blendclip_core.types import ObjectBatch, ObjectStatus
from blendclip_core.vocabulary import NUSCENES_10

# One camera on +x looking at the origin, at sqrt(2) radii: the unit sphere's image half-width is 1
# (focal 1), so a normalised point (x, y, z) lands at ndc (y, z) / (sqrt(2) - x).
FRONT = DepthRenderConfig(views=((0, 0),), resolution=8, camera_distance=math.sqrt(2), densify_kernel=1,
                          smooth_sigma=0.0)


@pytest.fixture(scope='module')
def depth_classifier(tiny_clip):
    return DepthViewClassifier(OpenClipSpace(tiny_clip).load(), NUSCENES_10, device='cpu')


def _one_object(points) -> tuple[torch.Tensor, torch.Tensor]:
    pts = torch.tensor(points, dtype=torch.float32)
    return pts, torch.zeros(len(pts), dtype=torch.long)


def test_known_points_land_on_hand_computed_pixels_with_depth_normalised_per_view():
    # Square corners at x=0, the nearest point at +x (centre pixel), the farthest at (-1, 1, 0); all at
    # radius sqrt(2), so normalised they lie on the unit sphere and the bounding box stays centred.
    pts, idx = _one_object([[0, 1, 1], [0, -1, 1], [0, 1, -1], [0, -1, -1], [1, 0, 0], [-1, 1, 0]])
    image = project_depth(pts, idx, 1, FRONT)[0, 0]
    want = torch.zeros(8, 8)
    # corners: ndc (+-0.5, +-0.5) -> pixels 2 / 6; depth sqrt(2), half way between nearest and farthest
    for row, col in [(2, 6), (2, 2), (6, 6), (6, 2)]:
        want[row, col] = 1 - 0.8 * 0.5
    want[4, 4] = 1.0  # nearest: depth sqrt(2) - 1/sqrt(2)
    want[4, 5] = 0.2  # farthest: ndc (1/3, 0), depth sqrt(2) + 1/sqrt(2)
    torch.testing.assert_close(image, want)


def test_every_view_is_normalised_on_its_own_hits():
    rng = np.random.default_rng(0)
    pts = torch.from_numpy(rng.normal(size=(500, 3)).astype(np.float32) * [4.0, 1.5, 0.8])
    config = DepthRenderConfig(resolution=32, densify_kernel=1, smooth_sigma=0.0)
    image = project_depth(pts, torch.zeros(500, dtype=torch.long), 1, config)[0]
    assert image.shape == (len(config.views), 32, 32)
    for view in image:
        hits = view[view > 0]
        assert hits.max() == 1.0 and math.isclose(hits.min().item(), config.far_intensity, abs_tol=1e-6)


def test_view_rotations_are_proper_and_look_at_the_object():
    rot = view_rotations(DepthRenderConfig().views)
    torch.testing.assert_close(rot @ rot.transpose(1, 2), torch.eye(3).expand_as(rot), atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(len(rot)))
    assert (rot[:, 1, 2] > 0).all()  # the camera's up has the world's up in it: objects stand upright


def test_densify_fills_the_window_and_smoothing_spreads_it():
    pts, _ = _one_object([[0.0, 0.0, 0.0]])
    offsets = torch.tensor([0, 1, 1])  # a one-point object and an empty one
    dense = render_depth(pts, offsets, DepthRenderConfig(views=((0, 0),), resolution=16, smooth_sigma=0.0))
    assert dense.shape == (2, 1, 16, 16) and dense[1].abs().sum() == 0
    assert (dense[0, 0] == 1).sum() == 25 and dense[0, 0, 6:11, 6:11].eq(1).all()  # 5x5 around (8, 8)
    smooth = render_depth(pts, offsets, DepthRenderConfig(views=((0, 0),), resolution=16), size=32)
    assert smooth.shape == (2, 1, 32, 32) and 0 < smooth[0, 0].max() < 1
    assert (smooth[0, 0] > 0).sum() > 4 * 25 and smooth.min() >= 0


def test_a_batch_renders_each_object_as_if_alone():
    rng = np.random.default_rng(1)
    objects = [rng.normal(size=(n, 3)).astype(np.float32) * s for n, s in [(40, 1.0), (3, 5.0), (900, 0.3)]]
    batch = ObjectBatch.from_list(objects)
    config = DepthRenderConfig()
    together = render_depth(torch.from_numpy(batch.points), torch.from_numpy(batch.offsets), config)
    for i, obj in enumerate(objects):
        alone = render_depth(torch.from_numpy(obj), torch.tensor([0, len(obj)]), config)
        torch.testing.assert_close(together[i], alone[0])


def test_a_bf16_caller_renders_the_float32_images():
    """The classifier runs under bf16 autocast on a GPU: the projection stays float32 (on an H100 the
    bf16 depths met the float32 z-buffer and the first frame failed)."""
    obj = np.random.default_rng(3).normal(size=(500, 3)).astype(np.float32)
    args = torch.from_numpy(obj), torch.tensor([0, len(obj)]), DepthRenderConfig()
    with torch.autocast('cpu', torch.bfloat16):
        mixed = render_depth(*args)
    torch.testing.assert_close(mixed.float(), render_depth(*args), atol=2e-2, rtol=0)

def test_embedding_is_the_normalised_mean_of_the_views_image_embeddings(depth_classifier):
    batch = ObjectBatch.from_list([np.random.default_rng(2).normal(size=(300, 3)).astype(np.float32)])
    encoder = depth_classifier.encoder
    images = encoder.images(batch)[0]  # (V, S, S)
    assert images.shape[-1] == 64  # the tiny model's input size
    pixels = (images[:, None].expand(-1, 3, -1, -1) - encoder.pixel_mean) / encoder.pixel_std
    with torch.inference_mode():
        views = torch.nn.functional.normalize(encoder.visual(pixels), dim=-1)
    want = torch.nn.functional.normalize(views.mean(0, keepdim=True), dim=-1)
    torch.testing.assert_close(depth_classifier.embed(batch), want, atol=1e-5, rtol=1e-5)


def test_one_label_per_object_for_1_to_8192_points(depth_classifier):
    rng = np.random.default_rng(3)
    sizes = [1, 2, 0, 37, 1024, 8192]
    batch = ObjectBatch.from_list([rng.normal(size=(n, 3)).astype(np.float32) for n in sizes])
    pred = depth_classifier.classify(batch, top_k=3)
    assert pred.status.tolist() == [0, 0, ObjectStatus.NO_POINTS, 0, 0, 0]
    ok = pred.status == ObjectStatus.OK
    assert (pred.indices[ok] >= 0).all() and np.isfinite(pred.scores[ok]).all()
    assert (pred.indices[~ok] == -1).all() and pred.vocabulary == NUSCENES_10
    assert depth_classifier.templates == DEPTH_TEMPLATES
    emb = depth_classifier.embed(batch)
    probs = torch.softmax(depth_classifier.logit_scale * emb @ depth_classifier.vocabulary.embeddings.T, -1)
    np.testing.assert_allclose(pred.scores[ok, 0], probs[torch.from_numpy(ok)].max(-1).values, rtol=1e-5)
    assert math.isclose(depth_classifier.logit_scale, 1 / 0.07, rel_tol=1e-5)  # the CLIP model's own


def test_a_space_without_an_image_tower_is_refused():
    with pytest.raises(ClassifierError, match='image tower'):
        DepthViewClassifier(create_text_space('toy', dim=16), ['car'])


def test_label_frame_runs_the_depth_views_on_the_real_sweep(depth_classifier, nuscenes_sweep):
    points, boxes, _ = nuscenes_sweep
    pred = label_frame(points, boxes, depth_classifier, PipelineConfig(min_points=5))
    ok = pred.status == ObjectStatus.OK
    assert len(pred) == len(boxes) and ok.sum() >= 10
    assert (pred.indices[ok, 0] >= 0).all() and (pred.num_points[ok] >= 5).all()
    assert (pred.status[pred.num_points < 5] == ObjectStatus.NO_POINTS).all()


@pytest.fixture(scope='module')
def tiny_checkpoint(tiny_clip, tmp_path_factory):
    torch.manual_seed(0)
    card = ModelCard(name='tiny-test', text_space=f'openclip:{tiny_clip}:none', inference_precision='fp32')
    return save_checkpoint(tmp_path_factory.mktemp('ckpt') / 'tiny.pt', create_model('pointbert-tiny'), card)


def test_both_paths_average_their_logits(tiny_checkpoint, tiny_clip):
    combined = load_classifier(tiny_checkpoint, ['car', 'bus', 'tree'], classifier='both', device='cpu')
    assert isinstance(combined, CombinedClassifier) and combined.labels == ('car', 'bus', 'tree')
    points, depth = combined.paths
    assert isinstance(points, ZeroShotClassifier) and isinstance(depth, DepthViewClassifier)
    batch = ObjectBatch.from_list([np.random.default_rng(4).normal(size=(n, 3)).astype(np.float32)
                                   for n in (5, 400)])
    pred = combined.classify(batch, top_k=3)
    with torch.inference_mode():
        mean = (points.vocabulary_logits(batch, points.vocabulary)
                + depth.vocabulary_logits(batch, depth.vocabulary)) / 2
    np.testing.assert_allclose(pred.scores, torch.softmax(mean, -1).sort(-1, descending=True).values,
                               rtol=1e-5)
    combined.set_vocabulary(['dog', 'car'])
    assert points.labels == depth.labels == ('dog', 'car')
    assert combined.classify(batch).indices.shape == (2, 2)


def test_load_classifier_and_predict_select_the_kind(tiny_checkpoint, tiny_clip):
    spec = f'openclip:{tiny_clip}:none'
    assert type(load_classifier(tiny_checkpoint, classifier='points', device='cpu')) is ZeroShotClassifier
    depth = load_classifier(None, ['car'], classifier='depth_views', text_space=spec, device='cpu')
    assert isinstance(depth, DepthViewClassifier) and depth.text_space_spec == spec
    with pytest.raises(ClassifierError, match='classifier must be one of'):
        load_classifier(tiny_checkpoint, classifier='images')
    objects = [np.random.default_rng(5).normal(size=(n, 3)) for n in (1, 60)]
    labels, scores = predict(objects, ['car', 'bus'], classifier='depth_views', depth_space=spec,
                             device='cpu')
    assert len(labels) == 2 and set(labels) <= {'car', 'bus'} and ((scores > 0) & (scores <= 1)).all()


def test_label_frames_cli_labels_the_real_sample_with_depth_views(tiny_clip, tmp_path, capsys):
    from training.label_frames import main

    sample = Path(__file__).resolve().parents[2] / 'data' / 'nuscenes_sample'
    code = main([str(sample), '--vocabulary', 'nuscenes', '--out', str(tmp_path), '--device', 'cpu',
                 '--classifier', 'depth_views', '--depth-space', f'openclip:{tiny_clip}:none'])
    assert code == 0, capsys.readouterr().err
    labels = json.loads((tmp_path / 'labels.json').read_text())
    assert labels['classifier'] == 'depth_views' and len(labels['objects']) == 69
    ok = [o for o in labels['objects'] if o['status'] == 'OK']
    assert len(ok) >= 10 and all(o['label'] in NUSCENES_10 for o in ok)


def test_the_nodes_loader_builds_each_kind_from_its_parameter(tiny_checkpoint, tiny_clip, nuscenes_sweep):
    from blendclip_ros.node.model import load_model
    from blendclip_ros.node.params import NodeParams

    spec = f'openclip:{tiny_clip}:none'
    kinds = {}
    for kind in ('points', 'depth_views', 'both'):
        params = NodeParams(checkpoint=str(tiny_checkpoint), classifier=kind, text_space=spec, device='cpu',
                            vocabulary=('car', 'pedestrian', 'barrier'))
        kinds[kind] = load_model(params)
    assert type(kinds['points'].classifier) is ZeroShotClassifier
    assert isinstance(kinds['depth_views'].classifier, DepthViewClassifier)
    assert isinstance(kinds['both'].classifier, CombinedClassifier)
    points, boxes, _ = nuscenes_sweep
    for model in kinds.values():
        pred = label_frame(points, boxes, model.classifier, PipelineConfig())
        assert (pred.indices[pred.status == ObjectStatus.OK, 0] >= 0).all()
        model.set_vocabulary(['car', 'truck'], ['a depth map of a {}.'])
        assert model.labels == ('car', 'truck') and model.templates == ('a depth map of a {}.',)


def test_benchmark_writes_the_frame_cost_key(tiny_clip, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / 'benchmarks'))
    import depth_views_bench

    out = tmp_path / 'depth_views.json'
    assert depth_views_bench.main(['--device', 'cpu', '--model', tiny_clip, '--reps', '2',
                                   '--out', str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc['device'].startswith('cpu') and doc['results']['views_per_object'] == 6
    results = doc['results']
    assert results['depth_views_render64_ms_p50'] > 0 and results['depth_views_frame64_ms_p50'] > 0
