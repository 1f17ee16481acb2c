"""The classifier turns on the encoder's CUDA graphs on CUDA only; on the CPU nothing changes.
The text space is served from a cache of fixed unit vectors (runs where no text model is installed,
e.g. the GPU machine); the graph switch does not depend on the text side."""

import numpy as np
import pytest
import torch
from encoder_testutil import batch_of, random_objects

from blendclip_core.classifier import ZeroShotClassifier
from blendclip_core.encoder import create_model
from blendclip_core.text_space.cache import CachedTextSpace, TextEmbeddingCache
from blendclip_core.vocabulary import DEFAULT_TEMPLATES, prompts

LABELS = ['car', 'pedestrian', 'bicycle']
SPEC = 'test:fixed-unit-vectors'


def _classifier(device):
    texts = [t for label in LABELS for t in prompts(label, DEFAULT_TEMPLATES)]
    vecs = np.random.default_rng(0).normal(size=(len(texts), 64)).astype(np.float32)
    space = CachedTextSpace(SPEC, TextEmbeddingCache(SPEC, 'seed0', 64, dict(zip(texts, vecs))))
    torch.manual_seed(0)
    encoder = create_model('pointbert-tiny', embed_dim=64)
    return ZeroShotClassifier(encoder, space, LABELS, device=device, top_k=2)


def test_cpu_classifier_leaves_graphs_off():
    clf = _classifier('cpu')
    assert clf.encoder._graphs is None
    objs = random_objects([0, 5, 300], seed=3)
    emb = clf.embed(batch_of(objs))
    with torch.no_grad():
        ref = torch.nn.functional.normalize(clf.encoder.encode(batch_of(objs)), dim=-1)
    assert torch.equal(emb, ref)  # the same eager float32 path as a direct call
    assert clf.encoder._graphs is None
    pred = clf.classify(batch_of(objs))
    assert pred.status.tolist() == [1, 0, 0] and pred.label(1) in LABELS


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_classifier_uses_graphs():
    clf = _classifier('cuda')
    assert clf.encoder._graphs is not None
    objs = random_objects([0, 5, 300, 1024], seed=4)
    a = clf.embed(batch_of(objs))
    b = clf.embed(batch_of(objs))
    assert any(k != '_weights' and r for k, r in clf.encoder._graphs.items())  # a graph was captured
    clf.encoder.enable_cuda_graphs(False)
    with torch.inference_mode(), torch.autocast('cuda', torch.bfloat16):
        eager = torch.nn.functional.normalize(clf.encoder.encode(batch_of(objs)), dim=-1)
    assert torch.equal(a, b)
    torch.testing.assert_close(a, eager, atol=2e-2, rtol=2e-2)
