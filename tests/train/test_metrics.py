"""Zero-shot metrics by hand, and the PNGs people look at."""

import numpy as np
import pytest

from blendclip_core.evaluation.metrics import confusion_matrix, zero_shot_metrics
from blendclip_core.evaluation.plots import plot_confusion_matrix, plot_training_curves


def test_topk_overall_and_per_class_by_hand():
    names = ['car', 'bus', 'cone']
    scores = np.array([[0.9, 0.1, 0.0],   # car -> car
                       [0.2, 0.7, 0.1],   # car -> bus (car second)
                       [0.1, 0.8, 0.1],   # bus -> bus
                       [0.5, 0.1, 0.4],   # cone -> car (cone second)
                       [0.3, 0.6, 0.1]])  # label -1 (not in vocabulary): always a miss
    labels = np.array([0, 0, 1, 2, -1])
    r = zero_shot_metrics(scores, labels, names, topk=(1, 2))
    assert r.overall[1] == pytest.approx(2 / 5) and r.overall[2] == pytest.approx(4 / 5)
    assert r.per_class[1].tolist() == [0.5, 1.0, 0.0]
    assert r.mean_per_class[1] == pytest.approx(0.5) and r.mean_per_class[2] == pytest.approx(1.0)
    assert r.counts.tolist() == [2, 1, 1]
    assert r.confusion.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
    assert r.scalars('val/') == {'val/top1': 0.4, 'val/mean_class_top1': 0.5, 'val/top2': 0.8,
                                 'val/mean_class_top2': 1.0}
    table = r.table()
    assert '| car | 2 | 50.0 | 100.0 |' in table and '**mean per class**' in table
    assert r.to_dict()['per_class']['cone'] == {'n': 1, 'top1': 0.0, 'top2': 1.0}


def test_absent_classes_are_nan_not_zero():
    r = zero_shot_metrics(np.eye(3)[[0, 0]], np.array([0, 0]), ['a', 'b', 'c'], topk=(1, 5))
    assert r.overall[5] == 1.0  # k larger than the vocabulary
    assert np.isnan(r.per_class[1][1]) and r.mean_per_class[1] == 1.0
    assert r.to_dict()['per_class']['b']['top1'] is None
    with pytest.raises(ValueError):
        zero_shot_metrics(np.zeros((2, 2)), np.array([0, 1]), ['a', 'b', 'c'])


def test_confusion_matrix_drops_out_of_range():
    cm = confusion_matrix(np.array([0, 1, 5, 1]), np.array([0, 1, 1, -1]), 2)
    assert cm.tolist() == [[1, 0], [0, 1]]


def test_plots_are_written(tmp_path):
    p = plot_confusion_matrix(np.array([[3, 1], [0, 4]]), ['car', 'bus'], tmp_path / 'cm.png')
    records = [{'kind': 'train', 'step': s, 'point_text_loss': 3 - s / 10, 'real_fraction': 0.1}
               for s in range(1, 11)] + [{'kind': 'eval', 'step': 10, 'val/top1': 0.5}]
    q = plot_training_curves(records, tmp_path / 'curves.png')
    for path in (p, q):
        assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and path.stat().st_size > 5000
