"""`--data synthetic`: a generated in-memory triplet set, so the whole training loop runs on a CPU in seconds.

K shape classes (sphere, box, cylinder, ...) sampled as dense full surfaces ('synthetic', like CAD) or as
sparse, noisy, one-sided views ('real-like', like a LiDAR seeing one side of an object). The text space is
the registered 'toy' space (blendclip_core.text_space.toy): a fixed random unit vector per class name
(seeded, nearly orthogonal for dim >= 32): the encoder must learn geometry -> class direction, which is
exactly what zero-shot accuracy measures, at no CLIP cost.
The image embedding is that vector plus noise (sometimes missing), exercising the image term and its mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from blendclip_core.data.triplet import REAL, SYNTHETIC, Triplet
from blendclip_core.text_space.toy import class_embeddings


def _sphere(rng, n):
    v = rng.normal(size=(n, 3))
    return 0.5 * v / np.linalg.norm(v, axis=1, keepdims=True)


def _box(rng, n):
    face = rng.integers(0, 6, n)
    p = rng.uniform(-0.5, 0.5, (n, 3))
    p[np.arange(n), face % 3] = np.where(face < 3, -0.5, 0.5)
    return p


def _cylinder(rng, n):
    a = rng.uniform(0, 2 * np.pi, n)
    cap = rng.random(n) < 1 / 3  # caps' share of the area for r = 0.5, h = 1
    r = np.where(cap, 0.5 * np.sqrt(rng.random(n)), 0.5)
    z = np.where(cap, np.where(rng.random(n) < 0.5, -0.5, 0.5), rng.uniform(-0.5, 0.5, n))
    return np.stack([r * np.cos(a), r * np.sin(a), z], 1)


def _cone(rng, n):
    a = rng.uniform(0, 2 * np.pi, n)
    base = rng.random(n) < 0.3
    s = np.sqrt(rng.random(n))  # uniform on the lateral area: radius grows with distance from the apex
    r = np.where(base, 0.5 * np.sqrt(rng.random(n)), 0.5 * s)
    z = np.where(base, -0.5, 0.5 - s)
    return np.stack([r * np.cos(a), r * np.sin(a), z], 1)


def _torus(rng, n):
    u, v = rng.uniform(0, 2 * np.pi, (2, n))
    big, small = 0.35, 0.15
    return np.stack([(big + small * np.cos(v)) * np.cos(u), (big + small * np.cos(v)) * np.sin(u),
                     small * np.sin(v)], 1)


def _pyramid(rng, n):
    apex = np.array([0.0, 0.0, 0.5])
    corners = np.array([[-0.5, -0.5, -0.5], [0.5, -0.5, -0.5], [0.5, 0.5, -0.5], [-0.5, 0.5, -0.5]])
    base = rng.random(n) < 0.3
    out = np.column_stack([rng.uniform(-0.5, 0.5, (n, 2)), np.full(n, -0.5)])
    side = rng.integers(0, 4, n)
    a, b = rng.random((2, n))
    flip = a + b > 1
    a, b = np.where(flip, 1 - a, a), np.where(flip, 1 - b, b)
    tri = corners[side] + a[:, None] * (corners[(side + 1) % 4] - corners[side]) + b[:, None] * (
        apex - corners[side])
    return np.where(base[:, None], out, tri)


def _disk(rng, n):
    a, r = rng.uniform(0, 2 * np.pi, n), 0.5 * np.sqrt(rng.random(n))
    return np.stack([r * np.cos(a), r * np.sin(a), rng.normal(0, 0.01, n)], 1)


def _cross(rng, n):
    p = _box(rng, n) * np.array([1.0, 0.2, 0.2])
    swap = rng.random(n) < 0.5
    p[swap] = p[swap][:, [1, 0, 2]]
    return p


SHAPES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    'sphere': _sphere, 'box': _box, 'cylinder': _cylinder, 'cone': _cone, 'torus': _torus,
    'pyramid': _pyramid, 'disk': _disk, 'cross': _cross}


@dataclass(frozen=True)
class ToySetConfig:
    classes: tuple[str, ...] = tuple(SHAPES)
    per_class: int = 64
    domain: str = 'synthetic'  # 'synthetic' (dense, full surface) or 'real' (sparse, one-sided, noisy)
    dim: int = 32  # embedding width; must equal the model's output width
    seed: int = 0  # sample seed (held-out sets use another); class vectors use text_seed
    text_seed: int = 0
    points: tuple[int, int] = (96, 160)  # points per object, uniform in [lo, hi]
    noise: float = 0.005  # Gaussian noise, in units of the object size
    image_noise: float = 0.5  # image embedding = text vector + this * unit-variance noise / sqrt(dim)
    missing_image: float = 0.2  # fraction of samples without an image


REAL_LIKE_DEFAULTS = {'points': (16, 64), 'noise': 0.02}


def _pose(rng: np.random.Generator, pts: np.ndarray) -> np.ndarray:
    """Random anisotropic size and yaw, a small tilt: z stays roughly up, as for driving objects."""
    pts = pts * rng.uniform(0.7, 1.3) * rng.uniform(0.85, 1.15, 3)
    yaw, tilt = rng.uniform(0, 2 * np.pi), rng.normal(0, 0.1)
    c, s, ct, st = np.cos(yaw), np.sin(yaw), np.cos(tilt), np.sin(tilt)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, ct, -st], [0, st, ct]])
    return pts @ rot.T


def _one_sided(rng: np.random.Generator, pts: np.ndarray) -> np.ndarray:
    """Keep the points facing a random horizontal viewpoint (what one LiDAR position sees)."""
    a = rng.uniform(0, 2 * np.pi)
    view = np.array([np.cos(a), np.sin(a), rng.uniform(0.0, 0.5)])
    keep = pts @ view >= np.quantile(pts @ view, rng.uniform(0.35, 0.6))
    return pts[keep]


def sample_object(shape: str, rng: np.random.Generator, n: int, domain: str, noise: float) -> np.ndarray:
    if domain == REAL:
        pts = _one_sided(rng, SHAPES[shape](rng, 3 * n))[:n]
    else:
        pts = SHAPES[shape](rng, n)
    pts = _pose(rng, pts) + rng.normal(0, noise, (len(pts), 3))
    return (pts - pts.mean(0)).astype(np.float32)


def make_toy_triplets(cfg: ToySetConfig) -> list[Triplet]:
    """cfg.per_class objects of each class; deterministic in cfg."""
    if cfg.domain not in (SYNTHETIC, REAL):
        raise ValueError(f'toy domain must be {SYNTHETIC!r} or {REAL!r}, got {cfg.domain!r}')
    unknown = set(cfg.classes) - set(SHAPES)
    if unknown:
        raise ValueError(f'unknown toy shapes {sorted(unknown)}; available: {sorted(SHAPES)}')
    text = class_embeddings(cfg.classes, cfg.dim, cfg.text_seed)
    rng = np.random.default_rng([cfg.seed, 0 if cfg.domain == SYNTHETIC else 1])
    out = []
    for k, name in enumerate(cfg.classes):
        for j in range(cfg.per_class):
            n = int(rng.integers(cfg.points[0], cfg.points[1] + 1))
            pts = sample_object(name, rng, n, cfg.domain, cfg.noise)
            image = None
            if rng.random() >= cfg.missing_image:
                v = text[k] + cfg.image_noise * rng.normal(size=cfg.dim) / np.sqrt(cfg.dim)
                image = (v / np.linalg.norm(v)).astype(np.float32)
            out.append(Triplet(key=f'toy-{cfg.domain}-{cfg.seed}-{name}-{j}', points=pts, caption=f'a {name}',
                               label=name, label_coarse=name, domain=cfg.domain, text_embedding=text[k],
                               image_embedding=image))
    return out
