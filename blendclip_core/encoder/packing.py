"""Host-side plan of one encoder call: where every object's patches and tokens go.

Everything shape-related is decided here, in numpy, from the point counts alone, then moved to the
device in one copy; the device code never has to read a size back (no synchronisation). With `caps`
the shapes are rounded up to a few fixed sizes (dummy objects, unused patch and token rows), so a
CUDA graph captured once per size serves many frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from blendclip_core.encoder.config import EncoderConfig
from blendclip_core.encoder.transformer import Sequences


@dataclass(frozen=True)
class Caps:
    """Padded sizes of one plan: the key of a captured CUDA graph."""

    n: int  # objects
    k_max: int  # patches of the largest object
    patches: int  # all patches
    n_max: int  # points of the largest object
    points: int  # all points


def _round_up(x: int, m: int) -> int:
    return -(-max(x, 1) // m) * m


def _pow2(x: int) -> int:
    return 1 << max(int(x) - 1, 0).bit_length()


def graph_caps(counts: np.ndarray, k: np.ndarray) -> Caps:
    """Rounded sizes: few distinct values over frames, modest padding (patches to 1/8 octave)."""
    p = int(k.sum())
    step = max(64, _pow2(p) // 8)
    return Caps(n=_round_up(len(counts), 16), k_max=_pow2(int(k.max(initial=1))), patches=_round_up(p, step),
                n_max=max(32, _pow2(int(counts.max(initial=1)))), points=max(4096, _pow2(int(counts.sum()))))


@dataclass
class Plan:
    caps: Caps
    n: int  # real objects (all have points)
    total_points: int
    int_buffer: np.ndarray  # every index array below, concatenated (one host-to-device copy)
    layout: dict[str, tuple[int, int, tuple[int, ...]]]  # name -> (start, stop, shape) in int_buffer

    def to_device(self, device: torch.device, buffer: torch.Tensor | None = None) -> DevicePlan:
        src = torch.from_numpy(self.int_buffer)
        if buffer is None:
            buffer = src.to(device, non_blocking=True)
        else:
            buffer.copy_(src, non_blocking=True)
        return DevicePlan.from_buffer(buffer, self)


@dataclass
class DevicePlan:
    offsets: torch.Tensor  # (n + 1,) point offsets
    k: torch.Tensor  # (n,) patches per object
    sel: torch.Tensor  # (P,) flat index into (n, k_max) of each packed patch
    order: torch.Tensor  # (T,) row of cat([cls tokens (n), patch tokens (P)]) for each token row
    cls_rows: torch.Tensor  # (n,)
    pool_index: torch.Tensor  # (n, k_max) token rows of each object's patches (repeats where unused)
    seqs: Sequences
    caps: Caps
    total_points: int

    @classmethod
    def from_buffer(cls, buf: torch.Tensor, plan: Plan) -> DevicePlan:
        v = {name: buf[a:b].view(shape) for name, (a, b, shape) in plan.layout.items()}
        seqs = Sequences(cu=v['cu'].to(torch.int32), max_len=plan.caps.k_max + 1, pad_index=v['pad_index'],
                         pad_valid=v['pad_valid'].bool(), pad_flat=v['pad_flat'], token_obj=v['token_obj'])
        return cls(offsets=v['offsets'], k=v['k'], sel=v['sel'], order=v['order'], cls_rows=v['cls_rows'],
                   pool_index=v['pool_index'], seqs=seqs, caps=plan.caps, total_points=plan.total_points)


def _padded(a: np.ndarray, size: int) -> np.ndarray:
    """a repeated at its last entry up to a fixed size (duplicates write the same value twice)."""
    return np.concatenate([a, np.full(size - len(a), a[-1] if len(a) else 0, a.dtype)])


def make_plan(counts: np.ndarray, cfg: EncoderConfig, caps: Caps | None = None) -> Plan:
    """Plan for objects with counts[i] >= 1 points each (empty objects are removed by the caller)."""
    counts = np.asarray(counts, dtype=np.int64)
    if counts.size and counts.min() < 1:
        raise ValueError('make_plan needs objects with at least one point')
    k = np.clip((cfg.patch_ratio * counts) // cfg.group_size, cfg.min_patches, cfg.max_patches)
    k = k.astype(np.int64)
    n, p = len(counts), int(k.sum())
    exact = Caps(n=n, k_max=int(k.max(initial=1)), patches=p, n_max=int(counts.max(initial=1)),
                 points=int(counts.sum()))
    caps = caps or exact
    if caps.n < n or caps.k_max < exact.k_max or caps.patches < p or caps.n_max < exact.n_max \
            or caps.points < exact.points:
        raise ValueError(f'caps {caps} smaller than needed {exact}')
    nc, kc, pc = caps.n, caps.k_max, caps.patches
    # dummy objects: no points, no patches, one token row each (their cls); never read back
    counts_c = np.zeros(nc, np.int64)
    counts_c[:n] = counts
    k_c = np.zeros(nc, np.int64)
    k_c[:n] = k
    offsets = np.concatenate([[0], np.cumsum(counts_c)])
    seq_len = np.where(np.arange(nc) < n, k_c + 1, 1)
    cu = np.concatenate([[0], np.cumsum(seq_len)])
    patch_obj = np.repeat(np.arange(n), k)
    patch_j = np.arange(p) - np.repeat(np.cumsum(k) - k, k)
    sel = np.zeros(pc, np.int64)
    sel[:p] = patch_obj * kc + patch_j
    t_cap = nc + pc
    order = np.empty(t_cap, np.int64)
    cls_rows = cu[:-1]
    order[cls_rows] = np.arange(nc)
    order[cu[patch_obj] + 1 + patch_j] = nc + np.arange(p)
    order[cu[-1]:] = nc + np.arange(p, pc)  # unused patch rows fill the tail, outside every sequence
    j = np.arange(kc)[None, :]
    first_patch = np.where(k_c > 0, cls_rows + 1, cls_rows)[:, None]
    pool_index = np.where(j < k_c[:, None], cls_rows[:, None] + 1 + j, first_patch)
    length = kc + 1
    pos = np.arange(length)[None, :]
    pad_valid = pos < seq_len[:, None]
    pad_index = np.where(pad_valid, cls_rows[:, None] + pos, cls_rows[:, None])
    token_obj = np.zeros(t_cap, np.int64)
    token_obj[:cu[-1]] = np.repeat(np.arange(nc), seq_len)
    arrays = {'offsets': offsets, 'k': k_c, 'sel': sel, 'order': order, 'cls_rows': cls_rows,
              'pool_index': pool_index, 'cu': cu, 'pad_index': pad_index,
              'pad_valid': pad_valid.astype(np.int64), 'pad_flat': _padded(np.flatnonzero(pad_valid), t_cap),
              'token_obj': token_obj}
    layout, start = {}, 0
    for name, a in arrays.items():
        layout[name] = (start, start + a.size, a.shape)
        start += a.size
    buf = np.concatenate([a.reshape(-1) for a in arrays.values()]).astype(np.int64)
    return Plan(caps=caps, n=n, total_points=int(counts.sum()), int_buffer=buf, layout=layout)
