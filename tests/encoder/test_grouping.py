"""FPS and kNN against brute-force per-object references, and the Triton kernels against torch."""


import numpy as np
import pytest
import torch
from encoder_testutil import random_objects, run_in_triton_interpreter

from blendclip_core.encoder.grouping import farthest_point_sample, knn_group

COUNTS = [1, 3, 17, 40, 100, 257, 1000]


def _packed(objs):
    pts = torch.from_numpy(np.concatenate(objs))
    off = torch.from_numpy(np.concatenate([[0], np.cumsum([len(o) for o in objs])]))
    return pts, off


def _ref_fps(p, k):
    """Textbook FPS on one object, same float32 formula, start farthest from the centroid."""
    p = p.astype(np.float32)
    c = (p.sum(0) / np.float32(len(p))).astype(np.float32)

    def sq(q):
        d = p - q
        return d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] + d[:, 2] * d[:, 2]

    cur = int(np.argmax(sq(c)))
    dist = np.full(len(p), np.inf, np.float32)
    out = []
    for _ in range(k):
        out.append(cur)
        dist = np.minimum(dist, sq(p[cur]))
        cur = int(np.argmax(dist))
    return out


def test_fps_matches_reference():
    objs = random_objects(COUNTS, seed=1)
    pts, off = _packed(objs)
    k = torch.tensor([max(1, n // 16) for n in COUNTS])
    out = farthest_point_sample(pts, off, k, int(k.max()), max(COUNTS), backend='torch')
    for i, o in enumerate(objs):
        got = (out[i, :k[i]] - off[i]).tolist()
        assert got == _ref_fps(o, int(k[i]))
        assert (out[i, k[i]:] == off[i]).all()  # unused slots repeat the object's first point
        assert len(set(got)) == len(got)  # distinct centres


def test_fps_start_first_and_order_invariance():
    obj = random_objects([300], seed=2)[0]
    pts, off = _packed([obj])
    k = torch.tensor([18])
    a = farthest_point_sample(pts, off, k, 18, 300, start='first', backend='torch')
    assert a[0, 0] == 0
    perm = np.random.default_rng(0).permutation(300)
    b = farthest_point_sample(*_packed([obj[perm]]), k, 18, 300, backend='torch')
    c = farthest_point_sample(pts, off, k, 18, 300, backend='torch')
    assert perm[b[0]].tolist() == c[0].tolist()  # the same points, whatever their order


def test_knn_matches_brute_force():
    objs = random_objects(COUNTS, seed=3)
    pts, off = _packed(objs)
    k = torch.tensor([max(1, n // 16) for n in COUNTS])
    centres = farthest_point_sample(pts, off, k, int(k.max()), max(COUNTS), backend='torch')
    groups = knn_group(pts, off, centres, k, 32, max(COUNTS), backend='torch')
    assert groups.shape == (len(COUNTS), int(k.max()), 32)
    for i, o in enumerate(objs):
        for j in range(int(k[i])):
            c = o[int(centres[i, j] - off[i])].astype(np.float64)
            d = ((o.astype(np.float64) - c) ** 2).sum(1)
            got = (groups[i, j] - off[i]).numpy()
            assert ((got >= 0) & (got < len(o))).all()
            if len(o) >= 32:
                np.testing.assert_allclose(np.sort(d[got]), np.sort(d)[:32], rtol=1e-5, atol=1e-6)
                assert len(set(got.tolist())) == 32
            else:  # all points, then the nearest (the centre itself) repeated
                assert set(got.tolist()) == set(range(len(o)))
                assert (got[len(o):] == got[0]).all()
            assert got[0] == centres[i, j] - off[i]  # nearest of a centre is itself


def test_empty_inputs():
    pts = torch.zeros(0, 3)
    off = torch.zeros(1, dtype=torch.long)
    assert farthest_point_sample(pts, off, torch.zeros(0, dtype=torch.long), 0, 0).shape == (0, 0)


TRITON_SCRIPT = r"""
import numpy as np, torch
from blendclip_core.encoder.fused import add_rows_relu_
from blendclip_core.encoder.grouping import farthest_point_sample, knn_group
rng = np.random.default_rng(5)
for counts in ([1, 3, 40, 200, 0, 300], [3, 20, 40]):  # the second: one patch each (k_max = 1)
    pts = torch.from_numpy(rng.normal(size=(sum(counts), 3)).astype(np.float32))
    off = torch.from_numpy(np.concatenate([[0], np.cumsum(counts)]))
    off_copy = off.clone()
    k = torch.tensor([max(1, n // 16) if n else 0 for n in counts])
    km, nm = int(k.max()), max(counts)
    for start in ('farthest', 'first'):
        a = farthest_point_sample(pts, off, k, km, nm, start, backend='torch')
        b = farthest_point_sample(pts, off, k, km, nm, start, backend='triton')
        assert torch.equal(a, b), (a, b)
    ga = knn_group(pts, off, a, k, 32, nm, backend='torch')
    gb = knn_group(pts, off, a, k, 32, nm, backend='triton')
    assert torch.equal(ga, gb)
    assert torch.equal(off, off_copy)  # outputs never alias the inputs
h = torch.randn(7, 32, 100)
g = torch.randn(7, 100)
assert torch.equal(add_rows_relu_(h.clone(), g), (h + g[:, None]).relu())
hb, gbf = h.bfloat16(), g.bfloat16()
ref = (hb.float() + gbf.float()[:, None]).relu()
out = add_rows_relu_(hb.clone(), gbf).float()
assert ((out - ref).abs() <= ref.abs() * 2 ** -7 + 1e-6).all()  # the interpreter truncates to bf16
print('ok')
"""


def test_triton_kernels_match_torch_in_interpreter():
    pytest.importorskip('triton')
    run_in_triton_interpreter(TRITON_SCRIPT)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_triton_kernels_match_torch_on_cuda():
    objs = random_objects([1, 3, 31, 32, 500, 4000, 8192], seed=7)
    pts, off = _packed(objs)
    pts, off = pts.cuda(), off.cuda()
    k = torch.tensor([max(1, len(o) // 16) for o in objs], device='cuda')
    km, nm = int(k.max()), max(len(o) for o in objs)
    a = farthest_point_sample(pts, off, k, km, nm, backend='torch')
    b = farthest_point_sample(pts, off, k, km, nm, backend='triton')
    assert torch.equal(a, b)
    assert torch.equal(a.cpu(), farthest_point_sample(pts.cpu(), off.cpu(), k.cpu(), km, nm, backend='torch'))
    ga = knn_group(pts, off, a, k, 32, nm, backend='torch')
    gb = knn_group(pts, off, a, k, 32, nm, backend='triton')
    assert (ga == gb).float().mean() > 0.999  # a swap needs two distances one rounding step apart
