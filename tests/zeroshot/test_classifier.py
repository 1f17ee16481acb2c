"""ZeroShotClassifier with a real tiny PointBERT encoder and a real tiny OpenCLIP text space."""

import logging

import numpy as np
import pytest
import torch

from blendclip_core.checkpoint import ModelCard, save_checkpoint
from blendclip_core.classifier import VocabularyError, ZeroShotClassifier, select_objects
from blendclip_core.encoder import create_model
from blendclip_core.text_space import (
    CachedTextSpace,
    OpenClipSpace,
    TextEmbeddingCache,
    build_zero_shot_classifier,
)
from blendclip_core.types import ObjectBatch, ObjectStatus
from blendclip_core.vocabulary import DEFAULT_TEMPLATES, NUSCENES_10, prompts


@pytest.fixture
def classifier(tiny_clip, tmp_path):
    torch.manual_seed(0)
    encoder = create_model('pointbert-tiny')
    return ZeroShotClassifier(encoder, OpenClipSpace(tiny_clip), NUSCENES_10, device='cpu',
                              cache_dir=tmp_path / 'vocab')


def _objects(rng, sizes):
    return ObjectBatch.from_list([rng.normal(size=(n, 3)).astype(np.float32) for n in sizes])


def test_classify_with_empty_objects(classifier):
    batch = _objects(np.random.default_rng(0), [50, 0, 3, 0, 200])
    pred = classifier.classify(batch)
    assert pred.status.tolist() == [0, 1, 0, 1, 0]
    assert pred.indices.shape == (5, 5) and pred.vocabulary == NUSCENES_10
    assert (pred.indices[[1, 3]] == -1).all() and np.isnan(pred.scores[[1, 3]]).all()
    ok = pred.status == ObjectStatus.OK
    assert ((pred.indices[ok] >= 0) & (pred.indices[ok] < 10)).all()
    assert (np.diff(pred.scores[ok], axis=1) <= 0).all() and (pred.scores[ok].sum(1) <= 1 + 1e-5).all()
    np.testing.assert_array_equal(pred.num_points, [50, 0, 3, 0, 200])
    assert pred.label(1) == '' and pred.label(0) in NUSCENES_10
    # each object's result does not depend on the others in the batch
    alone = classifier.classify(ObjectBatch.from_list([batch.object(4)]))
    np.testing.assert_array_equal(alone.indices[0], pred.indices[4])
    np.testing.assert_allclose(alone.scores[0], pred.scores[4], rtol=1e-4, atol=1e-6)
    everything = classifier.classify(_objects(np.random.default_rng(1), [0, 0]))
    assert everything.status.tolist() == [1, 1]


def test_scores_are_softmax_of_scaled_cosines(classifier):
    batch = _objects(np.random.default_rng(2), [40, 90])
    pred = classifier.classify(batch, top_k=10)
    emb = classifier.embed(batch)
    probs = torch.softmax(100.0 * emb @ classifier.vocabulary.embeddings.T, -1).numpy()
    np.testing.assert_allclose(pred.scores.sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.take_along_axis(probs, pred.indices, 1), pred.scores, rtol=1e-5)
    again = classifier.classify_embeddings(emb, top_k=10)
    np.testing.assert_array_equal(again.indices, pred.indices)


def test_given_status_is_kept_and_not_encoded(classifier):
    batch = _objects(np.random.default_rng(3), [30, 30, 30])
    status = np.array([ObjectStatus.OK, ObjectStatus.INVALID_BOX, ObjectStatus.OK])
    pred = classifier.classify(batch, status=status)
    assert pred.status.tolist() == [0, 2, 0] and (pred.indices[1] == -1).all()
    sub = select_objects(batch, np.array([True, False, True]))
    np.testing.assert_array_equal(sub.object(1), batch.object(2))


def test_vocabulary_change_without_encoder_reload(classifier, tiny_clip):
    encoder = classifier.encoder
    weights = {k: v.clone() for k, v in encoder.state_dict().items()}
    batch = _objects(np.random.default_rng(4), [64, 128])
    before = classifier.classify(batch)
    old_version = classifier.vocabulary_version

    classifier.set_vocabulary(['dog', 'kick scooter', 'car'])
    after = classifier.classify(batch)
    assert classifier.encoder is encoder
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in weights.items())
    assert after.vocabulary == ('dog', 'kick scooter', 'car') and after.indices.shape == (2, 3)
    assert after.vocabulary_version != old_version != ''
    assert classifier.templates == DEFAULT_TEMPLATES
    want = build_zero_shot_classifier(OpenClipSpace(tiny_clip), ['dog', 'kick scooter', 'car'],
                                      DEFAULT_TEMPLATES)
    torch.testing.assert_close(classifier.vocabulary.embeddings, want)
    probs = torch.softmax(100 * classifier.embed(batch) @ want.T, -1).numpy()
    np.testing.assert_array_equal(after.indices, np.argsort(-probs, 1))
    assert not np.array_equal(before.scores[:, :3], after.scores)

    for bad in ([], ['car', ' car '], ['car', 'Car'], ['car', ''], ['x' * 300], 'car', [3]):
        with pytest.raises(VocabularyError):
            classifier.set_vocabulary(bad)
    with pytest.raises(VocabularyError):
        classifier.set_vocabulary(['car'], ['no placeholder'])
    with pytest.raises(VocabularyError):
        classifier.set_vocabulary(['car'], ['{} and {}'])
    assert classifier.labels == ('dog', 'kick scooter', 'car')  # failed changes left it as it was


def test_cuda_request_falls_back_to_cpu(tiny_clip, caplog):
    if torch.cuda.is_available():
        pytest.skip('CUDA is available here')
    with caplog.at_level(logging.WARNING):
        clf = ZeroShotClassifier(create_model('pointbert-tiny'), OpenClipSpace(tiny_clip), ['car', 'bus'],
                                 device='cuda')
    assert clf.device.type == 'cpu' and 'CUDA is not available' in caplog.text


def test_unknown_precision_is_a_clear_error(tiny_clip):
    from blendclip_core.classifier import ClassifierError

    with pytest.raises(ClassifierError, match='precision'):
        ZeroShotClassifier(create_model('pointbert-tiny'), OpenClipSpace(tiny_clip), ['car'], precision='fp8')


def test_dimension_mismatch_is_a_clear_error(minilm):
    from blendclip_core.classifier import ClassifierError

    with pytest.raises(ClassifierError, match='64 dimensions'):
        ZeroShotClassifier(create_model('pointbert-tiny'), minilm, ['car'])


def test_from_checkpoint_uses_card_and_shipped_text_cache(classifier, tiny_clip, tmp_path):
    spec = f'openclip:{tiny_clip}:none'
    card = ModelCard(name='tiny-test', text_space=spec, prompt_templates=['point cloud of a {}.'],
                     logit_scale=42.0, inference_precision='fp32')
    path = save_checkpoint(tmp_path / 'tiny.pt', classifier.encoder, card)
    labels = ['car', 'pedestrian', 'barrier']
    clf = ZeroShotClassifier.from_checkpoint(path, labels, device='cpu')
    assert clf.precision == 'fp32' and classifier.precision == 'bf16'
    assert clf.logit_scale == 42.0 and clf.text_space_spec == spec and clf.model_name == 'tiny-test'
    assert clf.templates == ('point cloud of a {}.',) and clf.labels == tuple(labels)
    batch = _objects(np.random.default_rng(5), [100])
    torch.testing.assert_close(clf.embed(batch), classifier.embed(batch))

    texts = [p for lab in labels for p in prompts(lab, ['point cloud of a {}.'])]
    TextEmbeddingCache.from_space(OpenClipSpace(tiny_clip), texts).save(tmp_path / 'tiny.text_cache.npz')
    shipped = ZeroShotClassifier.from_checkpoint(path, vocabulary=labels, device='cpu')
    assert isinstance(shipped.text_space, CachedTextSpace) and shipped.text_space.loads == 0
    np.testing.assert_array_equal(shipped.classify(batch).indices, clf.classify(batch).indices)
    shipped.set_vocabulary(['car', 'dog'])  # 'dog' is not shipped: the real space loads now
    assert shipped.text_space.loads == 1


def test_vocabulary_swaps_are_atomic_under_concurrent_classify(classifier):
    import threading

    batch = _objects(np.random.default_rng(6), [40, 80, 20])
    vocabularies = [['car', 'bus'], ['dog', 'bench', 'stroller', 'traffic sign']]
    versions = {}
    for v in vocabularies:
        versions[classifier.set_vocabulary(v).version] = tuple(v)
    stop, errors, seen = threading.Event(), [], set()

    def worker():
        while not stop.is_set():
            pred = classifier.classify(batch)
            seen.add(pred.vocabulary_version)
            if versions.get(pred.vocabulary_version) != pred.vocabulary or pred.indices.max() >= len(
                    pred.vocabulary):
                errors.append(pred.vocabulary_version)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        for i in range(12):
            classifier.set_vocabulary(vocabularies[i % 2])
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors and seen <= set(versions)
