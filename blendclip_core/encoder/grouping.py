"""Patch grouping on packed objects: farthest point sampling (FPS) centres and kNN patches.

Input is packed like ObjectBatch: points (T, C) with xyz first, offsets (n + 1,) on the same device.
All returned indices are global rows of `points`, so a patch is simply points[idx].

Two backends compute the same function:
- 'torch': pads the objects and loops over FPS steps with every object at once (CPU and fallback);
- 'triton' (CUDA): one program per object keeps its points on chip for all FPS steps, and kNN selects
  the group by repeated arg-min over a tile of centres x points; no per-step launches, no padding.
Distances are (dx*dx + dy*dy) + dz*dz in float32 in both (no FMA contraction), ties go to the lowest
index, so both give the same indices (the centroid of the 'farthest' start is summed in a different
order, which can only matter for a near-tie of the first centre).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

try:  # triton is optional: CPU installs and tests run without it
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = None

log = logging.getLogger(__name__)
TRITON_MAX_BLOCK = 16384  # points held by one program; larger objects take the torch path


def triton_available(device: torch.device) -> bool:
    # TRITON_INTERPRET=1 runs the kernels on the CPU (slowly): used to check them without a GPU
    return triton is not None and (device.type == 'cuda' or os.environ.get('TRITON_INTERPRET') == '1')


def _pick_backend(backend: str, device: torch.device, n_max: int) -> str:
    if backend not in ('auto', 'torch', 'triton'):
        raise ValueError(f'unknown grouping backend {backend!r}')
    if backend == 'auto':
        ok = triton_available(device) and n_max <= TRITON_MAX_BLOCK
        return 'triton' if ok else 'torch'
    if backend == 'triton' and not triton_available(device):
        raise RuntimeError('triton grouping needs triton and a CUDA device')
    return backend


def _block(n_max: int) -> int:
    return max(16, triton.next_power_of_2(max(int(n_max), 1)))


def _warps(block: int) -> int:
    return 4 if block <= 512 else 8 if block <= 2048 else 16


def pad_packed(points: torch.Tensor, offsets: torch.Tensor, n_max: int,
               fill: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, C) packed -> (n, n_max, C) padded with `fill`, and the (n, n_max) validity mask.
    Rows after offsets[-1] (spare rows of a padded buffer) are ignored, without reading sizes back."""
    n = offsets.numel() - 1
    rows = torch.arange(points.shape[0], device=points.device)
    obj = torch.searchsorted(offsets[1:], rows, right=True)  # n for spare rows
    pos = (rows - offsets[obj]).clamp(max=n_max - 1)
    padded = points.new_full((n + 1, n_max, points.shape[1]), fill)  # object n collects spare rows
    padded[obj, pos] = points
    valid = torch.arange(n_max, device=points.device)[None, :] < offsets.diff()[:, None]
    return padded[:n], valid


def _sqdist(planar: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Squared distances of points planar (n, 3, N) to centres c (n, M, 3) -> (n, M, N).

    Evaluated as (dx*dx + dy*dy) + dz*dz with one rounding per operation, as the Triton kernels
    (built without FMA contraction) do, so both backends give the same bits.
    """
    d = planar[:, None, 0, :] - c[..., 0:1]
    d.mul_(d)
    for axis in (1, 2):
        t = planar[:, None, axis, :] - c[..., axis:axis + 1]
        d.add_(t.mul_(t))
    return d


# ----------------------------------------------------------------------------------------------- FPS

def _size_groups(offsets: torch.Tensor) -> tuple[list[np.ndarray], np.ndarray]:
    """Objects grouped by point count (powers of two), so padding stays under 2x (torch path)."""
    counts = offsets.diff().cpu().numpy()
    key = np.where(counts > 0, np.ceil(np.log2(np.maximum(counts, 1))), -1)  # -1: empty, nothing to do
    return [np.flatnonzero(key == v) for v in np.unique(key) if v >= 0], counts


def _subset(offsets: torch.Tensor, objs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the given objects in the packed array, and their offsets once packed alone."""
    off = offsets.cpu().numpy()
    rows = np.concatenate([np.arange(off[i], off[i + 1]) for i in objs])
    sub = np.concatenate([[0], np.cumsum(off[objs + 1] - off[objs])])
    return torch.from_numpy(rows).to(offsets.device), torch.from_numpy(sub).to(offsets.device)


def _fps_torch(points: torch.Tensor, offsets: torch.Tensor, k: torch.Tensor, k_max: int, n_max: int,
               start: str) -> torch.Tensor:
    groups, counts = _size_groups(offsets)
    if len(groups) <= 1:
        return _fps_torch_padded(points, offsets, k, k_max, n_max, start)
    out = offsets[:-1, None].expand(len(counts), k_max).clone()
    for g in groups:
        rows, sub_off = _subset(offsets, g)
        gi = torch.from_numpy(g).to(k.device)
        km = min(k_max, int(k[gi].max()))
        r = _fps_torch_padded(points[rows], sub_off, k[gi], km, int(counts[g].max()), start)
        out[gi, :km] = rows[r]
    return out


def _fps_torch_padded(points: torch.Tensor, offsets: torch.Tensor, k: torch.Tensor, k_max: int,
                      n_max: int, start: str) -> torch.Tensor:
    n = offsets.numel() - 1
    xyz, valid = pad_packed(points[:, :3].float(), offsets, max(n_max, 1))
    planar = xyz.transpose(1, 2).contiguous()  # (n, 3, N): contiguous rows per coordinate
    base = offsets[:-1]
    if start == 'farthest':
        count = valid.sum(1, keepdim=True).clamp(min=1).float()
        centroid = xyz.sum(1) / count
        d0 = _sqdist(planar, centroid[:, None, :])[:, 0]
        cur = torch.where(valid, d0, -1.0).argmax(1)
    else:
        cur = torch.zeros(n, dtype=torch.long, device=points.device)
    dist = torch.where(valid, torch.inf, -1.0)  # padding stays at -1: never the farthest
    out = base[:, None].expand(n, k_max).clone()
    rows = torch.arange(n, device=points.device)
    for i in range(k_max):
        take = k > i
        out[:, i] = torch.where(take, base + cur, out[:, i])
        c = xyz[rows, cur]
        torch.minimum(dist, _sqdist(planar, c[:, None, :])[:, 0], out=dist)
        cur = dist.argmax(1)
    return out


if triton is not None:
    @triton.jit
    def _fps_kernel(pts, stride, offsets, ks, out, k_max, START_FARTHEST: tl.constexpr,
                    BLOCK: tl.constexpr):
        b = tl.program_id(0)
        base = tl.load(offsets + b)
        n = (tl.load(offsets + b + 1) - base).to(tl.int32)
        k = tl.load(ks + b).to(tl.int32)
        offs = tl.arange(0, BLOCK)
        m = offs < n
        p = pts + (base + offs) * stride
        x = tl.load(p, mask=m, other=0.0)
        y = tl.load(p + 1, mask=m, other=0.0)
        z = tl.load(p + 2, mask=m, other=0.0)
        if START_FARTHEST:
            cnt = tl.maximum(n, 1).to(tl.float32)
            cx = tl.sum(x, 0) / cnt
            cy = tl.sum(y, 0) / cnt
            cz = tl.sum(z, 0) / cnt
            dx = x - cx
            dy = y - cy
            dz = z - cz
            d0 = tl.where(m, dx * dx + dy * dy + dz * dz, -1.0)
            cur = tl.argmax(d0, 0)
        else:
            cur = n * 0
        dist = tl.where(m, float('inf'), -1.0)
        for i in range(0, k):
            tl.store(out + b * k_max + i, base + cur)
            q = pts + (base + cur) * stride
            dx = x - tl.load(q)
            dy = y - tl.load(q + 1)
            dz = z - tl.load(q + 2)
            dist = tl.minimum(dist, dx * dx + dy * dy + dz * dz)
            cur = tl.argmax(dist, 0)

    @triton.jit
    def _knn_kernel(pts, stride, offsets, ks, centres, out, k_max, G: tl.constexpr, BC: tl.constexpr,
                    BLOCK: tl.constexpr):
        b = tl.program_id(0)
        cb = tl.program_id(1)
        k = tl.load(ks + b).to(tl.int32)
        if cb * BC < k:
            base = tl.load(offsets + b)
            n = (tl.load(offsets + b + 1) - base).to(tl.int32)
            offs = tl.arange(0, BLOCK)
            m = offs < n
            p = pts + (base + offs) * stride
            x = tl.load(p, mask=m, other=0.0)
            y = tl.load(p + 1, mask=m, other=0.0)
            z = tl.load(p + 2, mask=m, other=0.0)
            ci = cb * BC + tl.arange(0, BC)
            cm = ci < k
            cidx = tl.load(centres + b * k_max + ci, mask=cm, other=0)
            cx = tl.load(pts + cidx * stride, mask=cm, other=0.0)
            cy = tl.load(pts + cidx * stride + 1, mask=cm, other=0.0)
            cz = tl.load(pts + cidx * stride + 2, mask=cm, other=0.0)
            dx = x[None, :] - cx[:, None]
            dy = y[None, :] - cy[:, None]
            dz = z[None, :] - cz[:, None]
            d = tl.where(m[None, :], dx * dx + dy * dy + dz * dz, float('inf'))
            o = out + (b * k_max + ci) * G
            v, first = tl.min(d, 1, return_indices=True, return_indices_tie_break_left=True)
            tl.store(o, base + first, mask=cm)
            d = tl.where(offs[None, :] == first[:, None], float('inf'), d)
            for g in range(1, G):
                v, j = tl.min(d, 1, return_indices=True, return_indices_tie_break_left=True)
                sel = tl.where(v < float('inf'), j, first)  # fewer than G points: repeat the nearest
                tl.store(o + g, base + sel, mask=cm)
                d = tl.where(offs[None, :] == j[:, None], float('inf'), d)


_triton_failed = False


def _prune(configs, *args, **kw):
    """Warp counts that give each thread 1..64 elements of the tile."""
    meta = {**(args[0] if args and isinstance(args[0], dict) else {}), **kw}
    tile = int(meta.get('BLOCK', 1024)) * int(meta.get('BC', 1))
    return [c for c in configs if 1 <= tile // (32 * c.num_warps) <= 64] or configs


def _tuned(kernel):
    """The kernel autotuned over warps per tile size (timed once per size on the GPU); None when
    interpreting on the CPU."""
    if triton is None or os.environ.get('TRITON_INTERPRET') == '1':
        return None
    configs = [triton.Config({}, num_warps=w) for w in (2, 4, 8, 16)]
    return triton.autotune(configs=configs, key=['BLOCK', 'BC'] if 'BC' in kernel.arg_names else ['BLOCK'],
                           prune_configs_by={'early_config_prune': _prune})(kernel)


def _launch(kernel, tuned, grid, args, meta, num_warps) -> bool:
    """Launch (tuned where possible); False, once and for all, if Triton fails here (torch takes over)."""
    global _triton_failed
    if _triton_failed:
        return False
    try:
        if tuned is not None:
            tuned[grid](*args, **meta)
        else:
            kernel[grid](*args, **meta, num_warps=num_warps)
        return True
    except Exception as e:  # compiler or driver trouble must not take labelling down
        _triton_failed = True
        log.warning('Triton grouping failed (%s); using the torch implementation', e)
        return False


_fps_tuned = _tuned(_fps_kernel) if triton is not None else None
_knn_tuned = _tuned(_knn_kernel) if triton is not None else None


def farthest_point_sample(points: torch.Tensor, offsets: torch.Tensor, k: torch.Tensor, k_max: int,
                          n_max: int, start: str = 'farthest', backend: str = 'auto') -> torch.Tensor:
    """FPS centres: (n, k_max) global point indices; object b uses its first k[b], the rest repeat its
    first point. Deterministic: starts at the point farthest from the centroid ('farthest') or at 0."""
    n = offsets.numel() - 1
    if n == 0 or k_max == 0:
        return torch.zeros((n, k_max), dtype=torch.long, device=points.device)
    if _pick_backend(backend, points.device, n_max) == 'torch' or _triton_failed:
        return _fps_torch(points, offsets, k, k_max, n_max, start)
    pts = points.float().contiguous()
    out = offsets[:-1, None].repeat(1, k_max)  # a new tensor (an expand could alias the offsets)
    block = _block(n_max)
    args = (pts, pts.stride(0), offsets, k, out, k_max)
    meta = dict(START_FARTHEST=start == 'farthest', BLOCK=block, enable_fp_fusion=False)
    if not _launch(_fps_kernel, _fps_tuned, (n,), args, meta, _warps(block)):
        return _fps_torch(points, offsets, k, k_max, n_max, start)
    return out


# ----------------------------------------------------------------------------------------------- kNN

def _knn_torch(points: torch.Tensor, offsets: torch.Tensor, centres: torch.Tensor, k: torch.Tensor,
               group_size: int, n_max: int) -> torch.Tensor:
    groups, counts = _size_groups(offsets)
    if len(groups) <= 1:
        return _knn_torch_padded(points, offsets, centres, k, group_size, n_max)
    n, k_max = centres.shape
    out = offsets[:-1, None, None].expand(n, k_max, group_size).clone()
    for g in groups:
        rows, sub_off = _subset(offsets, g)
        gi = torch.from_numpy(g).to(k.device)
        km = min(k_max, int(k[gi].max()))
        c = centres[gi, :km] - offsets[gi][:, None] + sub_off[:-1, None]
        r = _knn_torch_padded(points[rows], sub_off, c, k[gi], group_size, int(counts[g].max()))
        out[gi, :km] = rows[r]
    return out


def _knn_torch_padded(points: torch.Tensor, offsets: torch.Tensor, centres: torch.Tensor, k: torch.Tensor,
                      group_size: int, n_max: int) -> torch.Tensor:
    n, k_max = centres.shape
    xyz, valid = pad_packed(points[:, :3].float(), offsets, max(n_max, group_size))
    c = points[centres.reshape(-1), :3].float().view(n, k_max, 3)
    d = _sqdist(xyz.transpose(1, 2).contiguous(), c)
    d = d.masked_fill(~valid[:, None, :], torch.inf)
    vals, idx = d.topk(group_size, dim=-1, largest=False, sorted=True)
    idx = torch.where(torch.isinf(vals), idx[..., :1], idx)  # fewer than G points: repeat the nearest
    idx = idx + offsets[:-1, None, None]
    unused = torch.arange(k_max, device=points.device)[None, :] >= k[:, None]
    return torch.where(unused[..., None], offsets[:-1, None, None], idx)


def knn_group(points: torch.Tensor, offsets: torch.Tensor, centres: torch.Tensor, k: torch.Tensor,
              group_size: int, n_max: int, backend: str = 'auto') -> torch.Tensor:
    """The group_size nearest points of each centre (itself included), nearest first:
    (n, k_max, group_size) global indices. Objects with fewer points repeat their nearest one."""
    n, k_max = centres.shape
    if n == 0 or k_max == 0:
        return torch.zeros((n, k_max, group_size), dtype=torch.long, device=points.device)
    if _pick_backend(backend, points.device, n_max) == 'torch' or _triton_failed:
        return _knn_torch(points, offsets, centres, k, group_size, n_max)
    pts = points.float().contiguous()
    out = offsets[:-1, None, None].repeat(1, k_max, group_size)
    block = _block(n_max)
    bc = max(1, min(16, 4096 // block))
    args = (pts, pts.stride(0), offsets, k, centres.contiguous(), out, k_max)
    meta = dict(G=group_size, BC=bc, BLOCK=block, enable_fp_fusion=False)
    if not _launch(_knn_kernel, _knn_tuned, (n, triton.cdiv(k_max, bc)), args, meta, _warps(block * bc)):
        return _knn_torch(points, offsets, centres, k, group_size, n_max)
    return out
