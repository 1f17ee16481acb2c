"""PointEncoder behaviour on CPU: shapes, exact masking, determinism, edge objects, training mode."""

import numpy as np
import pytest
import torch
from encoder_testutil import batch_of, random_objects
from hypothesis import given, settings
from hypothesis import strategies as st

from blendclip_core.encoder import create_model
from blendclip_core.types import ObjectBatch


@pytest.fixture(scope='module')
def tiny():
    torch.manual_seed(0)
    return create_model('pointbert-tiny').eval()


def _enc(model, objs, **kw):
    with torch.no_grad():
        return model.encode(batch_of(objs, **kw))


def test_shapes_dtype_and_zero_rows(tiny):
    objs = random_objects([0, 3, 8000, 1, 0, 64], seed=1)
    e = _enc(tiny, objs)
    assert e.shape == (6, tiny.embed_dim) and e.dtype == torch.float32
    assert torch.isfinite(e).all()
    assert (e[[0, 4]] == 0).all() and (e[[1, 2, 3, 5]].norm(dim=1) > 0).all()


def test_all_empty_and_no_objects(tiny):
    e = _enc(tiny, [np.zeros((0, 3), np.float32)] * 3)
    assert e.shape == (3, tiny.embed_dim) and (e == 0).all()
    assert _enc(tiny, []).shape == (0, tiny.embed_dim)


def test_padding_never_changes_an_embedding(tiny):
    """The same object alone and among larger ones (and empty ones) gives the same embedding."""
    small = random_objects([3, 40, 150], seed=2)
    big = random_objects([2000, 777, 5000], seed=3)
    batch = _enc(tiny, [big[0], small[0], np.zeros((0, 3), np.float32), small[1], big[1], small[2], big[2]])
    for i, row in zip(range(3), [1, 3, 5]):
        alone = _enc(tiny, [small[i]])[0]
        torch.testing.assert_close(batch[row], alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(batch[6], _enc(tiny, [big[2]])[0], atol=1e-5, rtol=0)


def test_deterministic_and_point_order_invariant(tiny):
    objs = random_objects([500, 90], seed=4)
    a, b = _enc(tiny, objs), _enc(tiny, objs)
    assert torch.equal(a, b)
    perm = np.random.default_rng(1).permutation(500)
    c = _enc(tiny, [objs[0][perm], objs[1]])
    torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)


def test_forward_padded_matches_encode(tiny):
    objs = random_objects([10, 300, 0], seed=5)
    pad = torch.zeros(3, 300, 3)
    for i, o in enumerate(objs):
        pad[i, :len(o)] = torch.from_numpy(o)
    pad[0, 10:] = 1e3  # garbage in padding must not matter
    with torch.no_grad():
        f = tiny(pad, torch.tensor([10, 300, 0]))
    torch.testing.assert_close(f, _enc(tiny, objs), atol=1e-5, rtol=0)


def test_objects_over_max_points_are_downsampled():
    torch.manual_seed(0)
    m = create_model('pointbert-tiny', max_points=256).eval()
    obj = random_objects([1000], seed=6)[0]
    e = _enc(m, [obj, obj[:256]])
    assert torch.isfinite(e).all() and not torch.equal(e[0], e[1])
    torch.testing.assert_close(e[0], _enc(m, [obj])[0], atol=1e-5, rtol=0)  # deterministic cap


def test_non_finite_points_are_a_clear_error(tiny):
    objs = random_objects([10, 20], seed=13)
    objs[1][4, 2] = np.nan
    with pytest.raises(ValueError, match=r'non-finite points in objects \[1\]'):
        _enc(tiny, objs)


def test_extra_channels_and_channel_errors():
    torch.manual_seed(0)
    m = create_model('pointbert-tiny', in_channels=4).eval()
    objs = random_objects([50, 7], seed=7, channels=4)
    e = _enc(m, objs, channels=4)
    assert e.shape == (2, m.embed_dim) and torch.isfinite(e).all()
    objs[0][:, 3] += 1.0
    assert not torch.allclose(e[0], _enc(m, objs, channels=4)[0])  # the channel is used
    with pytest.raises(ValueError, match='channels'):
        m.encode(ObjectBatch.from_list(random_objects([5], channels=3)))
    with pytest.raises(ValueError):
        m(torch.zeros(1, 5, 3), torch.tensor([5]))


def test_training_step_has_finite_grads():
    torch.manual_seed(0)
    m = create_model('pointbert-tiny', drop_path=0.2).train()
    e = m.encode(batch_of(random_objects([3, 64, 400, 0], seed=8)))
    e[:3].pow(2).sum().backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert m.tokenizer.first_conv[1].num_batches_tracked.item() == 1


def test_eval_bn_folding_matches_unfolded():
    torch.manual_seed(0)
    m = create_model('pointbert-tiny')
    m.train()
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        for s in range(3):
            m.encode(batch_of(random_objects([200, 90], seed=s)))
    m.eval()
    objs = random_objects([120, 33], seed=9)
    folded = _enc(m, objs)
    with torch.enable_grad():
        plain = m.encode(batch_of(objs)).detach()
    torch.testing.assert_close(folded, plain, atol=1e-5, rtol=1e-5)


def test_pointbert_s_frame_with_3_and_8000_points():
    torch.manual_seed(0)
    m = create_model('pointbert-s').eval()
    e = _enc(m, random_objects([3, 0, 8000], seed=10))
    assert e.shape == (3, 512) and torch.isfinite(e).all() and (e[1] == 0).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu_and_graphs_match_eager():
    torch.manual_seed(0)
    m = create_model('pointbert-s').eval()
    objs = random_objects([3, 0, 40, 1024, 4000, 8000, 9000], seed=11)
    cpu = _enc(m, objs)
    m.cuda()
    gpu = _enc(m, objs).cpu()
    torch.testing.assert_close(gpu, cpu, atol=2e-4, rtol=2e-3)
    for i in (0, 2):  # exact masking on the GPU path too (small objects alone: k_max = 1)
        torch.testing.assert_close(_enc(m, [objs[i]]).cpu()[0], gpu[i], atol=1e-5, rtol=0)
    with torch.no_grad(), torch.autocast('cuda', torch.bfloat16):
        eager = m.encode(batch_of(objs)).cpu()
        m.enable_cuda_graphs()
        graph1 = m.encode(batch_of(objs)).cpu()
        graph2 = m.encode(batch_of(objs)).cpu()
    with torch.inference_mode(), torch.autocast('cuda', torch.bfloat16):  # the classifier's mode
        graph3 = m.encode(batch_of(objs)).cpu()
    with torch.no_grad(), torch.autocast('cuda', torch.bfloat16):
        m.enable_cuda_graphs(False)
        m.enable_cuda_graphs()
        with torch.inference_mode():
            m.encode(batch_of(objs))  # buffers made in inference mode ...
        graph4 = m.encode(batch_of(objs)).cpu()  # ... then updated outside it
        assert all(r for k, r in m._graphs.items() if k != '_weights')  # re-enabled: captured again
        m.proj.weight.mul_(1.0)  # a weight update drops the graphs; they are captured again
        graph5 = m.encode(batch_of(objs)).cpu()
        assert all(r for k, r in m._graphs.items() if k != '_weights')
        m.enable_cuda_graphs(False)
    torch.randn(4, device='cuda')  # no failed capture left the CUDA RNG unusable
    assert torch.equal(graph1, graph3) and torch.equal(graph1, graph4) and torch.equal(graph1, graph5)
    assert torch.equal(graph1, graph2)
    torch.testing.assert_close(graph1, eager, atol=2e-2, rtol=2e-2)
    cos = torch.nn.functional.cosine_similarity(eager[[0, 2, 3, 4, 5, 6]], cpu[[0, 2, 3, 4, 5, 6]])
    assert (cos > 0.99).all(), cos


def test_rounded_caps_plan_matches_exact_plan(tiny):
    """The CUDA-graph path pads every size up (dummy objects, spare patch and token rows); checked
    here on the CPU: the real objects' embeddings must not change."""
    from blendclip_core.encoder.packing import Caps, graph_caps, make_plan

    objs = random_objects([3, 40, 700, 1, 2500], seed=12)
    b = batch_of(objs)
    pts, counts = torch.from_numpy(b.points), b.counts
    k = np.array([tiny.config.num_patches(c) for c in counts])
    caps = graph_caps(counts, k)
    assert caps.n >= 5 and caps.patches > k.sum() and caps.k_max >= k.max()
    exact, padded = make_plan(counts, tiny.config), make_plan(counts, tiny.config, caps)
    big = torch.cat([pts, torch.randn(caps.points - len(pts), 3)])  # spare rows hold garbage
    with torch.no_grad():
        a = tiny._forward_plan(pts, torch.from_numpy(exact.int_buffer), exact)
        p = tiny._forward_plan(big, torch.from_numpy(padded.int_buffer), padded)[:5]
    torch.testing.assert_close(p, a, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match='smaller'):
        make_plan(counts, tiny.config, Caps(n=2, k_max=1, patches=1, n_max=1, points=1))


def test_degenerate_objects(tiny):
    """Identical, collinear and two-point objects: finite, deterministic, independent of the batch."""
    same = np.tile(np.array([[1.0, 2.0, 0.5]], np.float32), (60, 1))
    line = np.stack([np.linspace(-2, 2, 80), np.zeros(80), np.zeros(80)], 1).astype(np.float32)
    two = np.array([[0, 0, 0], [1, 0, 0]], np.float32)
    objs = [same, line, two, random_objects([3000], seed=14)[0]]
    e = _enc(tiny, objs)
    assert torch.isfinite(e).all()
    assert torch.equal(e, _enc(tiny, objs))
    for i in range(3):
        torch.testing.assert_close(_enc(tiny, [objs[i]])[0], e[i], atol=1e-5, rtol=0)


@settings(max_examples=8, deadline=None)
@given(st.lists(st.integers(0, 700), min_size=1, max_size=6), st.integers(0, 5))
def test_masking_property(counts, pick):
    """Any mix of object sizes: each object's embedding equals its embedding alone."""
    torch.manual_seed(0)
    model = _tiny_for_property()
    objs = random_objects(counts, seed=len(counts) + pick)
    i = pick % len(counts)
    e = _enc(model, objs)
    alone = _enc(model, [objs[i]])[0]
    torch.testing.assert_close(e[i], alone, atol=1e-5, rtol=0)
    zero_rows = (e.abs().sum(1) == 0).numpy()
    assert torch.isfinite(e).all() and (zero_rows == (np.array(counts) == 0)).all()


_PROPERTY_MODEL = []


def _tiny_for_property():
    if not _PROPERTY_MODEL:
        torch.manual_seed(0)
        _PROPERTY_MODEL.append(create_model('pointbert-tiny').eval())
    return _PROPERTY_MODEL[0]


def test_inference_mode_and_no_grad_mix(tiny):
    """The classifier runs under inference_mode, evaluation code under no_grad: caches made in one
    must work in the other."""
    objs = random_objects([30, 300], seed=15)
    with torch.inference_mode():
        a = tiny.encode(batch_of(objs))
    b = _enc(tiny, objs)
    with torch.inference_mode():
        c = tiny.encode(batch_of(objs))
    assert torch.equal(a, b) and torch.equal(b, c)
