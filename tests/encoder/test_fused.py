"""Fused inference passes: add+LayerNorm (Triton, checked in the interpreter and on CUDA), the fused
block loop (= the plain block loop), and the bias+GELU product epilogue on CUDA."""


import numpy as np
import pytest
import torch
from encoder_testutil import batch_of, random_objects, run_in_triton_interpreter

from blendclip_core.encoder import create_model
from blendclip_core.encoder.fused import add_layer_norm
from blendclip_core.encoder.packing import DevicePlan, make_plan
from blendclip_core.encoder.transformer import run_blocks_fused


def _plain_ln(x, r, extra, w, b, eps):
    s = x + r if extra is None else x + r + extra
    return s, torch.nn.functional.layer_norm(s, s.shape[-1:], w, b, eps)


def test_fused_block_loop_equals_plain_loop_fp32():
    torch.manual_seed(0)
    model = create_model('pointbert-tiny', depth=3).eval()
    plan = make_plan(np.array([5, 40, 100, 300]), model.config)
    dp = DevicePlan.from_buffer(torch.from_numpy(plan.int_buffer), plan)
    rows = plan.caps.n + plan.caps.patches
    x, pos = torch.randn(rows, model.config.width), torch.randn(rows, model.config.width)
    with torch.no_grad():
        ref = x
        for blk in model.blocks:
            ref = blk(ref + pos, dp.seqs)
        ref = model.norm(ref)
        out = run_blocks_fused(model.blocks, model.norm, x, pos, dp.seqs)
    assert torch.equal(out, ref)  # same sums in the same order, same norm


def test_add_layer_norm_torch_twin():
    x, r, e = (torch.randn(9, 24) for _ in range(3))
    w, b = torch.randn(24), torch.randn(24)
    for extra in (None, e):
        s, y = add_layer_norm(x, r, extra, w, b, 1e-6)
        s0, y0 = _plain_ln(x, r, extra, w, b, 1e-6)
        assert torch.equal(s, s0) and torch.equal(y, y0)


TRITON_SCRIPT = r"""
import torch
from blendclip_core.encoder.fused import add_layer_norm
torch.manual_seed(0)
for rows, width in ((37, 48), (5, 384), (1, 7)):
    x, r, e = (torch.randn(rows, width) * 3 + 1 for _ in range(3))
    w, b = torch.randn(width), torch.randn(width)
    for extra in (None, e):
        s, y = add_layer_norm(x, r, extra, w, b, 1e-6)
        s0 = x + r if extra is None else x + r + extra
        y0 = torch.nn.functional.layer_norm(s0, (width,), w, b, 1e-6)
        torch.testing.assert_close(s, s0, atol=1e-5, rtol=1e-6)
        torch.testing.assert_close(y, y0, atol=1e-4, rtol=1e-4)
        sb, yb = add_layer_norm(x.bfloat16(), r.bfloat16(), None if extra is None else e.bfloat16(),
                                w, b, 1e-6)
        assert sb.dtype == yb.dtype == torch.bfloat16
        torch.testing.assert_close(sb.float(), s0, atol=0.1, rtol=2 ** -6)
        torch.testing.assert_close(yb.float(), y0, atol=0.1, rtol=2 ** -5)
s, y = add_layer_norm(torch.zeros(0, 8), torch.zeros(0, 8), None, torch.ones(8), torch.zeros(8), 1e-6)
assert s.shape == y.shape == (0, 8)
print('ok')
"""


def test_add_layer_norm_kernel_in_interpreter():
    pytest.importorskip('triton')
    run_in_triton_interpreter(TRITON_SCRIPT)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_fused_passes_on_cuda():
    x, r, e = (torch.randn(1000, 384, device='cuda') for _ in range(3))
    w, b = torch.randn(384, device='cuda'), torch.randn(384, device='cuda')
    s, y = add_layer_norm(x, r, e, w, b, 1e-6)
    s0, y0 = _plain_ln(x, r, e, w, b, 1e-6)
    torch.testing.assert_close(s, s0, atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(y, y0, atol=1e-4, rtol=1e-4)
    torch.manual_seed(0)
    m = create_model('pointbert-s').eval().cuda()
    objs = random_objects([3, 0, 40, 1024, 4000], seed=12)
    out = {}
    for fused in (False, True):
        m.fuse_norms = m.gelu_epilogue = fused
        with torch.no_grad(), torch.autocast('cuda', torch.bfloat16):
            out[fused] = m.encode(batch_of(objs))
    cos = torch.nn.functional.cosine_similarity(out[True][[0, 2, 3, 4]], out[False][[0, 2, 3, 4]])
    assert (cos > 0.999).all() and (out[True][1] == 0).all(), cos
    from blendclip_core.encoder import transformer
    assert not transformer._epilogue_failed


EXPORT_SCRIPT = """
import torch
from blendclip_core.encoder import create_model
from blendclip_core.encoder.fused import add_rows_relu_
from blendclip_core.export.graph import ExportHead, export_program, sample_inputs
torch.manual_seed(0)
m = create_model('pointbert-tiny').eval()
h, g = torch.randn(5, 4, 8), torch.randn(5, 8)
want = (h + g[:, None]).relu()
torch.testing.assert_close(add_rows_relu_(h.clone(), g), want)  # eager: the Triton kernel runs
program = export_program(m)  # traces the torch twin: a raw launch cannot read fake tensors
inputs = sample_inputs(m).tensors()
with torch.no_grad():
    torch.testing.assert_close(program.module()(*inputs), ExportHead(m)(*inputs), atol=1e-5, rtol=1e-5)
print('ok')
"""


def test_export_traces_around_the_triton_kernels():
    """Where the kernels run eagerly (CUDA; here the interpreter), torch.export still traces: it found
    the launch on fake tensors on an H100 before the kernels stepped aside under tracing."""
    pytest.importorskip('triton')
    run_in_triton_interpreter(EXPORT_SCRIPT)
