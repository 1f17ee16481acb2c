"""Generator of small nuScenes-format dataroots with known geometry, loadable by nuscenes-devkit.

Used by the mining tests, the bag tools and the benchmarks instead of the (non-redistributable, huge)
real dataset. Everything is deterministic in `seed`.

Geometry (what tests may rely on):
- global frame z-up; ground plane at z = -0.1 m; every box rests on z = 0 (bottom face), so ground
  points never fall inside a box; boxes never overlap each other at any frame time.
- ego drives straight at 3 m/s with a constant heading (0.4 rad); LIDAR_TOP is mounted like the real
  car (x right, y forward, z up: yaw -90 deg about ego z, 1.84 m high).
- points of a box are drawn uniformly on its faces shrunk by 10 % (strictly inside the box); each box
  has a constant intensity; the ring channel is random. The generator knows how many points of every
  box are in every LIDAR_TOP frame (`points_per_sweep`).
- objects move with constant velocity (one car at 8 m/s, one pedestrian at 1.2 m/s), so the devkit's
  `box_velocity` and linear interpolation are exact; all others are static.
- CAM_FRONT and CAM_BACK (90 deg horizontal FOV) key frames are grey JPEGs on which every box that is
  fully visible in that camera (BoxVisibility.ALL) has the axis-aligned bounding rectangle of its
  projected corners filled with its own colour, far boxes painted first.
- categories include voids (movable_object.debris, animal) and a visibility-'2' barrier.

`nuscenes_to_truckscenes(nusc_root, out_root)` turns a generated root into a TruckScenes-format root
(two LiDARs with their own poses and .pcd files) with the same geometry.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

SAMPLE_PERIOD_US = 500_000
EGO_SPEED = 3.0
EGO_YAW = 0.4
GROUND_Z = -0.1
LIDAR_TRANSLATION = [0.943713, 0.0, 1.84023]
LIDAR_YAW = -math.pi / 2
CAMERAS = {
    # channel: (translation in ego, extra yaw of the camera about ego z)
    'CAM_FRONT': ([1.70, 0.0, 1.51], 0.0),
    'CAM_BACK': ([0.05, 0.0, 1.56], math.pi),
}
CORRUPTIONS = ('missing_pcd', 'truncated_pcd', 'zero_size_annotation', 'missing_sweep')

CATEGORIES = [
    'animal', 'human.pedestrian.adult', 'human.pedestrian.child', 'human.pedestrian.construction_worker',
    'human.pedestrian.personal_mobility', 'human.pedestrian.police_officer', 'human.pedestrian.stroller',
    'human.pedestrian.wheelchair', 'movable_object.barrier', 'movable_object.debris',
    'movable_object.pushable_pullable', 'movable_object.trafficcone', 'static_object.bicycle_rack',
    'vehicle.bicycle', 'vehicle.bus.bendy', 'vehicle.bus.rigid', 'vehicle.car', 'vehicle.construction',
    'vehicle.emergency.ambulance', 'vehicle.emergency.police', 'vehicle.motorcycle', 'vehicle.trailer',
    'vehicle.truck',
]
ATTRIBUTES = ['vehicle.moving', 'vehicle.stopped', 'vehicle.parked', 'cycle.with_rider',
              'cycle.without_rider', 'pedestrian.sitting_lying_down', 'pedestrian.standing',
              'pedestrian.moving']
VISIBILITY = {'1': 'v0-40', '2': 'v40-60', '3': 'v60-80', '4': 'v80-100'}

# The fixed objects of every scene: position (x forward, y left) in the ego frame at the scene start,
# yaw relative to the ego heading, size (l, w, h), speed along the heading, attributes, visibility.
BASE_OBJECTS = [
    dict(category='vehicle.car', xy=(13.0, -5.0), yaw=0.0, lwh=(4.5, 1.9, 1.6), speed=0.0,
         attributes=['vehicle.parked'], visibility='4'),
    dict(category='vehicle.car', xy=(9.0, 4.0), yaw=0.0, lwh=(4.4, 1.8, 1.5), speed=8.0,
         attributes=['vehicle.moving'], visibility='4'),
    dict(category='human.pedestrian.adult', xy=(-10.0, -3.0), yaw=math.pi / 2, lwh=(0.7, 0.6, 1.75),
         speed=1.2, attributes=['pedestrian.moving'], visibility='4'),
    dict(category='movable_object.trafficcone', xy=(16.0, 1.0), yaw=0.0, lwh=(0.4, 0.4, 0.8), speed=0.0,
         attributes=[], visibility='4'),
    dict(category='vehicle.bicycle', xy=(0.0, 8.0), yaw=0.0, lwh=(1.7, 0.6, 1.2), speed=0.0,
         attributes=['cycle.without_rider'], visibility='3'),
    dict(category='movable_object.debris', xy=(-20.0, -8.0), yaw=0.3, lwh=(1.2, 1.0, 0.5), speed=0.0,
         attributes=[], visibility='4'),
    dict(category='movable_object.barrier', xy=(25.0, -2.0), yaw=math.pi / 2, lwh=(2.0, 0.5, 1.0), speed=0.0,
         attributes=[], visibility='2'),
    dict(category='animal', xy=(-15.0, 6.0), yaw=0.0, lwh=(0.9, 0.4, 0.6), speed=0.0,
         attributes=[], visibility='1'),
]
EXTRA_CATEGORIES = [('vehicle.car', (4.5, 1.9, 1.6)), ('movable_object.barrier', (2.0, 0.5, 1.0)),
                    ('human.pedestrian.adult', (0.7, 0.6, 1.75)),
                    ('movable_object.trafficcone', (0.4, 0.4, 0.8)), ('vehicle.truck', (7.0, 2.5, 3.0))]


def _token(*parts) -> str:
    return hashlib.md5('/'.join(str(p) for p in parts).encode()).hexdigest()


def _yaw_quat(yaw: float) -> list[float]:
    """wxyz quaternion of a rotation about +z (nuScenes order)."""
    return [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]


def _rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _matrix_to_wxyz(m: np.ndarray) -> list[float]:
    from pyquaternion import Quaternion  # the devkit's own quaternion class

    q = Quaternion(matrix=m)
    return [q.w, q.x, q.y, q.z]


# camera-to-ego rotation of a forward-looking camera: cam z -> ego x, cam x -> -ego y, cam y -> -ego z.
_CAM_BASE = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _layout(rng: np.random.Generator, boxes_per_sample: int) -> list[dict]:
    objects = [dict(o) for o in BASE_OBJECTS]
    tries = 0
    while len(objects) < boxes_per_sample and tries < 20000:
        tries += 1
        r, a = rng.uniform(8.0, 48.0), rng.uniform(-math.pi, math.pi)
        x, y = r * math.cos(a), r * math.sin(a)
        if x > -6 and abs(y - 4.0) < 3.5:  # lane of the moving car
            continue
        if abs(x + 10.0) < 3.0 or abs(y) < 2.5:  # pedestrian's path, ego's path
            continue
        if any(math.hypot(x - o['xy'][0], y - o['xy'][1]) < 7.5 for o in objects):
            continue
        cat, lwh = EXTRA_CATEGORIES[int(rng.integers(len(EXTRA_CATEGORIES)))]
        objects.append(dict(category=cat, xy=(x, y), yaw=float(rng.uniform(-math.pi, math.pi)), lwh=lwh,
                            speed=0.0, attributes=[], visibility=str(int(rng.integers(1, 5)))))
    return objects[:boxes_per_sample] if boxes_per_sample < len(BASE_OBJECTS) else objects


def _surface_points(rng: np.random.Generator, lwh, n: int) -> np.ndarray:
    """n points uniform on the faces of a box of size lwh shrunk by 10 %, in the box frame."""
    half = 0.45 * np.asarray(lwh, dtype=np.float64)
    areas = np.array([half[1] * half[2], half[0] * half[2], half[0] * half[1]]).repeat(2)
    face = rng.choice(6, size=n, p=areas / areas.sum())
    pts = rng.uniform(-1.0, 1.0, size=(n, 3)) * half
    axis = face // 2
    sign = np.where(face % 2 == 0, 1.0, -1.0)
    pts[np.arange(n), axis] = sign * half[axis]
    return pts


class _Scene:
    """Poses and object states of one generated scene as functions of time (seconds from its start)."""

    def __init__(self, index: int, objects: list[dict]):
        self.origin = np.array([300.0 + 1000.0 * index, 600.0, 0.0])
        self.ego_rot = _rot_z(EGO_YAW)
        self.objects = objects
        for o in objects:
            o['yaw_global'] = EGO_YAW + o['yaw']
            heading = np.array([math.cos(o['yaw_global']), math.sin(o['yaw_global']), 0.0])
            o['velocity'] = o['speed'] * heading
            o['center0'] = self.origin + self.ego_rot @ np.array([o['xy'][0], o['xy'][1], o['lwh'][2] / 2])

    def ego_translation(self, t: float) -> np.ndarray:
        return self.origin + self.ego_rot @ np.array([EGO_SPEED * t, 0.0, 0.0])

    def center(self, o: dict, t: float) -> np.ndarray:
        return o['center0'] + o['velocity'] * t

    def global_to_sensor(self, t: float, s_trans, s_rot: np.ndarray):
        """(R, T) with p_sensor = R @ p_global + T at time t."""
        r = s_rot.T @ self.ego_rot.T
        return r, -r @ self.ego_translation(t) - s_rot.T @ np.asarray(s_trans)


def make_nuscenes_dataroot(root: Path, *, version: str = 'v1.0-mini', scenes: int = 1,
                           samples_per_scene: int = 3, sweeps_per_sample: int = 2, seed: int = 0,
                           corrupt: tuple[str, ...] = (), boxes_per_sample: int = len(BASE_OBJECTS),
                           ground_points: int = 2000, points_per_box: tuple[int, int] = (30, 60),
                           image_size: tuple[int, int] = (800, 450), write_images: bool = True) -> dict:
    """Write a nuScenes-format dataroot under `root` and return what was generated.

    root/<version>/*.json holds the 13 devkit tables; root/samples/LIDAR_TOP/*.pcd.bin (key frames),
    root/sweeps/LIDAR_TOP/*.pcd.bin (`sweeps_per_sample` non-key sweeps before every key frame, linked
    prev/next with the key frames in time order, their sample_token is the next key frame's),
    root/samples/CAM_FRONT|CAM_BACK/*.jpg (key frames only), root/maps/<token>.png (a tiny PNG).
    Scenes are named 'scene-0001', ... ; the first `BASE_OBJECTS` (8) boxes are fixed, further ones
    (`boxes_per_sample`) are static random boxes. Sizes: `ground_points` + boxes x `points_per_box`
    (uniform range) points per LIDAR frame; `image_size` = (width, height).

    corrupt: any of CORRUPTIONS, applied to scene-0001 (needs samples_per_scene >= 3):
      'missing_pcd'  delete the key LIDAR_TOP file of sample 1;
      'truncated_pcd' truncate the key LIDAR_TOP file of sample 2 to a size that is no multiple of 20;
      'zero_size_annotation' set the size of the parked car's annotation in sample 0 to [0, 0, 0];
      'missing_sweep' delete the non-key sweep just before sample 0 (needs sweeps_per_sample >= 1).

    Returns a JSON-serialisable dict:
      root, version, scene_names, scene_tokens, sample_tokens (per scene, in order),
      lidar_frames (per scene: list of {token, timestamp, key, file}) in time order,
      annotations: {ann_token: {category, instance, sample, scene, attributes, visibility, size_wlh,
        velocity (global, m/s), moving, key_index (index of its key frame in the scene's lidar_frames),
        points_per_sweep (points of this box in lidar_frames[key_index - j] for j = 0..key_index),
        intensity, image: None or {camera, rect: [u0, v0, u1, v1] (pixel bounds, exclusive end),
        colour: [r, g, b], overlapped: bool}}},
      corrupted: {name: {file or annotation, sample}}.
    """
    unknown = set(corrupt) - set(CORRUPTIONS)
    if unknown:
        raise ValueError(f'unknown corruptions {sorted(unknown)}; choose from {CORRUPTIONS}')
    root = Path(root)
    rng = np.random.default_rng(seed)
    tables: dict[str, list] = {name: [] for name in (
        'category', 'attribute', 'visibility', 'instance', 'sensor', 'calibrated_sensor', 'ego_pose', 'log',
        'scene', 'sample', 'sample_data', 'sample_annotation', 'map')}
    tables['category'] = [{'token': _token('cat', c), 'name': c, 'description': c} for c in CATEGORIES]
    cat_token = {c['name']: c['token'] for c in tables['category']}
    tables['attribute'] = [{'token': _token('attr', a), 'name': a, 'description': a} for a in ATTRIBUTES]
    attr_token = {a['name']: a['token'] for a in tables['attribute']}
    tables['visibility'] = [{'token': k, 'level': v, 'description': v} for k, v in VISIBILITY.items()]

    width, height = image_size
    focal = width / 2.0
    intrinsic = np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
    sensors = {'LIDAR_TOP': ('lidar', LIDAR_TRANSLATION, _rot_z(LIDAR_YAW), [])}
    for chan, (trans, yaw) in CAMERAS.items():
        sensors[chan] = ('camera', trans, _rot_z(yaw) @ _CAM_BASE, intrinsic.tolist())
    calib = {}
    for chan, (modality, trans, rot, intr) in sensors.items():
        tables['sensor'].append({'token': _token('sensor', chan), 'channel': chan, 'modality': modality})
        calib[chan] = _token('calib', chan)
        tables['calibrated_sensor'].append({'token': calib[chan], 'sensor_token': _token('sensor', chan),
                                            'translation': list(trans), 'rotation': _matrix_to_wxyz(rot),
                                            'camera_intrinsic': intr})

    log_token = _token('log', seed)
    tables['log'].append({'token': log_token, 'logfile': 'generated', 'vehicle': 'n000',
                          'date_captured': '2018-07-24', 'location': 'singapore-onenorth'})
    map_token = _token('map', seed)
    (root / 'maps').mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / 'maps' / f'{map_token}.png')
    tables['map'].append({'token': map_token, 'log_tokens': [log_token], 'category': 'semantic_prior',
                          'filename': f'maps/{map_token}.png'})
    for d in ['samples/LIDAR_TOP', 'sweeps/LIDAR_TOP'] + [f'samples/{c}' for c in CAMERAS]:
        (root / d).mkdir(parents=True, exist_ok=True)

    result = {'root': str(root), 'version': version, 'scene_names': [], 'scene_tokens': [],
              'sample_tokens': [], 'lidar_frames': [], 'annotations': {}, 'corrupted': {}}
    for si in range(scenes):
        _make_scene(root, tables, result, si, rng, seed, samples_per_scene, sweeps_per_sample,
                    boxes_per_sample, ground_points, points_per_box, intrinsic, (width, height),
                    calib, cat_token, attr_token, log_token, write_images)
    _apply_corruptions(root, tables, result, corrupt, samples_per_scene, sweeps_per_sample)

    table_dir = root / version
    table_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        (table_dir / f'{name}.json').write_text(json.dumps(rows, indent=0))
    return result


def _make_scene(root, tables, result, si, rng, seed, n_samples, n_sweeps, boxes_per_sample, ground_points,
                points_per_box, intrinsic, imsize, calib, cat_token, attr_token, log_token, write_images):
    name = f'scene-{si + 1:04d}'
    scene_token = _token('scene', seed, si)
    scene = _Scene(si, _layout(rng, boxes_per_sample))
    t0_us = 1532402927647951 + si * 10**8
    spacing = SAMPLE_PERIOD_US // (n_sweeps + 1)
    sample_tokens = [_token('sample', seed, si, k) for k in range(n_samples)]
    instance_tokens = [_token('instance', seed, si, i) for i in range(len(scene.objects))]
    colours = [tuple(int(c) for c in rng.integers(40, 256, 3)) for _ in scene.objects]
    intensities = [float(rng.integers(1, 255)) for _ in scene.objects]
    # Frames in time order: n_sweeps non-key sweeps, then the key frame, for every sample.
    frames = []
    for k in range(n_samples):
        key_us = t0_us + n_sweeps * spacing + k * SAMPLE_PERIOD_US
        for j in range(n_sweeps, 0, -1):
            frames.append({'timestamp': key_us - j * spacing, 'key': False, 'sample': k})
        frames.append({'timestamp': key_us, 'key': True, 'sample': k})
    counts = np.zeros((len(frames), len(scene.objects)), dtype=np.int64)
    lidar_rot = _rot_z(LIDAR_YAW)
    for fi, fr in enumerate(frames):
        t = (fr['timestamp'] - t0_us) * 1e-6
        fr['token'] = _token('sd', seed, si, 'LIDAR_TOP', fi)
        ego_token = _token('ego', seed, si, 'LIDAR_TOP', fi)
        tables['ego_pose'].append({'token': ego_token, 'timestamp': fr['timestamp'],
                                   'translation': scene.ego_translation(t).tolist(),
                                   'rotation': _yaw_quat(EGO_YAW)})
        r, tr = scene.global_to_sensor(t, LIDAR_TRANSLATION, lidar_rot)
        clouds = [_ground(rng, ground_points, scene.ego_translation(t), scene.ego_rot) @ r.T + tr]
        intens = [rng.uniform(0, 30, ground_points)]
        for oi, o in enumerate(scene.objects):
            n = int(rng.integers(points_per_box[0], points_per_box[1] + 1))
            local = _surface_points(rng, o['lwh'], n)
            glob = local @ _rot_z(o['yaw_global']).T + scene.center(o, t)
            clouds.append(glob @ r.T + tr)
            intens.append(np.full(n, intensities[oi]))
            counts[fi, oi] = n
        xyz = np.concatenate(clouds)
        ring = rng.integers(0, 32, len(xyz)).astype(np.float64)
        cloud = np.column_stack([xyz, np.concatenate(intens), ring]).astype(np.float32)
        folder = 'samples' if fr['key'] else 'sweeps'
        fr['file'] = f'{folder}/LIDAR_TOP/n000-{name}__LIDAR_TOP__{fr["timestamp"]}.pcd.bin'
        cloud.tofile(root / fr['file'])
    for fi, fr in enumerate(frames):
        tables['sample_data'].append({
            'token': fr['token'], 'sample_token': sample_tokens[fr['sample']],
            'ego_pose_token': _token('ego', seed, si, 'LIDAR_TOP', fi),
            'calibrated_sensor_token': calib['LIDAR_TOP'], 'timestamp': fr['timestamp'], 'fileformat': 'pcd',
            'is_key_frame': fr['key'], 'height': 0, 'width': 0,
            'filename': fr['file'], 'prev': frames[fi - 1]['token'] if fi else '',
            'next': frames[fi + 1]['token'] if fi + 1 < len(frames) else ''})

    key_frames = [fi for fi, fr in enumerate(frames) if fr['key']]
    ann_tokens = [[_token('ann', seed, si, k, oi) for oi in range(len(scene.objects))]
                  for k in range(n_samples)]
    for k, fi in enumerate(key_frames):
        key_us = frames[fi]['timestamp']
        t = (key_us - t0_us) * 1e-6
        tables['sample'].append({'token': sample_tokens[k], 'timestamp': key_us, 'scene_token': scene_token,
                                 'prev': sample_tokens[k - 1] if k else '',
                                 'next': sample_tokens[k + 1] if k + 1 < n_samples else ''})
        images = _make_images(root, tables, scene, si, k, seed, t, key_us, sample_tokens[k], intrinsic,
                              imsize, calib, colours, name, write_images, n_samples)
        for oi, o in enumerate(scene.objects):
            tok = ann_tokens[k][oi]
            lwh = o['lwh']
            tables['sample_annotation'].append({
                'token': tok, 'sample_token': sample_tokens[k], 'instance_token': instance_tokens[oi],
                'visibility_token': o['visibility'],
                'attribute_tokens': [attr_token[a] for a in o['attributes']],
                'translation': scene.center(o, t).tolist(), 'size': [lwh[1], lwh[0], lwh[2]],
                'rotation': _yaw_quat(o['yaw_global']), 'prev': ann_tokens[k - 1][oi] if k else '',
                'next': ann_tokens[k + 1][oi] if k + 1 < n_samples else '',
                'num_lidar_pts': int(counts[fi, oi]), 'num_radar_pts': 0})
            result['annotations'][tok] = {
                'category': o['category'], 'instance': instance_tokens[oi], 'sample': sample_tokens[k],
                'scene': name, 'attributes': list(o['attributes']), 'visibility': o['visibility'],
                'size_wlh': [lwh[1], lwh[0], lwh[2]], 'velocity': o['velocity'].tolist(),
                'moving': bool(o['speed'] > 0), 'key_index': fi,
                'points_per_sweep': [int(counts[fi - j, oi]) for j in range(fi + 1)],
                'intensity': intensities[oi], 'image': images.get(oi)}
    for oi in range(len(scene.objects)):
        tables['instance'].append({'token': instance_tokens[oi],
                                   'category_token': cat_token[scene.objects[oi]['category']],
                                   'nbr_annotations': n_samples, 'first_annotation_token': ann_tokens[0][oi],
                                   'last_annotation_token': ann_tokens[-1][oi]})
    tables['scene'].append({'token': scene_token, 'log_token': log_token, 'nbr_samples': n_samples,
                            'first_sample_token': sample_tokens[0], 'last_sample_token': sample_tokens[-1],
                            'name': name, 'description': 'generated'})
    result['scene_names'].append(name)
    result['scene_tokens'].append(scene_token)
    result['sample_tokens'].append(sample_tokens)
    result['lidar_frames'].append([{k: fr[k] for k in ('token', 'timestamp', 'key', 'file')}
                                   for fr in frames])


def _ground(rng, n, ego_t, ego_rot) -> np.ndarray:
    r = np.sqrt(rng.uniform(3.0**2, 45.0**2, n))
    a = rng.uniform(-math.pi, math.pi, n)
    local = np.column_stack([r * np.cos(a), r * np.sin(a), np.full(n, GROUND_Z)])
    return local @ ego_rot.T + ego_t * np.array([1.0, 1.0, 0.0])


def _box_corners(o: dict, center: np.ndarray) -> np.ndarray:
    signs = np.array([[sx, sy, sz] for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)], dtype=np.float64)
    return (signs * np.asarray(o['lwh']) / 2) @ _rot_z(o['yaw_global']).T + center


def _make_images(root, tables, scene, si, k, seed, t, key_us, sample_token, intrinsic, imsize, calib, colours,
                 scene_name, write_images, n_samples) -> dict:
    """Camera key frames; returns {object index: image record} for boxes fully visible in a camera."""
    width, height = imsize
    records = {}
    for chan, (trans, yaw) in CAMERAS.items():
        rot = _rot_z(yaw) @ _CAM_BASE
        r, tr = scene.global_to_sensor(t, trans, rot)
        painted = []
        for oi, o in enumerate(scene.objects):
            cam = _box_corners(o, scene.center(o, t)) @ r.T + tr
            if not (cam[:, 2] > 1.0).all():
                continue
            uv = (cam @ intrinsic.T)[:, :2] / cam[:, 2:3]
            if not ((uv[:, 0] > 0) & (uv[:, 0] < width) & (uv[:, 1] > 0) & (uv[:, 1] < height)).all():
                continue
            u0, v0 = np.floor(uv.min(0)).astype(int)
            u1, v1 = np.ceil(uv.max(0)).astype(int)
            painted.append((float(cam[:, 2].mean()), oi, [int(u0), int(v0), int(u1), int(v1)]))
        img = np.full((height, width, 3), 90, np.uint8)
        for _, oi, (u0, v0, u1, v1) in sorted(painted, reverse=True):
            img[v0:v1, u0:u1] = colours[oi]
        for _, oi, rect in painted:
            overlapped = any(_intersects(rect, other) for _, oj, other in painted if oj != oi)
            records[oi] = {'camera': chan, 'rect': rect, 'colour': list(colours[oi]),
                           'overlapped': overlapped}
        filename = f'samples/{chan}/n000-{scene_name}__{chan}__{key_us}.jpg'
        if write_images:
            Image.fromarray(img).save(root / filename, quality=95)
        ego_token = _token('ego', seed, si, chan, k)
        tables['ego_pose'].append({'token': ego_token, 'timestamp': key_us,
                                   'translation': scene.ego_translation(t).tolist(),
                                   'rotation': _yaw_quat(EGO_YAW)})
        tables['sample_data'].append({
            'token': _token('sd', seed, si, chan, k), 'sample_token': sample_token,
            'ego_pose_token': ego_token, 'calibrated_sensor_token': calib[chan], 'timestamp': key_us,
            'fileformat': 'jpg', 'is_key_frame': True,
            'height': height, 'width': width, 'filename': filename,
            'prev': _token('sd', seed, si, chan, k - 1) if k else '',
            'next': _token('sd', seed, si, chan, k + 1) if k + 1 < n_samples else ''})
    return records


def _intersects(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _apply_corruptions(root, tables, result, corrupt, n_samples, n_sweeps) -> None:
    if not corrupt:
        return
    if n_samples < 3:
        raise ValueError('corruptions need samples_per_scene >= 3')
    frames = result['lidar_frames'][0]
    keys = [fr for fr in frames if fr['key']]
    samples = result['sample_tokens'][0]
    if 'missing_pcd' in corrupt:
        (root / keys[1]['file']).unlink()
        result['corrupted']['missing_pcd'] = {'file': keys[1]['file'], 'sample': samples[1]}
    if 'truncated_pcd' in corrupt:
        path = root / keys[2]['file']
        size = path.stat().st_size
        with open(path, 'r+b') as f:
            f.truncate((size // 2) // 20 * 20 + 6)
        result['corrupted']['truncated_pcd'] = {'file': keys[2]['file'], 'sample': samples[2]}
    if 'zero_size_annotation' in corrupt:
        first = next(a for a in tables['sample_annotation'] if a['sample_token'] == samples[0])
        first['size'] = [0.0, 0.0, 0.0]
        result['annotations'][first['token']]['size_wlh'] = [0.0, 0.0, 0.0]
        result['corrupted']['zero_size_annotation'] = {'annotation': first['token'], 'sample': samples[0]}
    if 'missing_sweep' in corrupt:
        if n_sweeps < 1:
            raise ValueError('missing_sweep needs sweeps_per_sample >= 1')
        sweep = frames[n_sweeps - 1]
        (root / sweep['file']).unlink()
        result['corrupted']['missing_sweep'] = {'file': sweep['file'], 'sample': samples[0]}


def _wxyz_to_matrix(wxyz) -> np.ndarray:
    from pyquaternion import Quaternion

    return Quaternion(wxyz).rotation_matrix


TRUCK_LIDARS = {'LIDAR_LEFT': ([1.2, 0.9, 2.1], 0.6), 'LIDAR_RIGHT': ([1.2, -0.9, 2.1], -0.6)}


def nuscenes_to_truckscenes(nusc_root: Path, out_root: Path, version: str = 'v1.0-mini') -> None:
    """Write a TruckScenes-format root (truckscenes-devkit loadable) from a generated nuScenes root.

    Every LIDAR_TOP frame becomes two LiDARs, LIDAR_LEFT (ego y >= 0) and LIDAR_RIGHT (ego y < 0), with
    their own mounting poses (`TRUCK_LIDARS`) and .pcd files (x, y, z, intensity), same timestamps and
    ego poses; visibility tokens become opaque ('vis-4', level 'v80-100'); cameras, boxes and all other
    records are kept, the TruckScenes-only tables are empty.
    The union of both LiDARs is exactly the generated cloud, so the generator's counts still hold.
    """
    import shutil

    import pypcd4

    nusc_root, out_root = Path(nusc_root), Path(out_root)
    tables = {p.stem: json.loads(p.read_text()) for p in (nusc_root / version).glob('*.json')}
    top_sensor = next(s['token'] for s in tables['sensor'] if s['channel'] == 'LIDAR_TOP')
    top_calib = next(c for c in tables['calibrated_sensor'] if c['sensor_token'] == top_sensor)
    r_top, t_top = _wxyz_to_matrix(top_calib['rotation']), np.array(top_calib['translation'])
    tables['sensor'] = [s for s in tables['sensor'] if s['token'] != top_sensor]
    tables['calibrated_sensor'] = [c for c in tables['calibrated_sensor'] if c['token'] != top_calib['token']]
    for chan, (trans, yaw) in TRUCK_LIDARS.items():
        q = np.array([math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)])
        tables['sensor'].append({'token': f's-{chan}', 'channel': chan, 'modality': 'lidar'})
        tables['calibrated_sensor'].append({'token': f'c-{chan}', 'sensor_token': f's-{chan}',
                                            'translation': trans, 'rotation': q.tolist(),
                                            'camera_intrinsic': []})
    old = [sd for sd in tables['sample_data'] if sd['calibrated_sensor_token'] == top_calib['token']]
    tables['sample_data'] = [sd for sd in tables['sample_data'] if sd not in old]
    (out_root / 'samples').mkdir(parents=True)
    for sd in old:
        pts = np.fromfile(nusc_root / sd['filename'], np.float32).reshape(-1, 5)
        ego = pts[:, :3].astype(np.float64) @ r_top.T + t_top
        for chan, (trans, yaw) in TRUCK_LIDARS.items():
            keep = ego[:, 1] >= 0 if chan == 'LIDAR_LEFT' else ego[:, 1] < 0
            local = (ego[keep] - trans) @ _rot_z(yaw)
            name = f'samples/{chan}_{sd["timestamp"]}.pcd'
            cloud = np.column_stack([local, pts[keep, 3]]).astype(np.float32)
            pypcd4.PointCloud.from_xyzi_points(cloud).save(out_root / name)
            rename = {'prev': sd['prev'], 'next': sd['next'], 'token': sd['token']}
            tables['sample_data'].append({**sd, 'calibrated_sensor_token': f'c-{chan}', 'filename': name,
                                          'fileformat': 'pcd',
                                          **{k: f'{v}-{chan}' if v else '' for k, v in rename.items()}})
    for name in ('ego_motion_cabin', 'ego_motion_chassis', 'weather_annotation'):
        tables[name] = []
    # visibility records with opaque tokens: readers must go by the record's level ('v80-100')
    for v in tables['visibility']:
        v['token'] = f'vis-{v["token"]}'
    for a in tables['sample_annotation']:
        a['visibility_token'] = f'vis-{a["visibility_token"]}'
    (out_root / version).mkdir()
    for name, rows in tables.items():
        (out_root / version / f'{name}.json').write_text(json.dumps(rows))
    shutil.copytree(nusc_root / 'samples' / 'CAM_FRONT', out_root / 'samples' / 'CAM_FRONT')
    shutil.copytree(nusc_root / 'samples' / 'CAM_BACK', out_root / 'samples' / 'CAM_BACK')
