"""A simulated spinning 32-beam LiDAR (nuScenes LIDAR_TOP-like) looking at one generated object.

Produces the sparse 'real-like' domain: the object stands on a ground plane at a random range and
heading; rays on the sensor's beam/azimuth grid are cast exactly against the mesh triangles (vectorised
Moeller-Trumbore, so self-occlusion is exact: a ray stops at the first surface), then range noise,
per-object dropout (dark paint, glass, grazing angles), partial occlusion by something in between and
annotation noise of the box are applied. The result is a sensor-frame cloud plus the annotated box, which
is then cropped exactly as a real sweep is (blendclip_core.preprocess).

Calibrated against the real sweep in data/nuscenes_sample (see tests/demo/test_synthetic.py and
docs/model_card.md): e.g. pedestrians at 13-18 m give about 5-15 points, a car at 20 m about 50.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blendclip_core.geometry import Boxes

# nuScenes LIDAR_TOP (Velodyne HDL-32E): 32 beams from -30.67 to +10.67 deg, 1084 firings per turn
# at 20 Hz (measured on the sample sweep: 1084 points per ring, ring elevations 1.333 deg apart).
HDL32_ELEVATIONS_DEG = tuple(float(e) for e in np.linspace(-30.67, 10.67, 32))


@dataclass(frozen=True)
class LidarConfig:
    elevations_deg: tuple[float, ...] = HDL32_ELEVATIONS_DEG  # beam elevation angles
    azimuth_step_deg: float = 360.0 / 1084  # horizontal angle between firings
    beam_jitter_deg: float = 0.04  # per-beam calibration error
    sensor_height: float = 1.84  # LIDAR_TOP above the road, metres
    sensor_height_std: float = 0.06  # road slope / suspension
    range_min: float = 5.0  # object centre distance drawn uniformly in [range_min, range_max]
    range_max: float = 50.0
    max_range: float = 100.0  # rays stop here
    range_noise: float = 0.02  # std of range error, metres
    dropout_min: float = 0.15  # per-object fraction of returns lost, drawn uniformly in [min, max]
    dropout_max: float = 0.6
    occlusion_prob: float = 0.25  # chance that something in between hides part of the object
    ground: bool = True  # cast rays at the road too (ground points leak into real boxes)
    ground_noise: float = 0.03  # road roughness, metres
    box_center_noise: float = 0.04  # annotation noise of the box centre, metres (std)
    box_size_noise: float = 0.02  # relative annotation noise of the box size (std)
    box_yaw_noise: float = 0.02  # radians (std)


@dataclass
class Scan:
    """One simulated sweep of one object: sensor-frame points and the annotated box."""

    points: np.ndarray  # (N, 3) float32, sensor frame (all returns near the object, ground included)
    box: Boxes  # one annotated box in the sensor frame ('lidar')
    range_m: float  # distance of the box centre in the ground plane
    true_center: np.ndarray  # noise-free box centre, sensor frame


def _ray_aabb(origin: np.ndarray, dirs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Rays (shared origin) that hit the axis-aligned box [lo, hi] in front of the origin."""
    with np.errstate(divide='ignore', invalid='ignore'):
        inv = 1.0 / dirs
        t0 = (lo - origin) * inv
        t1 = (hi - origin) * inv
    tmin = np.nanmax(np.minimum(t0, t1), axis=1)
    tmax = np.nanmin(np.maximum(t0, t1), axis=1)
    return (tmax >= np.maximum(tmin, 0.0))


def ray_mesh_distance(origin: np.ndarray, dirs: np.ndarray, triangles: np.ndarray,
                      chunk_pairs: int = 1_000_000) -> np.ndarray:
    """Distance along each unit ray (shared origin) to the first triangle it hits, inf for misses.

    Exact first-hit ray casting is what gives self-occlusion: the far side of a car is never seen.
    """
    out = np.full(len(dirs), np.inf)
    if len(dirs) == 0 or len(triangles) == 0:
        return out
    v0 = triangles[:, 0]
    e1 = triangles[:, 1] - v0
    e2 = triangles[:, 2] - v0
    s = origin[None, :] - v0  # (T, 3): the origin is shared by all rays
    q = np.cross(s, e1)  # (T, 3)
    t_num = np.einsum('tk,tk->t', e2, q)
    step = max(1, chunk_pairs // len(triangles))
    for a in range(0, len(dirs), step):
        d = dirs[a:a + step]
        p = np.cross(d[:, None, :], e2[None, :, :])  # (R, T, 3)
        det = np.einsum('rtk,tk->rt', p, e1)
        with np.errstate(divide='ignore', invalid='ignore'):
            inv = 1.0 / det
            u = np.einsum('rtk,tk->rt', p, s) * inv
            v = (d @ q.T) * inv
            t = t_num[None, :] * inv
            ok = (np.abs(det) > 1e-12) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 1e-6)
        out[a:a + step] = np.where(ok, t, np.inf).min(axis=1)
    return out


def _beam_grid(cfg: LidarConfig, azimuth: float, half_width: float, rng: np.random.Generator):
    """Unit ray directions of the firings whose azimuth is within half_width of `azimuth`."""
    step = np.radians(cfg.azimuth_step_deg)
    phase = rng.uniform(0, step)
    k0 = np.floor((azimuth - half_width - phase) / step)
    k1 = np.ceil((azimuth + half_width - phase) / step)
    az = phase + np.arange(k0, k1 + 1) * step
    el = np.radians(np.asarray(cfg.elevations_deg)) + np.radians(cfg.beam_jitter_deg) * rng.standard_normal(
        len(cfg.elevations_deg))
    az_g, el_g = np.meshgrid(az, el)
    az_g, el_g = az_g.ravel(), el_g.ravel()
    dirs = np.stack([np.cos(el_g) * np.cos(az_g), np.cos(el_g) * np.sin(az_g), np.sin(el_g)], axis=1)
    return dirs, az_g, el_g


DEFAULT_LIDAR = LidarConfig()


def scan_object(mesh, size_lwh: np.ndarray, rng: np.random.Generator, cfg: LidarConfig = DEFAULT_LIDAR,
                range_m: float | None = None, yaw: float | None = None) -> Scan:
    """Place the mesh (box frame, centred) on the road and sweep it once.

    Returns every return within a margin of the object (object hits and road hits), so the caller's
    box crop decides, as on a real sweep, which road points leak into the box.
    """
    size_lwh = np.asarray(size_lwh, dtype=np.float64)
    rng_m = float(rng.uniform(cfg.range_min, cfg.range_max)) if range_m is None else float(range_m)
    azimuth = float(rng.uniform(-np.pi, np.pi))
    yaw = float(rng.uniform(-np.pi, np.pi)) if yaw is None else float(yaw)
    ground_z = -(cfg.sensor_height + cfg.sensor_height_std * rng.standard_normal())
    center = np.array([rng_m * np.cos(azimuth), rng_m * np.sin(azimuth), ground_z + size_lwh[2] / 2])

    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])  # box -> sensor
    radius_xy = 0.5 * float(np.hypot(size_lwh[0], size_lwh[1])) + 0.6
    half_width = float(np.arcsin(min(1.0, radius_xy / rng_m))) if rng_m > radius_xy else np.pi
    dirs, az, el = _beam_grid(cfg, azimuth, half_width, rng)

    # Cast in the box frame, where the mesh lives: origin and directions rotated back.
    origin_b = rot.T @ (-center)
    dirs_b = dirs @ rot  # == (rot.T @ d.T).T
    lo, hi = mesh.bounds
    cand = np.flatnonzero(_ray_aabb(origin_b, dirs_b, lo, hi))
    t_obj = np.full(len(dirs), np.inf)
    t_obj[cand] = ray_mesh_distance(origin_b, dirs_b[cand], np.asarray(mesh.triangles))

    t_hit = t_obj
    if cfg.ground:
        with np.errstate(divide='ignore'):
            t_ground = np.where(dirs[:, 2] < -1e-6, ground_z / dirs[:, 2], np.inf)
        t_hit = np.minimum(t_obj, t_ground)
    keep = np.isfinite(t_hit) & (t_hit < cfg.max_range)

    if rng.random() < cfg.occlusion_prob:  # something in between: a band of azimuths, up to some height
        a0 = rng.uniform(azimuth - half_width, azimuth + half_width)
        band = rng.uniform(0.2, 0.6) * half_width
        top = rng.uniform(-0.2, 0.25)  # elevation (rad) below which the occluder blocks
        keep &= ~((np.abs(az - a0) < band) & (el < top))
    keep &= rng.random(len(dirs)) >= rng.uniform(cfg.dropout_min, cfg.dropout_max)

    t = t_hit[keep] + cfg.range_noise * rng.standard_normal(int(keep.sum()))
    pts = dirs[keep] * t[:, None]
    on_ground = ~(t_obj[keep] <= t_hit[keep])
    pts[on_ground, 2] += cfg.ground_noise * rng.standard_normal(int(on_ground.sum()))
    near = np.linalg.norm(pts[:, :2] - center[:2], axis=1) < radius_xy + 0.5
    pts = pts[near].astype(np.float32)

    noisy_center = center + cfg.box_center_noise * rng.standard_normal(3)
    noisy_size = size_lwh * (1.0 + cfg.box_size_noise * rng.standard_normal(3))
    noisy_yaw = yaw + cfg.box_yaw_noise * rng.standard_normal()
    box = Boxes.from_yaw(noisy_center[None], noisy_size[None], [noisy_yaw], ids=('0',), frame_id='lidar')
    return Scan(pts, box, rng_m, center)
