"""label_frame end to end on the real nuScenes sweep: a tiny encoder, the real MiniLM text space."""

import numpy as np
import pytest
import torch

from blendclip_core.classifier import ZeroShotClassifier
from blendclip_core.encoder import create_model
from blendclip_core.geometry import Boxes
from blendclip_core.pipeline import PipelineConfig, label_frame, run_frame
from blendclip_core.types import ObjectStatus
from blendclip_core.vocabulary import NUSCENES_10


@pytest.fixture(scope='module')
def classifier(minilm):
    torch.manual_seed(0)
    encoder = create_model('pointbert-tiny', embed_dim=384)
    return ZeroShotClassifier(encoder, minilm, NUSCENES_10, device='cpu', top_k=3)


def test_label_frame_on_real_sweep(nuscenes_sweep, classifier):
    points, boxes, objects = nuscenes_sweep
    recount = np.array([o['points_in_box_recount'] for o in objects])
    pred = label_frame(points, boxes, classifier, PipelineConfig(top_k=3, min_points=1))
    assert len(pred) == 69 and pred.vocabulary == NUSCENES_10
    assert pred.vocabulary_version == classifier.vocabulary_version
    np.testing.assert_array_equal(pred.num_points, recount)
    np.testing.assert_array_equal(pred.status, np.where(recount > 0, ObjectStatus.OK, ObjectStatus.NO_POINTS))
    ok = recount > 0
    assert ((pred.indices[ok] >= 0) & (pred.indices[ok] < 10)).all() and (pred.indices[~ok] == -1).all()
    assert set(pred.timings) == {'crop_ms', 'model_ms', 'total_ms'} and min(pred.timings.values()) >= 0
    assert pred.timings['total_ms'] >= pred.timings['model_ms']
    again = label_frame(points, boxes, classifier, PipelineConfig(top_k=3, min_points=1))
    np.testing.assert_array_equal(again.indices, pred.indices)  # deterministic


def test_statuses_merge_and_threshold(nuscenes_sweep, classifier):
    points, boxes, objects = nuscenes_sweep
    bad = Boxes.from_yaw([[0, 0, 0]], [[0, 1, 1]], [0], ids=['bad'])
    all_boxes = Boxes(np.vstack([boxes.centers, bad.centers]), np.vstack([boxes.sizes, bad.sizes]),
                      np.vstack([boxes.quaternions, bad.quaternions]), boxes.ids + bad.ids)
    recount = np.array([o['points_in_box_recount'] for o in objects] + [0])
    frame = run_frame(points, all_boxes, classifier, PipelineConfig(min_points=20, score_threshold=0.999))
    pred = frame.predictions
    assert pred.status[-1] == ObjectStatus.INVALID_BOX
    few = (recount < 20)[:-1]
    assert (pred.status[:-1][few] == ObjectStatus.NO_POINTS).all()
    big = np.flatnonzero(~few)
    assert len(big) == 7
    # an untrained model is never 99.9 % sure: classified, labels kept, but below the threshold
    assert (pred.status[big] == ObjectStatus.BELOW_THRESHOLD).all()
    assert (pred.indices[big] >= 0).all() and np.isfinite(pred.scores[big]).all()
    assert frame.cropped.points_in_box[:-1].tolist() == recount[:-1].tolist()

    # the node's parameter name works as an alias of margin
    grown = label_frame(points, boxes, classifier, PipelineConfig(box_margin=0.5, min_points=1))
    assert (grown.num_points >= recount[:-1]).all() and grown.num_points.sum() > recount.sum()


def test_bad_config_is_rejected():
    for kwargs in ({'score_threshold': 1.5}, {'min_points': 0}, {'margin': float('inf')}, {'top_k': 0}):
        with pytest.raises(ValueError):
            PipelineConfig(**kwargs)


def test_empty_frames(classifier):
    boxes = Boxes.from_yaw([[0, 0, 0], [1, 1, 1]], [[1, 1, 1], [-1, 1, 1]], [0, 0])
    pred = label_frame(np.zeros((0, 4), np.float32), boxes, classifier)
    assert pred.status.tolist() == [ObjectStatus.NO_POINTS, ObjectStatus.INVALID_BOX]
    assert (pred.indices == -1).all() and pred.indices.shape == (2, 3)
    none = label_frame(np.ones((10, 3), np.float32), Boxes.empty(), classifier)
    assert len(none) == 0 and none.indices.shape == (0, 3) and none.vocabulary == NUSCENES_10


def test_whole_cloud_boxes_hand_the_encoder_a_bounded_batch(nuscenes_sweep, classifier):
    """Issue #14: 46 boxes over the whole cloud (too large: INVALID_BOX) and 46 in-limit boxes that
    each hold most of it: the encoder gets at most MAX_FRAME_POINTS points, not 46 x max_points."""
    from blendclip_core.preprocess import MAX_FRAME_POINTS

    points, boxes, objects = nuscenes_sweep
    lo, hi = points[:, :3].min(0), points[:, :3].max(0)
    rng = np.random.default_rng(0)
    whole = Boxes.from_yaw(np.tile((lo + hi) / 2, (46, 1)), np.tile(hi - lo + 1, (46, 1)),
                           rng.uniform(-3, 3, 46))
    ground = Boxes.from_yaw(np.column_stack([rng.uniform(-2, 2, (46, 2)), np.full(46, -0.8)]),
                            np.tile([29.0, 29.0, 2.3], (46, 1)), rng.uniform(-3, 3, 46))
    mm = Boxes(boxes.centers, boxes.sizes * 1000, boxes.quaternions, boxes.ids)
    parts = (whole, ground, mm)
    frame_boxes = Boxes(np.vstack([b.centers for b in parts]), np.vstack([b.sizes for b in parts]),
                        np.vstack([b.quaternions for b in parts]), tuple(str(i) for i in range(46 + 46 + 69)))
    frame = run_frame(points, frame_boxes, classifier)
    pred = frame.predictions
    assert (pred.status[:46] == ObjectStatus.INVALID_BOX).all()
    assert (pred.status[92:] == ObjectStatus.INVALID_BOX).all()
    assert (pred.status[46:92] == ObjectStatus.OK).all()
    # num_points is what the encoder was given (the packed batch's counts)
    assert 0 < pred.num_points.sum() <= MAX_FRAME_POINTS
    assert pred.num_points.sum() == frame.cropped.batch.points.shape[0]
    assert frame.cropped.points_in_box[46:92].min() > 10_000  # each box did hold most of the cloud
