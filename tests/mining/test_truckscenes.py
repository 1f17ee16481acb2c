"""TruckScenes mining on a TruckScenes-format root converted from a generated nuScenes root.

The converter splits every LIDAR_TOP frame into two LiDARs (left / right of the truck, own mounting
poses, .pcd files), so the miner must fuse both to recover the generator's per-box counts.
"""

import json
import math
import shutil

import numpy as np
import pytest

from blendclip_core.data.datasets import TripletDataset
from blendclip_core.mining.objects import MineConfig
from blendclip_core.mining.run import RunConfig, run_mining
from tests.helpers.nuscenes_dataroot import make_nuscenes_dataroot

pytest.importorskip('truckscenes')
pytest.importorskip('nuscenes')

LIDARS = {'LIDAR_LEFT': ([1.2, 0.9, 2.1], 0.6), 'LIDAR_RIGHT': ([1.2, -0.9, 2.1], -0.6)}


def _rot_z(yaw):
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _quat_matrix(wxyz):
    from pyquaternion import Quaternion

    return Quaternion(wxyz).rotation_matrix


def to_truckscenes(nusc_root, out_root, version='v1.0-mini'):
    import pypcd4

    tables = {p.stem: json.loads(p.read_text()) for p in (nusc_root / version).glob('*.json')}
    top_sensor = next(s['token'] for s in tables['sensor'] if s['channel'] == 'LIDAR_TOP')
    top_calib = next(c for c in tables['calibrated_sensor'] if c['sensor_token'] == top_sensor)
    r_top, t_top = _quat_matrix(top_calib['rotation']), np.array(top_calib['translation'])
    tables['sensor'] = [s for s in tables['sensor'] if s['token'] != top_sensor]
    tables['calibrated_sensor'] = [c for c in tables['calibrated_sensor'] if c['token'] != top_calib['token']]
    for chan, (trans, yaw) in LIDARS.items():
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
        for chan, (trans, yaw) in LIDARS.items():
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
    (out_root / version).mkdir()
    for name, rows in tables.items():
        (out_root / version / f'{name}.json').write_text(json.dumps(rows))
    shutil.copytree(nusc_root / 'samples' / 'CAM_FRONT', out_root / 'samples' / 'CAM_FRONT')
    shutil.copytree(nusc_root / 'samples' / 'CAM_BACK', out_root / 'samples' / 'CAM_BACK')


def test_truckscenes_lidars_fused_and_twelve_classes(tmp_path):
    nusc_root, truck_root = tmp_path / 'nusc', tmp_path / 'truck'
    info = make_nuscenes_dataroot(nusc_root, samples_per_scene=3, sweeps_per_sample=1)
    to_truckscenes(nusc_root, truck_root)
    out = tmp_path / 'out'
    index = run_mining(RunConfig(str(truck_root), 'v1.0-mini', 'all', str(out),
                                 MineConfig(dataset='truckscenes', sweeps=2, min_points=0)), progress=False)
    assert index['dataset'] == 'truckscenes' and index['num_samples'] == len(info['annotations'])
    mined = {t.key: t for t in TripletDataset(out)}
    for token, ann in info['annotations'].items():
        t = mined[token]
        assert len(t.points) == sum(ann['points_per_sweep'][:2]), ann['category']
        assert t.meta['box']['frame'] == 'ego'
    labels = {info['annotations'][k]['category']: t.label_coarse for k, t in mined.items()}
    assert labels['animal'] == 'animal' and labels['movable_object.debris'] == ''
    assert labels['vehicle.car'] == 'car' and labels['human.pedestrian.adult'] == 'pedestrian'
    assert any(t.image is not None for t in mined.values())  # the cameras work in the ego reference too


def test_missing_truckscenes_root_is_a_clear_error(tmp_path, capsys):
    from training.mine import main

    assert main(['--dataset', 'truckscenes', '--dataroot', str(tmp_path / 'none'), '--out',
                 str(tmp_path / 'o'), '--no-progress']) == 2
    assert 'TruckScenes tables not found' in capsys.readouterr().err
