"""The simulated LiDARs: every sensor's beams and mounting height are honoured, only surfaces facing the
sensor return points, the front-camera field of view cuts objects at its edge, and scans are a pure
function of their seed."""

from dataclasses import replace

import numpy as np
import pytest

from blendclip_core.synthetic import lidar, parts, shapes

# Exact geometry: no losses, no road, one sensor height (and sensors without range noise: _exact).
EXACT = lidar.LidarConfig(beam_jitter_deg=0.0, sensor_height_std=0.0, dropout_min=0.0, dropout_max=0.0,
                          occlusion_prob=0.0, ground=False, truncation_prob=0.0, box_center_noise=0.0,
                          box_size_noise=0.0, box_yaw_noise=0.0, max_rays=10**9)


def _exact(name: str) -> lidar.SensorModel:
    """The named sensor without range noise."""
    return replace(lidar.SENSORS[name], range_noise=0.0)


def _block(size):
    lo_hi = np.array([-1, 1, -1, 1, -1, 1]) * np.repeat(np.asarray(size) / 2, 2)
    return parts.box(*lo_hi)


def _elevations_deg(points: np.ndarray) -> np.ndarray:
    p = points.astype(np.float64)
    return np.degrees(np.arctan2(p[:, 2], np.hypot(p[:, 0], p[:, 1])))


def _rings(elev_deg: np.ndarray, gap_deg: float = 0.1) -> int:
    """Distinct beams among the returns: clusters of elevations more than gap_deg apart."""
    e = np.sort(elev_deg)
    return int(1 + np.sum(np.diff(e) > gap_deg)) if len(e) else 0


def test_the_sensor_table_matches_the_data_sheets():
    beams = {name: s.beams for name, s in lidar.SENSORS.items()}
    assert beams == {'VLP-16': 16, 'HDL-32E': 32, 'VLP-32C': 32, 'VLP-32C x2': 64, 'HDL-64E': 64,
                     '128-beam': 128}
    for s in lidar.SENSORS.values():
        e = np.asarray(s.elevations_deg)
        assert np.all(np.diff(e) > 0.1), s.name  # one ring per beam, sorted
        assert -31 <= e.min() < -14 and 1.9 <= e.max() <= 25.2, s.name
    assert {name for name, _ in lidar.DEFAULT_SENSOR_MIX} == set(lidar.SENSORS)


@pytest.mark.parametrize('name', list(lidar.SENSORS))
def test_a_tall_object_close_by_shows_every_beam_once(name):
    """An 8 m column 2.5 m away spans the whole vertical field of view: one ring per beam, on the beams."""
    sensor = lidar.SENSORS[name]
    size = np.array([1.5, 1.5, 8.0])
    scan = lidar.scan_object(_block(size), size, np.random.default_rng(0), EXACT, range_m=2.5, yaw=0.3,
                             sensor=_exact(name), height=3.0)
    elev = _elevations_deg(scan.points)
    assert scan.sensor == name and _rings(elev) == sensor.beams
    assert np.abs(elev[:, None] - np.asarray(sensor.elevations_deg)[None]).min(axis=1).max() < 0.01


@pytest.mark.parametrize('height', [1.5, 1.84, 2.1])
def test_the_mounting_height_puts_the_road_below_the_sensor(height):
    cfg = lidar.LidarConfig(sensor_height_std=0.0, ground_noise=0.0, occlusion_prob=0.0, truncation_prob=0.0)
    size = np.array([0.5, 0.5, 0.5])
    scan = lidar.scan_object(_block(size), size, np.random.default_rng(1), cfg, range_m=8.0, height=height)
    assert scan.sensor_height == height
    assert np.median(scan.points[:, 2]) == pytest.approx(-height, abs=0.05)  # mostly road returns


def test_each_scan_draws_its_sensor_and_height_from_the_mix():
    rng = np.random.default_rng(0)
    draws = [lidar.draw_sensor(lidar.DEFAULT_LIDAR, rng) for _ in range(2000)]
    names = [s.name for s, _ in draws]
    heights = np.array([h for _, h in draws])
    weights = dict(lidar.DEFAULT_SENSOR_MIX)
    for name, w in weights.items():
        assert names.count(name) / len(names) == pytest.approx(w / sum(weights.values()), abs=0.04)
    assert heights.min() >= 1.5 and heights.max() <= 2.1 and heights.std() > 0.15
    fixed = lidar.LidarConfig(sensor_mix=())  # the single-sensor simulator of before
    assert lidar.draw_sensor(fixed, rng) == (lidar.fixed_sensor(fixed), fixed.sensor_height)
    assert lidar.fixed_sensor(fixed).elevations_deg == lidar.SENSORS['HDL-32E'].elevations_deg


def test_more_beams_put_more_rings_on_an_object():
    """A car 20 m away: rings grow with the beam count (points also depend on the azimuth step: a VLP-16
    at 10 Hz fires more often per turn than nuScenes' HDL-32E at 20 Hz)."""
    obj = shapes.make_object('car', np.random.default_rng(2))
    rings, points = {}, {}
    for name in lidar.SENSORS:
        scan = lidar.scan_object(obj.mesh, obj.size_lwh, np.random.default_rng(0), EXACT, range_m=20.0,
                                 sensor=_exact(name), height=1.8)
        rings[name], points[name] = _rings(_elevations_deg(scan.points)), len(scan.points)
    assert rings['VLP-16'] <= rings['HDL-32E'] < rings['HDL-64E'] <= rings['128-beam']
    assert points['128-beam'] > 3 * max(points['VLP-16'], points['HDL-32E'])


def test_no_returns_from_the_far_side_of_a_box():
    size = np.array([4.0, 2.0, 1.6])
    rng = np.random.default_rng(3)
    for name in lidar.SENSORS:
        scan = lidar.scan_object(_block(size), size, rng, EXACT, range_m=12.0, sensor=_exact(name))
        local = (scan.points.astype(np.float64) - scan.true_center) @ scan.box.rotations[0]  # box frame
        sensor = (-scan.true_center) @ scan.box.rotations[0]
        inside = np.abs(local) < size / 2 - 5e-3
        for axis in range(3):  # returns inside a face, away from its edges, on the far face: none
            others = [a for a in range(3) if a != axis]
            on_face = (np.abs(np.abs(local[:, axis]) - size[axis] / 2) < 1e-3) & inside[:, others].all(axis=1)
            far = on_face & (np.sign(local[:, axis]) != np.sign(sensor[axis]))
            assert not far.any(), (name, axis)
        assert len(scan.points) > 20


def test_a_part_hidden_behind_another_returns_nothing():
    front = parts.box(-0.5, 0.5, -2, 2, -2, 2)
    behind = parts.box(2.0, 2.5, -0.5, 0.5, -0.5, 0.5)
    tris = np.asarray(parts.combine([front, behind]).triangles)
    origin = np.array([-10.0, 0.0, 0.0])
    rng = np.random.default_rng(4)
    dirs = np.array([2.25, 0, 0]) + rng.uniform(-0.5, 0.5, (500, 3)) * [0, 1, 1] - origin
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    t = lidar.first_hit_distance(origin, dirs, tris, leaf_size=4)
    assert np.all(np.isfinite(t)) and np.allclose(origin[0] + t * dirs[:, 0], -0.5)  # the front face
    assert np.array_equal(t, lidar.ray_mesh_distance(origin, dirs, tris))


def test_leaf_split_casting_equals_brute_force_on_vehicles():
    rng = np.random.default_rng(5)
    for name in ('trailer', 'construction vehicle', 'motorcycle'):
        tris = np.asarray(shapes.make_object(name, rng).mesh.triangles)
        origin = np.array([-9.0, 4.0, 0.3])
        targets = tris[rng.integers(0, len(tris), 1500)].mean(axis=1) - origin
        dirs = np.concatenate([targets, rng.normal(size=(500, 3))])
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        assert np.array_equal(lidar.first_hit_distance(origin, dirs, tris),
                              lidar.ray_mesh_distance(origin, dirs, tris))


def test_the_front_camera_view_cuts_objects_at_its_edge():
    cfg = lidar.LidarConfig(truncation_prob=1.0, truncation_fov_deg=90.0, occlusion_prob=0.0)
    obj = shapes.make_object('bus', np.random.default_rng(6))
    rng = np.random.default_rng(7)
    for _ in range(4):
        scan = lidar.scan_object(obj.mesh, obj.size_lwh, rng, cfg, range_m=15.0)
        azimuth = np.degrees(np.arctan2(scan.points[:, 1], scan.points[:, 0]))
        assert scan.truncated and np.all(np.abs(azimuth) <= 45.0 + 1e-3)
        centre = np.degrees(np.arctan2(scan.true_center[1], scan.true_center[0]))
        assert 45.0 - 25.0 < abs(centre) < 45.0 + 25.0  # straddling the edge, partly cut
    whole = lidar.LidarConfig(truncation_prob=0.0)
    assert not lidar.scan_object(obj.mesh, obj.size_lwh, rng, whole, range_m=15.0).truncated


def test_close_dense_views_are_thinned_to_the_ray_budget():
    obj = shapes.make_object('bus', np.random.default_rng(8))
    cfg = lidar.LidarConfig(max_rays=3000, dropout_min=0.0, dropout_max=0.0)
    scan = lidar.scan_object(obj.mesh, obj.size_lwh, np.random.default_rng(9), cfg, range_m=6.0,
                             sensor='128-beam')
    assert 1000 < len(scan.points) <= 3000


def test_scans_are_a_pure_function_of_the_seed():
    obj = shapes.make_object('pedestrian', np.random.default_rng(10))
    a, b, c = (lidar.scan_object(obj.mesh, obj.size_lwh, np.random.default_rng(s)) for s in (11, 11, 12))
    assert np.array_equal(a.points, b.points) and a.sensor == b.sensor and a.sensor_height == b.sensor_height
    assert np.array_equal(a.box.centers, b.box.centers)
    assert not (len(a.points) == len(c.points) and np.array_equal(a.points, c.points))


def test_the_argoverse_pair_matches_the_real_counts_of_av2(shared_data):
    """Simulated VLP-32C x2 counts of cars and pedestrians at the AV2 boxes' ranges (median over boxes)
    match the real interior counts within a factor of two."""
    import json

    from blendclip_core.preprocess import crop_objects

    rng = np.random.default_rng(0)
    real, sim, boxes = [], [], []
    for path in sorted((shared_data / 'av2_sample').glob('*_annotations.json')):
        for o in json.loads(path.read_text())['objects']:
            r = float(np.hypot(*o['center_xyz'][:2]))
            if o['nuscenes_class'] in ('car', 'pedestrian') and 8 < r < 40 and o['num_interior_pts'] >= 5:
                boxes.append((o['nuscenes_class'], r, o['num_interior_pts']))
    for name, r, count in boxes:
        obj = shapes.make_object(name, rng)
        scan = lidar.scan_object(obj.mesh, obj.size_lwh, rng, range_m=r, sensor='VLP-32C x2', height=1.9)
        real.append(count)
        sim.append(int(crop_objects(scan.points, scan.box).points_in_box[0]))
    assert len(real) > 30
    assert 0.5 < np.median(sim) / np.median(real) < 2.0, (np.median(sim), np.median(real))
