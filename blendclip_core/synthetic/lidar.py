"""Simulated spinning LiDARs (16 to 128 beams) looking at one generated object.

Produces the sparse 'real-like' domain: the object stands on a ground plane at a random range and
heading; each scan draws its sensor from a seeded mix of real beam layouts (VLP-16, HDL-32E of nuScenes,
VLP-32C, the two VLP-32C of Argoverse 2, HDL-64E of KITTI, a 128-beam unit) and a mounting height
(1.5-2.1 m). Rays on that sensor's beam/azimuth grid are cast exactly against the mesh triangles
(vectorised Moeller-Trumbore, so self-occlusion is exact: a ray stops at the first surface, the far side
is never seen), then range noise, per-object dropout (dark paint, glass, grazing angles), partial
occlusion by something in between, truncation by a front-camera field of view (KITTI's camera-cropped
cloud) and annotation noise of the box are applied. The result is a sensor-frame cloud plus the
annotated box, which is then cropped exactly as a real sweep is (blendclip_core.preprocess).

Calibrated against real sweeps (tests/demo/test_synthetic.py, tests/synthetic/test_sensors.py): with the
HDL-32E, pedestrians at 13-18 m give about 5-15 points and a car at 20 m about 50, as in the nuScenes
sample; with the VLP-32C pair a car at 20 m gives about 400 and a pedestrian at 15 m about 60, as in the
Argoverse 2 sample. A VLP-16 sees about as many points as the HDL-32E (fewer beams, more firings per turn).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blendclip_core.geometry import Boxes

# nuScenes LIDAR_TOP (Velodyne HDL-32E): 32 beams from -30.67 to +10.67 deg, 1084 firings per turn
# at 20 Hz (measured on the sample sweep: 1084 points per ring, ring elevations 1.333 deg apart).
HDL32_ELEVATIONS_DEG = tuple(float(e) for e in np.linspace(-30.67, 10.67, 32))
# Argoverse 2 (two Velodyne VLP-32C): 32 beams from -25 to +15 deg, 0.33 deg apart around the horizon
# (data sheet); 0.2 deg between firings at 10 Hz.
VLP32C_ELEVATIONS_DEG = (-25.0, -15.639, -11.31, -8.843, -7.254, -6.148, -5.333, -4.667, -4.0, -3.667,
                         -3.333, -3.0, -2.667, -2.333, -2.0, -1.667, -1.333, -1.0, -0.667, -0.333, 0.0,
                         0.333, 0.667, 1.0, 1.333, 1.667, 2.333, 3.333, 4.667, 7.0, 10.333, 15.0)
# Argoverse 2 sweeps merge two roof VLP-32C, one mounted upside down (rings measured on the AV2 sample's
# road: radii of both layouts): 64 beams from -25 to +25 deg, modelled from one origin, the flipped
# unit's beams offset by half the 0.33 deg spacing so that no two rings coincide.
VLP32C_PAIR_ELEVATIONS_DEG = tuple(sorted(VLP32C_ELEVATIONS_DEG + tuple(round(0.167 - e, 3)
                                                                        for e in VLP32C_ELEVATIONS_DEG)))
# KITTI (Velodyne HDL-64E): an upper block of 32 beams from +2 to -8.33 deg (1/3 deg apart) and a lower
# block from -8.83 to -24.33 deg (1/2 deg apart); about 2083 firings per turn at 10 Hz.
HDL64_ELEVATIONS_DEG = tuple(float(e) for e in np.concatenate([np.linspace(-24.33, -8.83, 32),
                                                               np.linspace(-8.33, 2.0, 32)]))


def _uniform_beams(lo_deg: float, hi_deg: float, beams: int) -> tuple[float, ...]:
    return tuple(float(e) for e in np.linspace(lo_deg, hi_deg, beams))


@dataclass(frozen=True)
class SensorModel:
    """One spinning LiDAR's beam layout and timing, from its data sheet (a row of data, not code)."""

    name: str
    elevations_deg: tuple[float, ...]  # beam elevation angles, one per ring
    azimuth_step_deg: float  # horizontal angle between firings at the usual spin rate
    range_noise: float = 0.02  # std of the range error, metres
    max_range: float = 100.0  # no returns beyond, metres

    @property
    def beams(self) -> int:
        return len(self.elevations_deg)


SENSORS: dict[str, SensorModel] = {s.name: s for s in (
    SensorModel('VLP-16', _uniform_beams(-15.0, 15.0, 16), 0.2, 0.03, 100.0),  # robots, low-cost rigs
    SensorModel('HDL-32E', HDL32_ELEVATIONS_DEG, 360.0 / 1084, 0.02, 100.0),  # nuScenes
    SensorModel('VLP-32C', VLP32C_ELEVATIONS_DEG, 0.2, 0.03, 200.0),  # one unit: shuttles, robots
    SensorModel('VLP-32C x2', VLP32C_PAIR_ELEVATIONS_DEG, 0.2, 0.03, 200.0),  # Argoverse 2
    SensorModel('HDL-64E', HDL64_ELEVATIONS_DEG, 360.0 / 2083, 0.02, 120.0),  # KITTI
    SensorModel('128-beam', _uniform_beams(-25.0, 15.0, 128), 0.2, 0.03, 200.0),  # VLS-128-like
)}
# (sensor name, relative weight): each scan's sensor is drawn from this mix (the seeded distribution).
DEFAULT_SENSOR_MIX: tuple[tuple[str, float], ...] = (
    ('VLP-16', 1.0), ('HDL-32E', 2.0), ('VLP-32C', 1.0), ('VLP-32C x2', 1.5), ('HDL-64E', 1.5),
    ('128-beam', 1.0))


@dataclass(frozen=True)
class LidarConfig:
    elevations_deg: tuple[float, ...] = HDL32_ELEVATIONS_DEG  # beam elevations when sensor_mix is ()
    azimuth_step_deg: float = 360.0 / 1084  # horizontal angle between firings (sensor_mix ())
    beam_jitter_deg: float = 0.04  # per-beam calibration error
    sensor_height: float = 1.84  # LIDAR_TOP above the road, metres (sensor_mix ())
    sensor_height_std: float = 0.06  # road slope / suspension
    range_min: float = 5.0  # object centre distance drawn uniformly in [range_min, range_max]
    range_max: float = 50.0
    max_range: float = 100.0  # rays stop here (sensor_mix ())
    range_noise: float = 0.02  # std of range error, metres (sensor_mix ())
    dropout_min: float = 0.15  # per-object fraction of returns lost, drawn uniformly in [min, max]
    dropout_max: float = 0.6
    occlusion_prob: float = 0.25  # chance that something in between hides part of the object
    ground: bool = True  # cast rays at the road too (ground points leak into real boxes)
    ground_noise: float = 0.03  # road roughness, metres
    box_center_noise: float = 0.04  # annotation noise of the box centre, metres (std)
    box_size_noise: float = 0.02  # relative annotation noise of the box size (std)
    box_yaw_noise: float = 0.02  # radians (std)
    # Each scan's sensor: (SENSORS name, weight) pairs; () = the fixed HDL-32E layout of the fields above.
    sensor_mix: tuple[tuple[str, float], ...] = DEFAULT_SENSOR_MIX
    mount_height_min: float = 1.5  # mixed sensors: mounting height above the road drawn uniformly, metres
    mount_height_max: float = 2.1
    truncation_prob: float = 0.1  # chance that the object straddles the edge of a front camera's view
    truncation_fov_deg: float = 90.0  # that view's horizontal width (KITTI's camera-cropped cloud)
    max_rays: int = 12000  # rays cast per scan at most: a dense sensor close by is thinned uniformly at
    # random (the crop keeps max_points <= 1024 of the object's returns in the shipped sets anyway)


@dataclass(frozen=True)
class Placement:
    """What one scan drew: the sensor, its height, where the object stands and the kept field of view."""

    sensor: SensorModel
    height: float  # sensor above the road, metres
    range_m: float  # box centre distance in the ground plane
    azimuth: float  # box centre direction, radians, sensor frame
    yaw: float  # box heading, radians, sensor frame
    fov_half: float | None  # returns with |azimuth| > fov_half are cut (None: the full turn)


@dataclass
class Scan:
    """One simulated sweep of one object: sensor-frame points and the annotated box."""

    points: np.ndarray  # (N, 3) float32, sensor frame (all returns near the object, ground included)
    box: Boxes  # one annotated box in the sensor frame ('lidar')
    range_m: float  # distance of the box centre in the ground plane
    true_center: np.ndarray  # noise-free box centre, sensor frame
    sensor: str = ''  # SENSORS name of the LiDAR that made the scan
    sensor_height: float = float('nan')  # its mounting height above the road, metres
    truncated: bool = False  # the object straddles the edge of a front-camera field of view


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


def first_hit_distance(origin: np.ndarray, dirs: np.ndarray, triangles: np.ndarray,
                       leaf_size: int = 48) -> np.ndarray:
    """ray_mesh_distance, with the triangles split into leaves along the mesh's longest axis.

    Same distances; each leaf is tested only against the rays that enter its bounding box, which keeps
    dense 64/128-beam scans of long vehicles within milliseconds.
    """
    out = np.full(len(dirs), np.inf)
    if len(dirs) == 0 or len(triangles) == 0:
        return out
    centroids = triangles.mean(axis=1)
    axis = int(np.argmax(np.ptp(centroids, axis=0)))
    # Long triangles (a body side spanning the vehicle) would widen every leaf: they get leaves of their own.
    long = np.ptp(triangles[:, :, axis], axis=1) > 0.2 * np.ptp(centroids[:, axis])
    across = (axis + 1) % 3 if axis != 1 else 0  # long ones are sorted across (left side, roof, right side)
    order = np.lexsort((np.where(long, centroids[:, across], centroids[:, axis]), long))
    for a in range(0, len(order), leaf_size):
        leaf = triangles[order[a:a + leaf_size]]
        lo, hi = leaf.min(axis=(0, 1)) - 1e-6, leaf.max(axis=(0, 1)) + 1e-6
        rays = np.flatnonzero(_ray_aabb(origin, dirs, lo, hi))
        if len(rays):
            out[rays] = np.minimum(out[rays], ray_mesh_distance(origin, dirs[rays], leaf))
    return out


def _beam_grid(sensor: SensorModel, jitter_deg: float, azimuth: float, half_width: float,
               rng: np.random.Generator):
    """Unit ray directions of the firings whose azimuth is within half_width of `azimuth`."""
    step = np.radians(sensor.azimuth_step_deg)
    phase = rng.uniform(0, step)
    k0 = np.floor((azimuth - half_width - phase) / step)
    k1 = np.ceil((azimuth + half_width - phase) / step)
    az = phase + np.arange(k0, k1 + 1) * step
    el = np.radians(np.asarray(sensor.elevations_deg)) + np.radians(jitter_deg) * rng.standard_normal(
        sensor.beams)
    az_g, el_g = np.meshgrid(az, el)
    az_g, el_g = az_g.ravel(), el_g.ravel()
    dirs = np.stack([np.cos(el_g) * np.cos(az_g), np.cos(el_g) * np.sin(az_g), np.sin(el_g)], axis=1)
    return dirs, az_g, el_g


DEFAULT_LIDAR = LidarConfig()


def fixed_sensor(cfg: LidarConfig) -> SensorModel:
    """The single sensor described by cfg's own beam fields (used when cfg.sensor_mix is empty)."""
    return SensorModel('configured', tuple(cfg.elevations_deg), cfg.azimuth_step_deg, cfg.range_noise,
                       cfg.max_range)


def draw_sensor(cfg: LidarConfig, rng: np.random.Generator) -> tuple[SensorModel, float]:
    """This scan's sensor and mounting height (before road slope), from cfg's seeded distribution."""
    if not cfg.sensor_mix:
        return fixed_sensor(cfg), cfg.sensor_height
    weights = np.array([w for _, w in cfg.sensor_mix], dtype=np.float64)
    name = cfg.sensor_mix[int(rng.choice(len(weights), p=weights / weights.sum()))][0]
    return SENSORS[name], float(rng.uniform(cfg.mount_height_min, cfg.mount_height_max))


def _angular_half_width(radius_xy: float, range_m: float) -> float:
    return float(np.arcsin(min(1.0, radius_xy / range_m))) if range_m > radius_xy else np.pi


def place_object(size_lwh: np.ndarray, rng: np.random.Generator, cfg: LidarConfig = DEFAULT_LIDAR,
                 range_m: float | None = None, yaw: float | None = None,
                 sensor: SensorModel | str | None = None, height: float | None = None) -> Placement:
    """Draw everything about one scan but the returns; arguments given fix what they name."""
    drawn, drawn_height = draw_sensor(cfg, rng)
    sensor = SENSORS[sensor] if isinstance(sensor, str) else sensor or drawn
    height = drawn_height if height is None else float(height)
    height += cfg.sensor_height_std * rng.standard_normal()  # road slope, suspension
    rng_m = float(rng.uniform(cfg.range_min, cfg.range_max)) if range_m is None else float(range_m)
    azimuth = float(rng.uniform(-np.pi, np.pi))
    yaw = float(rng.uniform(-np.pi, np.pi)) if yaw is None else float(yaw)
    fov_half = None
    if rng.random() < cfg.truncation_prob:  # the view's edge cuts through the object
        fov_half = float(np.radians(cfg.truncation_fov_deg)) / 2
        object_half = _angular_half_width(0.5 * float(np.hypot(size_lwh[0], size_lwh[1])), rng_m)
        side = 1.0 if rng.random() < 0.5 else -1.0
        azimuth = side * (fov_half + float(rng.uniform(-0.7, 0.7)) * min(object_half, fov_half))
    return Placement(sensor, height, rng_m, azimuth, yaw, fov_half)


def _cast(mesh, dirs: np.ndarray, center: np.ndarray, rot: np.ndarray, ground_z: float, ground: bool):
    """Distances to the object (inf: missed) and to the first surface, road included."""
    # Cast in the box frame, where the mesh lives: origin and directions rotated back.
    origin_b = rot.T @ (-center)
    dirs_b = dirs @ rot  # == (rot.T @ d.T).T
    lo, hi = mesh.bounds
    cand = np.flatnonzero(_ray_aabb(origin_b, dirs_b, lo, hi))
    t_obj = np.full(len(dirs), np.inf)
    t_obj[cand] = first_hit_distance(origin_b, dirs_b[cand], np.asarray(mesh.triangles))
    if not ground:
        return t_obj, t_obj
    with np.errstate(divide='ignore'):
        t_ground = np.where(dirs[:, 2] < -1e-6, ground_z / dirs[:, 2], np.inf)
    return t_obj, np.minimum(t_obj, t_ground)


def _lost_returns(cfg: LidarConfig, place: Placement, az: np.ndarray, el: np.ndarray, half_width: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Returns that a real sweep would not have: occluded, outside the kept view, dropped."""
    lost = np.zeros(len(az), dtype=bool)
    if rng.random() < cfg.occlusion_prob:  # something in between: a band of azimuths, up to some height
        a0 = rng.uniform(place.azimuth - half_width, place.azimuth + half_width)
        band = rng.uniform(0.2, 0.6) * half_width
        top = rng.uniform(-0.2, 0.25)  # elevation (rad) below which the occluder blocks
        lost |= (np.abs(az - a0) < band) & (el < top)
    if place.fov_half is not None:
        lost |= np.abs(np.angle(np.exp(1j * az))) > place.fov_half
    lost |= rng.random(len(az)) < rng.uniform(cfg.dropout_min, cfg.dropout_max)
    return lost


def scan_object(mesh, size_lwh: np.ndarray, rng: np.random.Generator, cfg: LidarConfig = DEFAULT_LIDAR,
                range_m: float | None = None, yaw: float | None = None,
                sensor: SensorModel | str | None = None, height: float | None = None) -> Scan:
    """Place the mesh (box frame, centred) on the road and sweep it once with a drawn (or given) sensor.

    Returns every return within a margin of the object (object hits and road hits), so the caller's
    box crop decides, as on a real sweep, which road points leak into the box.
    """
    size_lwh = np.asarray(size_lwh, dtype=np.float64)
    place = place_object(size_lwh, rng, cfg, range_m, yaw, sensor, height)
    ground_z = -place.height
    center = np.array([place.range_m * np.cos(place.azimuth), place.range_m * np.sin(place.azimuth),
                       ground_z + size_lwh[2] / 2])
    c, s = np.cos(place.yaw), np.sin(place.yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])  # box -> sensor
    radius_xy = 0.5 * float(np.hypot(size_lwh[0], size_lwh[1])) + 0.6
    half_width = _angular_half_width(radius_xy, place.range_m)
    dirs, az, el = _beam_grid(place.sensor, cfg.beam_jitter_deg, place.azimuth, half_width, rng)

    # Losses do not depend on what a ray hits, so lost rays are never cast.
    fired = np.flatnonzero(~_lost_returns(cfg, place, az, el, half_width, rng))
    if len(fired) > cfg.max_rays:  # a dense sensor close by: thin uniformly (crops keep fewer anyway)
        fired = np.sort(rng.choice(fired, cfg.max_rays, replace=False))
    dirs = dirs[fired]
    t_obj, t_hit = _cast(mesh, dirs, center, rot, ground_z, cfg.ground)
    keep = np.isfinite(t_hit) & (t_hit < place.sensor.max_range)

    t = t_hit[keep] + place.sensor.range_noise * rng.standard_normal(int(keep.sum()))
    pts = dirs[keep] * t[:, None]
    on_ground = ~(t_obj[keep] <= t_hit[keep])
    pts[on_ground, 2] += cfg.ground_noise * rng.standard_normal(int(on_ground.sum()))
    near = np.linalg.norm(pts[:, :2] - center[:2], axis=1) < radius_xy + 0.5
    pts = pts[near].astype(np.float32)
    return Scan(pts, _annotated_box(cfg, center, size_lwh, place.yaw, rng), place.range_m, center,
                place.sensor.name, place.height, place.fov_half is not None)


def _annotated_box(cfg: LidarConfig, center: np.ndarray, size_lwh: np.ndarray, yaw: float,
                   rng: np.random.Generator) -> Boxes:
    noisy_center = center + cfg.box_center_noise * rng.standard_normal(3)
    noisy_size = size_lwh * (1.0 + cfg.box_size_noise * rng.standard_normal(3))
    noisy_yaw = yaw + cfg.box_yaw_noise * rng.standard_normal()
    return Boxes.from_yaw(noisy_center[None], noisy_size[None], [noisy_yaw], ids=('0',), frame_id='lidar')
