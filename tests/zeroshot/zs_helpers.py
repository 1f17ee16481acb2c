"""Helpers of the zero-shot tests (plain functions; fixtures live in conftest.py)."""

import numpy as np

from blendclip_core.geometry import Boxes


def brute_force_inside(xyz: np.ndarray, boxes: Boxes, margin: float = 0.0,
                       size_limits: bool = True) -> list[np.ndarray]:
    """Per-box loop, the obvious way: indices of finite points inside each valid box (size_limits
    False: boxes of any size are valid, as with CropLimits.unbounded())."""
    out = []
    rotations = boxes.rotations
    valid = boxes.valid_mask() if size_limits else boxes.valid_mask(None, None)
    xyz64 = xyz.astype(np.float64)
    finite = np.isfinite(xyz64).all(1)
    for i in range(len(boxes)):
        if not valid[i]:
            out.append(np.zeros(0, np.int64))
            continue
        local = (xyz64 - boxes.centers[i]) @ rotations[i]
        inside = finite & (np.abs(local) <= boxes.sizes[i] / 2 + margin).all(1)
        out.append(np.flatnonzero(inside))
    return out


def random_boxes(rng: np.random.Generator, n: int, extent: float = 40.0, size=(0.3, 6.0),
                 tilt: bool = False) -> Boxes:
    centers = rng.uniform(-extent, extent, (n, 3))
    centers[:, 2] = rng.uniform(-2, 2, n)
    sizes = rng.uniform(size[0], size[1], (n, 3))
    if not tilt:
        return Boxes.from_yaw(centers, sizes, rng.uniform(-np.pi, np.pi, n))
    quats = rng.normal(size=(n, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    return Boxes(centers, sizes, quats, tuple(str(i) for i in range(n)))


def random_cloud(rng: np.random.Generator, m: int, extent: float = 45.0) -> np.ndarray:
    pts = rng.uniform(-extent, extent, (m, 4)).astype(np.float32)
    pts[:, 2] = rng.uniform(-3, 3, m)
    return pts
