"""Mesh building blocks for the parametric driving objects (box frame: x forward, y left, z up).

Everything is a plain trimesh primitive or an eight-corner hexahedron, concatenated without booleans:
the LiDAR simulator and the surface sampler only need triangles, and overlapping parts are harmless
(the first surface a ray meets wins; interior faces only add a few dense samples).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import trimesh

# Triangles of a hexahedron whose corners are ordered bottom (z-) ring then top ring, each ring
# counter-clockwise seen from above: (-x-y, +x-y, +x+y, -x+y). Outward-facing.
_HEX_FACES = np.array([
    [0, 2, 1], [0, 3, 2],  # bottom
    [4, 5, 6], [4, 6, 7],  # top
    [0, 1, 5], [0, 5, 4],  # -y side
    [1, 2, 6], [1, 6, 5],  # +x side
    [2, 3, 7], [2, 7, 6],  # +y side
    [3, 0, 4], [3, 4, 7],  # -x side
])


def hexahedron(corners: np.ndarray) -> trimesh.Trimesh:
    """A closed solid from 8 corners (bottom ring then top ring): slanted hoods, wedges, tapers."""
    return trimesh.Trimesh(np.asarray(corners, dtype=np.float64), _HEX_FACES, process=False)


def box(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float) -> trimesh.Trimesh:
    """Axis-aligned box by its bounds."""
    return taper(x0, x1, y0, y1, z0, z1)


def taper(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float,
          top_x: tuple[float, float] | None = None, top_y: tuple[float, float] | None = None
          ) -> trimesh.Trimesh:
    """A box whose top face may be narrower/shifted in x and y (car cabins, jersey barriers)."""
    tx0, tx1 = top_x if top_x is not None else (x0, x1)
    ty0, ty1 = top_y if top_y is not None else (y0, y1)
    return hexahedron([
        [x0, y0, z0], [x1, y0, z0], [x1, y1, z0], [x0, y1, z0],
        [tx0, ty0, z1], [tx1, ty0, z1], [tx1, ty1, z1], [tx0, ty1, z1],
    ])


def rod(p0: Sequence[float], p1: Sequence[float], radius: float, sections: int = 8) -> trimesh.Trimesh:
    """A cylinder between two points (frames, legs, poles, booms)."""
    return trimesh.creation.cylinder(radius=radius, segment=np.array([p0, p1], dtype=np.float64),
                                     sections=sections)


def wheel(center: Sequence[float], radius: float, width: float, axis: str = 'y',
          sections: int = 14) -> trimesh.Trimesh:
    """A solid wheel (vehicles): a cylinder whose axis is the box y axis by default."""
    c = np.asarray(center, dtype=np.float64)
    half = np.zeros(3)
    half['xyz'.index(axis)] = width / 2.0
    return trimesh.creation.cylinder(radius=radius, segment=np.array([c - half, c + half]),
                                     sections=sections)


def ring(center: Sequence[float], radius: float, tube: float) -> trimesh.Trimesh:
    """A tyre seen as a torus in the x-z plane (bicycles, motorcycles, scooters): open in the middle."""
    t = trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0])
    t[:3, 3] = center
    return trimesh.creation.torus(major_radius=radius, minor_radius=tube, major_sections=16,
                                  minor_sections=6, transform=t)


def ellipsoid(center: Sequence[float], radii: Sequence[float]) -> trimesh.Trimesh:
    """Heads, torsos, animal bodies."""
    m = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
    m.vertices = m.vertices * np.asarray(radii, dtype=np.float64) + np.asarray(center, dtype=np.float64)
    return m


def cone(base_center: Sequence[float], radius: float, height: float) -> trimesh.Trimesh:
    """Upright cone standing on `base_center`."""
    t = np.eye(4)
    t[:3, 3] = base_center
    return trimesh.creation.cone(radius=radius, height=height, sections=16, transform=t)


def cylinder_z(center_xy: Sequence[float], radius: float, z0: float, z1: float,
               sections: int = 16) -> trimesh.Trimesh:
    """Upright cylinder from z0 to z1 (bins, poles)."""
    x, y = center_xy
    return trimesh.creation.cylinder(radius=radius, segment=np.array([[x, y, z0], [x, y, z1]]),
                                     sections=sections)


def combine(parts: Sequence[trimesh.Trimesh]) -> trimesh.Trimesh:
    return trimesh.util.concatenate(list(parts))

