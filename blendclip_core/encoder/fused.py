"""Small fused GPU kernels for the inference path, each with a torch twin that defines it.

relu(h + g[row // G]) in place: the mini-PointNet's second stage adds one global vector per patch to
each of its G point rows. torch does it as a broadcast add then a ReLU (two passes, the first through
a slow generic broadcasting kernel); one Triton pass reads and writes the tensor once.

add_layer_norm: the transformer's residual add (and the positional embedding added before every
block) fused with the LayerNorm that reads the sum: one pass instead of two or three per norm.
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
    if not _use_triton(h) or not h.is_contiguous() or g.dtype != h.dtype:
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


def _use_triton(x: torch.Tensor) -> bool:
    """Eager calls on CUDA (or the Triton interpreter) only: torch.compile and torch.export trace fake
    tensors that a raw kernel launch cannot read, so there the torch twin goes into the graph."""
    return (triton is not None and (x.is_cuda or os.environ.get('TRITON_INTERPRET') == '1')
            and not torch.compiler.is_compiling())


def add_layer_norm(x: torch.Tensor, r: torch.Tensor, extra: torch.Tensor | None, weight: torch.Tensor,
                   bias: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """s = x + r (+ extra) and layer_norm(s) over the last dim, both in x's dtype; (T, D) inputs.
    The Triton kernel sums in float32 and rounds s once; the norm is computed from the rounded s."""
    tensors = (x, r) if extra is None else (x, r, extra)
    if (not _use_triton(x) or x.ndim != 2 or any(t.shape != x.shape or t.dtype != x.dtype
                                                  or not t.is_contiguous() for t in tensors)):
        s = x + r if extra is None else x + r + extra
        y = torch.nn.functional.layer_norm(s, s.shape[-1:], weight.to(s.dtype), bias.to(s.dtype), eps)
        return s, y
    rows, width = x.shape
    s, y = torch.empty_like(x), torch.empty_like(x)
    if rows == 0:
        return s, y
    block_d = triton.next_power_of_2(width)
    block_r = max(1, min(16, 4096 // block_d))
    _add_layer_norm_kernel[(triton.cdiv(rows, block_r),)](
        x, r, x if extra is None else extra, weight, bias, s, y, rows, width, eps,
        HAS_EXTRA=extra is not None, BLOCK_R=block_r, BLOCK_D=block_d, num_warps=4)
    return s, y


if triton is not None:
    @triton.jit
    def _add_layer_norm_kernel(x, r, e, w, b, s_out, y_out, rows, width, eps, HAS_EXTRA: tl.constexpr,
                               BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):
        row = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        c = tl.arange(0, BLOCK_D)
        cm = c < width
        m = (row < rows)[:, None] & cm[None, :]
        off = row[:, None].to(tl.int64) * width + c[None, :]
        acc = tl.load(x + off, mask=m, other=0.0).to(tl.float32) + tl.load(r + off, mask=m, other=0.0).to(
            tl.float32)
        if HAS_EXTRA:
            acc += tl.load(e + off, mask=m, other=0.0).to(tl.float32)
        s = acc.to(s_out.dtype.element_ty)
        tl.store(s_out + off, s, mask=m)
        v = s.to(tl.float32)
        mean = tl.sum(v, axis=1) / width
        d = tl.where(m, v - mean[:, None], 0.0)
        rstd = 1.0 / tl.sqrt(tl.sum(d * d, axis=1) / width + eps)
        wv = tl.load(w + c, mask=cm, other=0.0).to(tl.float32)
        bv = tl.load(b + c, mask=cm, other=0.0).to(tl.float32)
        y = d * rstd[:, None] * wv[None, :] + bv[None, :]
        tl.store(y_out + off, y.to(y_out.dtype.element_ty), mask=m)

    @triton.jit
    def _add_rows_relu_kernel(h, g, rows, grp, width, BLOCK_R: tl.constexpr, BLOCK_H: tl.constexpr):
        r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        c = tl.arange(0, BLOCK_H)
        m = (r < rows)[:, None] & (c < width)[None, :]
        hp = h + r[:, None].to(tl.int64) * width + c[None, :]
        x = tl.load(hp, mask=m, other=0.0).to(tl.float32)
        y = tl.load(g + (r // grp)[:, None].to(tl.int64) * width + c[None, :], mask=m, other=0.0)
        tl.store(hp, tl.maximum(x + y.to(tl.float32), 0.0).to(h.dtype.element_ty), mask=m)
