"""The encoder's input normalisation: part of the model, recorded on its card, applied by one function.

A point encoder only works on inputs like those it was trained on. The reference code (BlendCLIP, a
ULIP fork: `data/dataset_3d.py`) feeds every object, CAD and LiDAR alike, through `pc_normalize`
(centre on the centroid, divide by the largest distance to it: the object fills the unit sphere) and
then caps objects above `npoints` (8,192) by farthest point sampling from a seeded random start. Our
own models were trained on metric coordinates (centred by blendclip_core.preprocess, never scaled)
capped by a seeded uniform subset. `normalize_objects(batch, kind, max_points)` applies either to
packed objects, so the node, the offline tools, evaluation and the trainer cannot disagree.

Apply it once per object, after cropping: 'unit_sphere' is idempotent only for objects at or below
`max_points` (an FPS-capped object is not re-centred on its subset, as in the reference).
"""

from __future__ import annotations

import numpy as np
import torch

from blendclip_core.encoder.grouping import farthest_point_sample
from blendclip_core.preprocess import CAP_SEED
from blendclip_core.types import ObjectBatch

NORMALIZATIONS = ('unit_sphere', 'metric')
CAPS = ('fps', 'uniform')
# The cap each normalisation was trained with: the reference's FPS, our crop's uniform subset.
DEFAULT_CAP = {'unit_sphere': 'fps', 'metric': 'uniform'}
# What ULIP-2 / BlendCLIP checkpoints expect (their data/dataset_3d.py), for imported checkpoints.
REFERENCE_NORMALIZATION = 'unit_sphere'
# Seed of the FPS start point. The reference seeds test objects with Python's per-process salted
# hash of their file name (and training objects not at all); we use a fixed seed, so runs repeat.
FPS_SEED = 0
# The detector's box size as its own input (EncoderConfig.box_size_input): l/w/h in metres divided by
# this, appended to every point of the object as 3 channels (about unit range for driving objects).
BOX_SIZE_SCALE = 10.0


def normalize_objects(batch: ObjectBatch, kind: str, max_points: int, cap: str | None = None,
                      seed: int | np.ndarray = FPS_SEED, device: str | torch.device = 'cpu') -> ObjectBatch:
    """Packed objects -> the encoder's input: normalised per object, then capped at `max_points`.

    kind: 'unit_sphere' (the reference's pc_normalize on xyz; an object of one point, or of identical
    points, stays centred at the origin with no division) or 'metric' (coordinates unchanged).
    cap: 'fps' (the reference: FPS from a start drawn as PCG64(seed).integers(0, n); kept points in
    FPS order) or 'uniform' (the seeded subset of blendclip_core.preprocess, in input order);
    None picks DEFAULT_CAP[kind]. seed: one int, or one per object. Channels after xyz are kept.
    device: where FPS runs. It costs O(n * max_points) per capped object (about 4 s for 100,000 points
    on one CPU core, as the reference's loop); on CUDA, objects up to 16,384 points take grouping's
    Triton kernel, built to pick the same points as its torch path.
    """
    if kind not in NORMALIZATIONS:
        raise ValueError(f'unknown input normalisation {kind!r}; choose one of {NORMALIZATIONS}')
    cap = DEFAULT_CAP[kind] if cap is None else cap
    if cap not in CAPS:
        raise ValueError(f'unknown cap {cap!r}; choose one of {CAPS}')
    if int(max_points) < 1:
        raise ValueError(f'max_points must be >= 1, got {max_points}')
    points = unit_sphere(batch) if kind == 'unit_sphere' else batch.points
    over = np.flatnonzero(batch.counts > max_points)
    if len(over) == 0:
        return ObjectBatch(points.copy() if points is batch.points else points, batch.offsets.copy())
    if cap == 'fps':
        kept = _fps_rows(points, batch.offsets, over, int(max_points), _seeds(seed, len(batch)),
                         torch.device(device))
    else:
        kept = _uniform_rows(batch.offsets, over, int(max_points))
    return _take(points, batch.offsets, over, kept, int(max_points))


def append_box_size(batch: ObjectBatch, sizes_lwh: np.ndarray) -> ObjectBatch:
    """Objects with their box's (l, w, h) / BOX_SIZE_SCALE appended to every point: 3 more channels.

    sizes_lwh: (B, 3), one box per object. Unlike the coordinates, these channels are never normalised,
    so a unit_sphere model still sees the metric size, alike for CAD and real objects.
    """
    sizes = np.asarray(sizes_lwh, np.float32).reshape(-1, 3)
    if len(sizes) != len(batch):
        raise ValueError(f'{len(sizes)} box sizes for {len(batch)} objects')
    per_point = np.repeat(sizes / np.float32(BOX_SIZE_SCALE), batch.counts, axis=0)
    return ObjectBatch(np.concatenate([batch.points, per_point], axis=1).astype(np.float32),
                       batch.offsets.copy())


def box_size_input(encoder) -> bool:
    """Whether the encoder takes the box l/w/h as 3 extra channels (EncoderConfig.box_size_input)."""
    return bool(getattr(getattr(encoder, 'config', None), 'box_size_input', False))


def points_box_size(batch: ObjectBatch) -> np.ndarray:
    """(B, 3) l/w/h of each object's own points, for objects that come without a box (predict, mined
    triplets): the extent along the principal axes of its xy spread (l >= w, whatever the yaw) and its
    z extent. It is the tight box of the points: a detector's box of a sparse object is larger.
    """
    out = np.zeros((len(batch), 3), np.float32)
    for i in range(len(batch)):
        xyz = batch.object(i)[:, :3].astype(np.float64)
        if len(xyz) < 2:
            continue
        xy = xyz[:, :2] - xyz[:, :2].mean(0)
        _, vecs = np.linalg.eigh(xy.T @ xy)
        ext = np.ptp(xy @ vecs, axis=0)
        out[i] = (ext.max(), ext.min(), np.ptp(xyz[:, 2]))
    return out


def unit_sphere(batch: ObjectBatch) -> np.ndarray:
    """(T, C) points with each object's xyz centred on its centroid and divided by its largest norm.

    Computed in float64 over the whole packed batch (no loop over objects), returned as float32.
    """
    counts = batch.counts
    out = batch.points.copy()
    if len(out) == 0:
        return out
    obj = np.repeat(np.arange(len(counts)), counts)
    xyz = batch.points[:, :3].astype(np.float64)
    sums = np.stack([np.bincount(obj, weights=xyz[:, k], minlength=len(counts)) for k in range(3)], 1)
    centred = xyz - (sums / np.maximum(counts, 1)[:, None])[obj]
    radius = np.sqrt(np.einsum('ij,ij->i', centred, centred))
    nonempty = np.flatnonzero(counts > 0)
    largest = np.zeros(len(counts))
    largest[nonempty] = np.maximum.reduceat(radius, batch.offsets[nonempty])
    scale = np.divide(1.0, largest, out=np.ones_like(largest), where=largest > 0)  # m == 0: as is
    out[:, :3] = centred * scale[obj][:, None]
    return out


def _seeds(seed: int | np.ndarray, n: int) -> np.ndarray:
    seeds = np.broadcast_to(np.asarray(seed, dtype=np.int64), (n,))
    if (seeds < 0).any():
        raise ValueError('FPS seeds must be >= 0')
    return seeds


def _fps_rows(points: np.ndarray, offsets: np.ndarray, over: np.ndarray, max_points: int,
              seeds: np.ndarray, device: torch.device) -> np.ndarray:
    """(len(over), max_points) rows of `points` picked by FPS per object (one batched FPS call).

    Our FPS (blendclip_core.encoder.grouping, float32 distances, ties to the lowest index) starts at
    an object's first row, so each object's drawn start is swapped with its first row: the same
    sequence as the reference's loop except where two candidates tie exactly.
    """
    rows = []
    for i in over:
        n = offsets[i + 1] - offsets[i]
        start = np.random.Generator(np.random.PCG64(int(seeds[i]))).integers(0, n)
        order = np.arange(n)
        order[[0, start]] = order[[start, 0]]
        rows.append(offsets[i] + order)
    counts = np.array([len(r) for r in rows])
    sub_rows = np.concatenate(rows)
    sub_off = torch.from_numpy(np.concatenate([[0], np.cumsum(counts)])).to(device)
    xyz = torch.from_numpy(np.ascontiguousarray(points[sub_rows, :3], dtype=np.float32)).to(device)
    k = torch.full((len(over),), max_points, dtype=torch.long, device=device)
    idx = farthest_point_sample(xyz, sub_off, k, max_points, int(counts.max()), start='first',
                                backend='auto' if device.type == 'cuda' else 'torch')
    return sub_rows[idx.cpu().numpy()]


def _uniform_rows(offsets: np.ndarray, over: np.ndarray, max_points: int) -> np.ndarray:
    """(len(over), max_points) rows: blendclip_core.preprocess's seeded uniform subset, order kept."""
    out = np.empty((len(over), max_points), dtype=np.int64)
    for j, i in enumerate(over):
        n = offsets[i + 1] - offsets[i]
        chosen = np.random.default_rng(CAP_SEED).choice(n, size=max_points, replace=False)
        out[j] = offsets[i] + np.sort(chosen)
    return out


def _take(points: np.ndarray, offsets: np.ndarray, over: np.ndarray, kept: np.ndarray,
          max_points: int) -> ObjectBatch:
    """Repack: objects in `over` keep the rows `kept` (in that order), the others all of theirs."""
    counts = np.diff(offsets)
    new_counts = np.minimum(counts, max_points)
    new_off = np.concatenate([[0], np.cumsum(new_counts)])
    obj = np.repeat(np.arange(len(counts)), new_counts)
    rows = offsets[obj] + (np.arange(new_off[-1]) - new_off[obj])  # uncapped: every row in order
    rows[new_off[over][:, None] + np.arange(max_points)] = kept
    return ObjectBatch(points[rows], new_off)
