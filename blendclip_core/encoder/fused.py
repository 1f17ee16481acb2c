"""Small fused GPU kernels for the inference path, each with a torch twin that defines it.

relu(h + g[row // G]) in place: the mini-PointNet's second stage adds one global vector per patch to
each of its G point rows. torch does it as a broadcast add then a ReLU (two passes, the first through
a slow generic broadcasting kernel); one Triton pass reads and writes the tensor once.
"""

from __future__ import annotations

import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = None


def add_rows_relu_(h: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """h (P, G, H) <- relu(h + g[:, None]) with g (P, H); float math, one rounding to h's dtype."""
    use_triton = triton is not None and (h.is_cuda or os.environ.get('TRITON_INTERPRET') == '1')
    if not use_triton or not h.is_contiguous() or g.dtype != h.dtype:
        h += g[:, None]
        return h.relu_()
    p, grp, width = h.shape
    g = g.contiguous()
    block_h = triton.next_power_of_2(width)
    block_r = max(1, 8192 // block_h)
    rows = p * grp
    _add_rows_relu_kernel[(triton.cdiv(rows, block_r),)](h, g, rows, grp, width, BLOCK_R=block_r,
                                                          BLOCK_H=block_h, num_warps=8)
    return h


if triton is not None:
    @triton.jit
    def _add_rows_relu_kernel(h, g, rows, grp, width, BLOCK_R: tl.constexpr, BLOCK_H: tl.constexpr):
        r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        c = tl.arange(0, BLOCK_H)
        m = (r < rows)[:, None] & (c < width)[None, :]
        hp = h + r[:, None].to(tl.int64) * width + c[None, :]
        x = tl.load(hp, mask=m, other=0.0).to(tl.float32)
        y = tl.load(g + (r // grp)[:, None].to(tl.int64) * width + c[None, :], mask=m, other=0.0)
        tl.store(hp, tl.maximum(x + y.to(tl.float32), 0.0).to(h.dtype.element_ty), mask=m)
