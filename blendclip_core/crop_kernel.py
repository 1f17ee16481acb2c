"""Compiled (numba) points-in-boxes for the per-frame case: upright boxes, a bounded number of pairs.

The numpy path in preprocess.py costs hundreds of array calls per frame, and on a busy vehicle CPU each
call's cache misses cost more than its arithmetic (about 1.6 ms for 64 boxes in a 35k-point sweep inside
the node). This kernel does the same work in three compiled passes: bucket the points into a 2D grid
over the boxes' footprints (counting sort, so each cell keeps its points in index order), test every
point of the cells a box covers with exactly the numpy path's float64 formulas, and emit each box's
inside points in index order. Same pairs, same counts, so the cap and everything after are unchanged.

Anything outside its envelope (tilted boxes, more boxes or candidate pairs than the budgets, numba not
installed) returns None and the numpy path runs.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

MAX_BOXES = 4096
MAX_CANDIDATES = 1 << 20  # (point, box) pairs tested: bounds the kernel's temporaries (16 MB)
MAX_CELLS = 1 << 15  # grid resolution limit (as the numpy path)
CELL_PER_FOOTPRINT = 0.5
PAD_ABS, PAD_REL = 1e-3, 1e-6  # candidate padding (as the numpy path): rounding never drops a point

_kernel = None
_failed = False


def _build():
    import numba

    @numba.njit(cache=True, nogil=True)
    def upright_pairs(xyz, cx, cy, cz, hx, hy, hz, cs, sn, max_candidates):
        nb, m = cx.shape[0], xyz.shape[0]
        lox, loy = np.empty(nb), np.empty(nb)
        hix, hiy = np.empty(nb), np.empty(nb)
        use = np.zeros(nb, np.bool_)
        foot = np.empty(nb)
        n_use = 0
        big = 0.0
        for b in range(nb):
            if hx[b] > 0 and hy[b] > 0 and hz[b] > 0:  # a box of zero extent holds nothing (numpy path)
                ex = abs(cs[b]) * hx[b] + abs(sn[b]) * hy[b]
                ey = abs(sn[b]) * hx[b] + abs(cs[b]) * hy[b]
                lox[b], hix[b] = cx[b] - ex, cx[b] + ex
                loy[b], hiy[b] = cy[b] - ey, cy[b] + ey
                big = max(big, abs(lox[b]), abs(hix[b]), abs(loy[b]), abs(hiy[b]))
                foot[n_use] = 2.0 * max(ex, ey)
                use[b] = True
                n_use += 1
        counts = np.zeros(nb, np.int64)
        if n_use == 0 or m == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), counts, 0
        pad = PAD_ABS + PAD_REL * big
        gx0, gy0, gx1, gy1 = np.inf, np.inf, -np.inf, -np.inf
        for b in range(nb):
            if use[b]:
                lox[b] -= pad
                loy[b] -= pad
                hix[b] += pad
                hiy[b] += pad
                gx0, gy0 = min(gx0, lox[b]), min(gy0, loy[b])
                gx1, gy1 = max(gx1, hix[b]), max(gy1, hiy[b])
        spanx, spany = max(gx1 - gx0, 1e-9), max(gy1 - gy0, 1e-9)
        cell = max(np.median(foot[:n_use]) * CELL_PER_FOOTPRINT, np.sqrt(spanx * spany / MAX_CELLS), 1e-3)
        nx, ny = int(spanx // cell) + 1, int(spany // cell) + 1
        # counting sort of the points inside the grid, by cell; within a cell in index order
        key = np.empty(m, np.int64)
        start = np.zeros(nx * ny + 1, np.int64)
        for i in range(m):
            fx, fy = (xyz[i, 0] - gx0) / cell, (xyz[i, 1] - gy0) / cell
            if fx < 0.0 or fy < 0.0 or fx >= nx or fy >= ny:
                key[i] = -1
            else:
                k = int(fy) * nx + int(fx)
                key[i] = k
                start[k + 1] += 1
        for k in range(nx * ny):
            start[k + 1] += start[k]
        fill = start[:-1].copy()
        order = np.empty(start[nx * ny], np.int64)
        for i in range(m):
            k = key[i]
            if k >= 0:
                order[fill[k]] = i
                fill[k] += 1
        # candidates per box, then the exact test (the numpy path's float64 formulas, same order)
        total = 0
        cell_range = np.empty((nb, 4), np.int64)
        for b in range(nb):
            if not use[b]:
                continue
            i0 = min(max(int((lox[b] - gx0) / cell), 0), nx - 1)
            i1 = min(max(int((hix[b] - gx0) / cell), 0), nx - 1)
            j0 = min(max(int((loy[b] - gy0) / cell), 0), ny - 1)
            j1 = min(max(int((hiy[b] - gy0) / cell), 0), ny - 1)
            cell_range[b, 0], cell_range[b, 1], cell_range[b, 2], cell_range[b, 3] = i0, i1, j0, j1
            for j in range(j0, j1 + 1):
                total += start[j * nx + i1 + 1] - start[j * nx + i0]
        if total > max_candidates:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), counts, total
        pts = np.empty(total, np.int64)
        bxs = np.empty(total, np.int64)
        n_out = 0
        for b in range(nb):
            if not use[b]:
                continue
            first = n_out
            i0, i1, j0, j1 = cell_range[b, 0], cell_range[b, 1], cell_range[b, 2], cell_range[b, 3]
            for j in range(j0, j1 + 1):
                for q in range(start[j * nx + i0], start[j * nx + i1 + 1]):
                    p = order[q]
                    if not abs(np.float64(xyz[p, 2]) - cz[b]) <= hz[b]:
                        continue
                    dx = np.float64(xyz[p, 0]) - cx[b]
                    dy = np.float64(xyz[p, 1]) - cy[b]
                    if abs(dx * cs[b] + dy * sn[b]) <= hx[b] and abs(dy * cs[b] - dx * sn[b]) <= hy[b]:
                        pts[n_out] = p
                        n_out += 1
            if n_out - first > 1 and (i1 > i0 or j1 > j0):  # several cells: restore index order
                pts[first:n_out].sort()
            bxs[first:n_out] = b
            counts[b] = n_out - first
        return pts[:n_out], bxs[:n_out], counts, total

    @numba.njit(cache=True, nogil=True)
    def centred(points, pt, bx, n_valid, rotations, canonical_yaw, channels):
        counts = np.zeros(n_valid, np.int64)
        sums = np.zeros((n_valid, 3))
        for q in range(pt.shape[0]):  # in pair order, as np.bincount(weights=...) sums
            b, p = bx[q], pt[q]
            counts[b] += 1
            for k in range(3):
                sums[b, k] += np.float64(points[p, k])
        centroid = np.full((n_valid, 3), np.nan)
        for b in range(n_valid):
            if counts[b]:
                for k in range(3):
                    centroid[b, k] = sums[b, k] / counts[b]
        out = np.empty((pt.shape[0], channels), np.float32)
        local = np.empty(3)
        for q in range(pt.shape[0]):
            b, p = bx[q], pt[q]
            for k in range(3):
                local[k] = np.float64(points[p, k]) - centroid[b, k]
            for j in range(3):
                if canonical_yaw:  # same sum order as the numpy path: ((l0 r0j) + l1 r1j) + l2 r2j
                    v = local[0] * rotations[b, 0, j]
                    v += local[1] * rotations[b, 1, j]
                    v += local[2] * rotations[b, 2, j]
                    out[q, j] = v
                else:
                    out[q, j] = local[j]
            for k in range(3, channels):
                out[q, k] = points[p, k]
        return out, centroid, counts

    return upright_pairs, centred


def kernel():
    """The compiled kernels (pairs, centring), or None where numba is missing or failed (logged once)."""
    global _kernel, _failed
    if _kernel is None and not _failed:
        try:
            _kernel = _build()
        except Exception as e:  # ImportError, or a numba/llvmlite that does not work here
            _failed = True
            log.info('compiled crop unavailable (%s); using the numpy path', e)
    return _kernel


def upright_points_in_boxes(xyz: np.ndarray, centers: np.ndarray, half: np.ndarray, rotations: np.ndarray,
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """preprocess.points_in_boxes before the cap, or None when the numpy path must run."""
    if len(centers) > MAX_BOXES or len(xyz) == 0 or len(centers) == 0:
        return None
    if np.any(rotations[:, 2, :2]) or np.any(rotations[:, :2, 2]):  # not a rotation about z only
        return None
    kernels = kernel()
    if kernels is None:
        return None
    col = [np.ascontiguousarray(a, dtype=np.float64) for a in (
        centers[:, 0], centers[:, 1], centers[:, 2], half[:, 0], half[:, 1], half[:, 2],
        rotations[:, 0, 0], rotations[:, 1, 0])]
    # one C-contiguous (M, 3) float32 array: strided views compile to code several times slower
    xyz = np.ascontiguousarray(xyz[:, :3], dtype=np.float32)
    pts, bxs, counts, candidates = kernels[0](xyz, *col, MAX_CANDIDATES)
    if candidates > MAX_CANDIDATES:  # nothing was emitted
        return None
    return pts, bxs, counts


def centred_objects(points: np.ndarray, pt: np.ndarray, bx: np.ndarray, n_valid: int, rotations: np.ndarray,
                    canonical_yaw: bool, channels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """preprocess._assemble's arithmetic: (points (T, channels) float32 centred per box, (n_valid, 3)
    centroids (NaN for empty boxes), (n_valid,) counts), or None without numba."""
    kernels = kernel()
    if kernels is None or points.dtype != np.float32 or not points.flags.c_contiguous:
        return None
    rot = np.ascontiguousarray(rotations, dtype=np.float64).reshape(-1, 3, 3)
    return kernels[1](points, pt, bx, n_valid, rot, canonical_yaw, channels)


def warm_up() -> bool:
    """Compile (or load the cached build) now, so the first frame does not pay for it."""
    one, pts = np.zeros((1, 3)), np.zeros((4, 3), np.float32)
    pairs = upright_points_in_boxes(pts, one, one + 1, np.eye(3)[None])
    if pairs is None:
        return False
    return centred_objects(pts, pairs[0], pairs[1], 1, np.eye(3)[None], True, 3) is not None
