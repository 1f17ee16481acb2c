"""Point-cloud augmentation of the method (scale, shift, small rotations, random point drop-out).

Pure numpy with an explicit Generator: the trainer seeds it from (seed, step, rank, slot), so an
augmented batch is a function of the step, like its composition, and resume stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    enabled: bool = True
    scale: tuple[float, float] = (0.8, 1.25)  # isotropic scale range
    shift: float = 0.1  # uniform translation per axis, metres (objects are centred)
    jitter_deg: float = 3.0  # rotation jitter about each axis, degrees (clipped normal, sigma/3)
    rotate_z_deg: float = 0.0  # uniform yaw in [-v, v]; 180 for yaw-free synthetic objects
    dropout_max: float = 0.875  # drop a random fraction in [0, dropout_max] of the points
    min_points: int = 1  # never drop below this many points
    noise_std: float = 0.0  # Gaussian noise per coordinate, metres


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


def augment_points(points: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """points (N, C), xyz first; returns a new (M, C) float32 array, M <= N."""
    if not cfg.enabled or len(points) == 0:
        return np.asarray(points, np.float32)
    pts = np.array(points, dtype=np.float64)
    if cfg.dropout_max > 0 and len(pts) > cfg.min_points:
        ratio = rng.uniform(0.0, cfg.dropout_max)
        keep = rng.random(len(pts)) >= ratio
        if keep.sum() < cfg.min_points:
            keep[rng.choice(len(pts), cfg.min_points, replace=False)] = True
        pts = pts[keep]
    sigma = np.deg2rad(cfg.jitter_deg) / 3.0
    rx, ry, rz = np.clip(rng.normal(0.0, sigma, 3), -3 * sigma, 3 * sigma) if sigma > 0 else (0, 0, 0)
    if cfg.rotate_z_deg:
        rz = rz + rng.uniform(-1, 1) * np.deg2rad(cfg.rotate_z_deg)
    xyz = pts[:, :3] @ _rotation(rx, ry, rz).T
    xyz = xyz * rng.uniform(*cfg.scale) + rng.uniform(-cfg.shift, cfg.shift, 3)
    if cfg.noise_std > 0:
        xyz = xyz + rng.normal(0.0, cfg.noise_std, xyz.shape)
    pts[:, :3] = xyz
    return pts.astype(np.float32)
