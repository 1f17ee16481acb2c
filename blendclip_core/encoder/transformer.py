"""Pre-norm transformer blocks (PointBERT layout) over packed token sequences.

Tokens of all objects are packed into one (T, D) tensor, so linear layers never touch padding.
Attention is per object: on CUDA in half precision through variable-length flash attention
(cumulative sequence offsets, no padding); elsewhere the sequences are padded to (n, L) and
scaled_dot_product_attention gets a key-padding mask, which is exact for every real token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

try:
    from torch.nn.attention.varlen import varlen_attn
except ImportError:  # pragma: no cover - older torch
    varlen_attn = None

log = logging.getLogger(__name__)
_varlen_failed = False
_epilogue_failed = False


@dataclass
class Sequences:
    """Where each object's tokens are in the packed (T, D) tensor."""

    cu: torch.Tensor | None  # (n + 1,) int32 cumulative sequence starts (None: no varlen, no drop-path)
    max_len: int  # an upper bound of the longest sequence
    pad_index: torch.Tensor  # (n, L) packed row of each padded position (first row where unused)
    pad_valid: torch.Tensor  # (n, L) bool
    pad_flat: torch.Tensor  # flat positions of the valid entries of (n, L), row-major (no boolean indexing)
    token_obj: torch.Tensor | None  # (T,) object of each row (drop-path; None in inference)
    use_varlen: bool = True


def packed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, seqs: Sequences) -> torch.Tensor:
    """q, k, v (T, H, d) -> (T, H, d); a token attends to its own object's tokens only."""
    global _varlen_failed
    if (seqs.use_varlen and varlen_attn is not None and not _varlen_failed and q.is_cuda
            and q.dtype in (torch.float16, torch.bfloat16)):
        try:
            return varlen_attn(q, k, v, seqs.cu, seqs.cu, seqs.max_len, seqs.max_len)
        except (RuntimeError, TypeError, ValueError) as e:  # an older or different build
            _varlen_failed = True
            log.warning('variable-length attention failed (%s); using padded attention', e)
    n, length = seqs.pad_valid.shape
    qp, kp, vp = (t[seqs.pad_index].transpose(1, 2) for t in (q, k, v))  # (n, H, L, d)
    o = F.scaled_dot_product_attention(qp, kp, vp, attn_mask=seqs.pad_valid[:, None, None, :])
    o = o.transpose(1, 2).reshape(n * length, *q.shape[1:])[seqs.pad_flat]  # real rows, packed order
    out = q.new_zeros(q.shape)
    return out.index_copy_(0, seqs.pad_index.view(-1)[seqs.pad_flat], o.to(q.dtype))


class Linear(nn.Linear):
    """nn.Linear that, in CUDA autocast inference, keeps its weights cast once (autocast would cast
    them on every call: about a tenth of a frame's GPU time for PointBERT-S)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled() or not x.is_cuda or not torch.is_autocast_enabled('cuda'):
            return super().forward(x)
        dtype = torch.get_autocast_dtype('cuda')
        w, b = self.cast(dtype)
        return F.linear(x.to(dtype), w, b)

    def cast(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(weight, bias) in dtype, cast once per weight update."""
        key = (dtype, self.weight.data_ptr(), self.weight._version,
               None if self.bias is None else (self.bias.data_ptr(), self.bias._version))
        cache = self.__dict__.get('_cast_cache')
        if cache is None or cache[0] != key:
            b = None if self.bias is None else self.bias.detach().to(dtype)
            cache = self.__dict__['_cast_cache'] = (key, self.weight.detach().to(dtype), b)
        return cache[1], cache[2]


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm that, in CUDA autocast inference, reads and writes the half-precision stream
    directly (autocast would cast it up to float32 and the next Linear back down: 3 passes for 1).
    The kernel computes in float32 either way."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.training or torch.is_grad_enabled() or not x.is_cuda or not torch.is_autocast_enabled('cuda')
                or x.dtype == torch.float32):
            return super().forward(x)
        key = (x.dtype, self.weight.data_ptr(), self.weight._version, self.bias._version)
        cache = self.__dict__.get('_cast_cache')
        if cache is None or cache[0] != key:
            cache = self.__dict__['_cast_cache'] = (key, self.weight.detach().to(x.dtype),
                                                    self.bias.detach().to(x.dtype))
        with torch.autocast('cuda', enabled=False):
            return F.layer_norm(x, self.normalized_shape, cache[1], cache[2], self.eps)


class DropPath(nn.Module):
    """Stochastic depth per object (all tokens of an object are dropped together)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor, seqs: Sequences) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(seqs.cu.numel() - 1, device=x.device) >= self.p
        scale = (keep.to(x.dtype) / (1.0 - self.p))[seqs.token_obj]
        return x * scale[:, None]


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = Linear(dim, dim * 3, bias=False)
        self.proj = Linear(dim, dim)

    def forward(self, x: torch.Tensor, seqs: Sequences) -> torch.Tensor:
        t, d = x.shape
        q, k, v = self.qkv(x).view(t, 3, self.num_heads, d // self.num_heads).unbind(1)
        return self.proj(packed_attention(q, k, v, seqs).reshape(t, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = Linear(hidden, dim)

    def forward(self, x: torch.Tensor, gelu_epilogue: bool = False) -> torch.Tensor:
        """gelu_epilogue (half-precision CUDA inference): bias and GELU inside the fc1 product
        (cuBLASLt epilogue, tanh form of GELU: within 5e-4 of the exact one, under bf16 rounding)."""
        global _epilogue_failed
        half = x.dtype in (torch.float16, torch.bfloat16)
        if gelu_epilogue and not _epilogue_failed and x.is_cuda and half:
            w, b = self.fc1.cast(x.dtype)
            try:
                h = torch._addmm_activation(b, x, w.t(), use_gelu=True)
            except (RuntimeError, AttributeError) as e:  # a build without the fused epilogue
                _epilogue_failed = True
                log.warning('fused bias+GELU product failed (%s); using separate passes', e)
            else:
                return self.fc2(h)
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float, eps: float) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads)
        self.norm2 = LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, seqs: Sequences) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), seqs), seqs)
        return x + self.drop_path(self.mlp(self.norm2(x)), seqs)


def run_blocks_fused(blocks: nn.ModuleList, final_norm: nn.LayerNorm, x: torch.Tensor, pos: torch.Tensor,
                     seqs: Sequences, gelu_epilogue: bool = False) -> torch.Tensor:
    """Inference twin of `for blk in blocks: x = blk(x + pos)` then final_norm(x): each residual add
    (and the positional add before the next block) is fused with the LayerNorm that reads it, so a
    block is 2 fused passes instead of 3 adds + 2 norms. Same sums in the same order (float32: equal)."""
    from blendclip_core.encoder.fused import add_layer_norm

    def ln(a, b, extra, norm):
        return add_layer_norm(a, b, extra, norm.weight, norm.bias, norm.eps)

    s, h = ln(x, pos, None, blocks[0].norm1)
    for i, blk in enumerate(blocks):
        s, h = ln(s, blk.attn(h, seqs), None, blk.norm2)
        last = i + 1 == len(blocks)
        nxt = final_norm if last else blocks[i + 1].norm1
        s, h = ln(s, blk.mlp(h, gelu_epilogue), None if last else pos, nxt)
    return h
