"""Exported encoders (AOTInductor CPU, ONNX Runtime CPU) against the eager model: embeddings within
cosine 0.999 and the same top-1 labels, on the real nuScenes sweep and random objects of 1 to 8,192
points; the loaded artefact goes through label_frame as the eager classifier does."""

import numpy as np
import onnx
import pytest
import torch

from blendclip_core.export import load_exported
from blendclip_core.pipeline import run_frame
from blendclip_core.types import ObjectBatch, ObjectStatus

FORMATS = ('aoti', 'onnx')
COUNTS = [1, 2, 3, 5, 16, 31, 32, 33, 64, 100, 257, 511, 1000, 2047, 3000, 4096, 6000, 8191, 8192]


@pytest.fixture(scope='module')
def loaded(exported):
    return {fmt: load_exported(exported[fmt]) for fmt in FORMATS}


def _random_objects(counts, seed):
    rng = np.random.default_rng(seed)
    objs = []
    for c in counts:  # box-surface samples of random sizes, like a crop
        size = rng.uniform(0.3, 6.0, 3)
        p = rng.uniform(-0.5, 0.5, (c, 3))
        p[np.arange(c), rng.integers(0, 3, c)] = np.sign(rng.uniform(-1, 1, c)) * 0.5
        objs.append((p * size).astype(np.float32))
    return ObjectBatch.from_list(objs)


def _assert_equivalent(eager, clf, batch):
    a, b = eager.embed(batch), clf.embed(batch)
    cos = (a * b).sum(1)
    assert cos.min().item() >= 0.999, f'min cosine {cos.min().item()}'
    pe, px = eager.classify(batch, top_k=1), clf.classify(batch, top_k=1)
    np.testing.assert_array_equal(pe.indices, px.indices)
    np.testing.assert_allclose(pe.scores, px.scores, atol=1e-3)


@pytest.mark.parametrize('fmt', FORMATS)
def test_nuscenes_sweep_matches_eager(fmt, loaded, eager, nuscenes_sweep):
    points, boxes = nuscenes_sweep
    ref = run_frame(points, boxes, eager)
    out = run_frame(points, boxes, loaded[fmt])  # the loaded artefact takes the classifier's place
    ok = ref.predictions.status == ObjectStatus.OK
    assert ok.sum() >= 25  # the sweep's boxes with >= min_points (5) points: 29
    np.testing.assert_array_equal(out.predictions.status, ref.predictions.status)
    np.testing.assert_array_equal(out.predictions.indices[:, 0], ref.predictions.indices[:, 0])
    from blendclip_core.classifier import select_objects
    _assert_equivalent(eager, loaded[fmt], select_objects(ref.cropped.batch, ok))


@pytest.mark.parametrize('fmt', FORMATS)
def test_random_objects_of_1_to_8192_points(fmt, loaded, eager):
    _assert_equivalent(eager, loaded[fmt], _random_objects(COUNTS, seed=1))
    _assert_equivalent(eager, loaded[fmt], _random_objects(COUNTS[::-1] + [9000], seed=2))  # 9000: capped


@pytest.mark.parametrize('fmt', FORMATS)
@pytest.mark.parametrize('count', [1, 8192])
def test_one_object_alone(fmt, count, loaded, eager):
    _assert_equivalent(eager, loaded[fmt], _random_objects([count], seed=count))


@pytest.mark.parametrize('fmt', FORMATS)
def test_empty_objects_get_zero_rows(fmt, loaded):
    batch = ObjectBatch.from_list([np.zeros((0, 3), np.float32), _random_objects([40], 3).points])
    emb = loaded[fmt].encoder.encode(batch)
    assert (emb[0] == 0).all() and emb[1].norm() > 0
    assert loaded[fmt].classify(batch).status.tolist() == [ObjectStatus.NO_POINTS, ObjectStatus.OK]


def test_artefacts_describe_themselves(exported, eager, loaded):
    for fmt in FORMATS:
        clf = loaded[fmt]
        assert clf.labels == eager.labels and clf.templates == eager.templates
        assert clf.vocabulary_version == eager.vocabulary_version
        torch.testing.assert_close(clf.vocabulary.embeddings, eager.vocabulary.embeddings)
        assert clf.logit_scale == eager.logit_scale and clf.model_name == 'deploy-tiny'
    model = onnx.load(str(exported['onnx'] / 'encoder.onnx'))
    opset = {o.domain: o.version for o in model.opset_import}['']
    assert opset >= 18
    assert [i.name for i in model.graph.input][:2] == ['patches', 'centres']


def test_vocabulary_subset_and_unknown_labels(exported):
    from blendclip_core.export import ArtefactError

    clf = load_exported(exported['onnx'], ['car', 'pedestrian'])
    assert clf.labels == ('car', 'pedestrian')
    with pytest.raises(ArtefactError, match='no class embeddings'):
        load_exported(exported['onnx'], ['car', 'submarine'])
