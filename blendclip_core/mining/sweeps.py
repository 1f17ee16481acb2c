"""LiDAR sweep aggregation into one reference frame and per-object motion compensation.

The sweeps come from the dataset readers (blendclip_core.datasets), each with its transform into the
reference frame and its time lag t_key - t_sweep (>= 0 for past sweeps), as nuscenes-devkit
`LidarPointCloud.from_file_multisweep` aggregates them. That removes the ego motion but smears moving
objects; `crop_sweeps` removes an object's own motion: a point of a sweep at time t is moved by
velocity * (t_key - t), so all sweeps of a moving object land on its key-frame box. Cropping uses the
shared `blendclip_core.preprocess.points_in_boxes` (the node's test), applied per sweep to boxes moved
back by velocity * lag, which is the same test.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from blendclip_core.datasets.frame import Frame
from blendclip_core.preprocess import points_in_boxes

logger = logging.getLogger(__name__)

POINT_CHANNELS = ('x', 'y', 'z', 'intensity', 'time_lag')  # what mined objects store


@dataclass
class SweepStack:
    """Sweeps of one key frame in the reference frame.

    points: (T, 4) float32 x, y, z, intensity; time_lag: (T,) float32 seconds; sweep_index: (T,) int
    (0 = key frame); skipped: (reason, file) of sweeps that could not be read.
    """

    points: np.ndarray
    time_lag: np.ndarray
    sweep_index: np.ndarray
    num_sweeps: int
    skipped: list[tuple[str, str]] = field(default_factory=list)


def stack_sweeps(clouds: list[tuple[np.ndarray, np.ndarray, float]], skipped=None) -> SweepStack:
    """clouds: (points (N, >=4) in their sensor frame, ref_from_sensor (4, 4), time lag) per sweep.

    Rows with a non-finite x, y, z or intensity are dropped. Written into one preallocated array: with
    10 sweeps of 35k points this runs for every key frame.
    """
    kept = []
    for cloud, transform, lag in clouds:
        cloud = np.asarray(cloud, dtype=np.float32)
        finite = np.isfinite(cloud[:, :4]).all(1)
        kept.append((cloud if finite.all() else cloud[finite], np.asarray(transform, np.float64), lag))
    total = sum(len(c) for c, _, _ in kept)
    points = np.empty((total, 4), np.float32)
    lags = np.empty(total, np.float32)
    index = np.empty(total, np.int32)
    start = 0
    for i, (cloud, transform, lag) in enumerate(kept):
        stop = start + len(cloud)
        # float32 arithmetic: sensor-frame coordinates are small, the error stays under 1e-5 m
        points[start:stop, :3] = cloud[:, :3] @ transform[:3, :3].T.astype(np.float32) + \
            transform[:3, 3].astype(np.float32)
        points[start:stop, 3] = cloud[:, 3]
        lags[start:stop] = lag
        index[start:stop] = i
        start = stop
    return SweepStack(points, lags, index, len(kept), list(skipped or []))


def frame_sweeps(frame: Frame) -> SweepStack:
    """Every readable sweep of a dataset frame, moved into its reference frame."""
    return stack_sweeps([(s.points, s.ref_from_sensor.matrix, s.time_lag) for s in frame.sweeps],
                        frame.skipped)


def crop_sweeps(stack: SweepStack, centers: np.ndarray, sizes_lwh: np.ndarray, rotations: np.ndarray,
                velocities: np.ndarray | None, margin: float = 0.0) -> list[np.ndarray]:
    """Points of each box, motion compensated, in the box frame: list of (n_i, 5) float32 arrays.

    centers (B, 3), sizes_lwh (B, 3), rotations (B, 3, 3) box-to-reference, velocities (B, 3) in the
    reference frame or None (no compensation). Box frame: origin at the box centre, x along the length,
    z up (the box's full rotation removed). Channels: POINT_CHANNELS. Points are ordered by sweep (key
    first) then by their order in the file. A point on a face counts as inside.
    """
    n_boxes = len(centers)
    half = np.asarray(sizes_lwh, np.float64) / 2.0 + margin
    vel = np.zeros((n_boxes, 3)) if velocities is None else np.nan_to_num(np.asarray(velocities, np.float64))
    parts: list[list[np.ndarray]] = [[] for _ in range(n_boxes)]
    for s in range(stack.num_sweeps):
        sel = np.flatnonzero(stack.sweep_index == s)
        if len(sel) == 0 or n_boxes == 0:
            continue
        lag = float(stack.time_lag[sel[0]])
        # p + v * lag inside box  <=>  p inside the box moved back by v * lag
        pt, bx = points_in_boxes(stack.points[sel, :3], centers - vel * lag, half, rotations)[:2]
        starts = np.searchsorted(bx, np.arange(n_boxes + 1))
        for b in np.flatnonzero(np.diff(starts)):
            parts[b].append(sel[np.sort(pt[starts[b]:starts[b + 1]])])
    out = []
    for b in range(n_boxes):
        if not parts[b]:
            out.append(np.zeros((0, len(POINT_CHANNELS)), np.float32))
            continue
        idx = np.concatenate(parts[b])
        lag = stack.time_lag[idx].astype(np.float64)
        xyz = stack.points[idx, :3].astype(np.float64) + vel[b] * lag[:, None]
        local = (xyz - centers[b]) @ rotations[b]
        out.append(np.column_stack([local, stack.points[idx, 3], lag]).astype(np.float32))
    return out
