"""TruckScenes mining on a TruckScenes-format root converted from a generated nuScenes root.

The converter (helpers.nuscenes_dataroot.nuscenes_to_truckscenes) splits every LIDAR_TOP frame into two
LiDARs with their own mounting poses and .pcd files, so the miner must fuse both to recover the
generator's per-box counts.
"""

import pytest
from helpers.nuscenes_dataroot import make_nuscenes_dataroot, nuscenes_to_truckscenes

from blendclip_core.data.datasets import TripletDataset
from blendclip_core.mining.objects import MineConfig
from blendclip_core.mining.run import RunConfig, run_mining

to_truckscenes = nuscenes_to_truckscenes  # the name other test areas import

pytest.importorskip('truckscenes')
pytest.importorskip('nuscenes')


def test_truckscenes_lidars_fused_and_twelve_classes(tmp_path):
    nusc_root, truck_root = tmp_path / 'nusc', tmp_path / 'truck'
    info = make_nuscenes_dataroot(nusc_root, samples_per_scene=3, sweeps_per_sample=1)
    nuscenes_to_truckscenes(nusc_root, truck_root)
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
    # the cameras work in the ego reference too, and visibility comes from the records' levels
    assert any(t.image is not None for t in mined.values())
    for token, t in mined.items():
        assert t.meta['visibility'] == int(info['annotations'][token]['visibility'])


def test_missing_truckscenes_root_is_a_clear_error(tmp_path, capsys):
    from training.mine import main

    assert main(['--dataset', 'truckscenes', '--dataroot', str(tmp_path / 'none'), '--out',
                 str(tmp_path / 'o'), '--no-progress']) == 2
    assert 'TruckScenes tables not found' in capsys.readouterr().err
