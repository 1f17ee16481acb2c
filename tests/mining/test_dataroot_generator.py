"""The generated nuScenes dataroot loads with the devkit and its geometry is what the generator says."""

import numpy as np
import pytest
from helpers.nuscenes_dataroot import make_nuscenes_dataroot

nuscenes = pytest.importorskip('nuscenes')
from nuscenes import NuScenes  # noqa: E402
from nuscenes.utils.data_classes import LidarPointCloud  # noqa: E402
from nuscenes.utils.geometry_utils import points_in_box  # noqa: E402


def test_generated_root_loads_and_counts_match(tmp_path):
    info = make_nuscenes_dataroot(tmp_path, scenes=2, samples_per_scene=3, sweeps_per_sample=2)
    nusc = NuScenes('v1.0-mini', str(tmp_path), verbose=False)
    assert len(nusc.scene) == 2 and len(nusc.sample) == 6
    assert len(nusc.sample_annotation) == len(info['annotations'])
    checked = 0
    for sample in nusc.sample:
        sd = nusc.get('sample_data', sample['data']['LIDAR_TOP'])
        # key frame and the sweep before it (the devkit interpolates boxes for non-key frames)
        for j, token in enumerate([sd['token'], sd['prev']]):
            if not token or (j and not sample['prev']):
                continue
            path, boxes, _ = nusc.get_sample_data(token)
            cloud = LidarPointCloud.from_file(path)
            for box in boxes:
                expected = info['annotations'][box.token]['points_per_sweep'][j]
                assert points_in_box(box, cloud.points[:3]).sum() == expected
                checked += 1
    assert checked > 60
    moving = [t for t, a in info['annotations'].items() if a['moving']]
    for token in moving:
        np.testing.assert_allclose(nusc.box_velocity(token)[:2], info['annotations'][token]['velocity'][:2],
                                   atol=1e-6)


def test_corruptions(tmp_path):
    info = make_nuscenes_dataroot(tmp_path, corrupt=('missing_pcd', 'truncated_pcd', 'zero_size_annotation',
                                                     'missing_sweep'))
    c = info['corrupted']
    assert not (tmp_path / c['missing_pcd']['file']).exists()
    assert not (tmp_path / c['missing_sweep']['file']).exists()
    assert (tmp_path / c['truncated_pcd']['file']).stat().st_size % 20 != 0
    nusc = NuScenes('v1.0-mini', str(tmp_path), verbose=False)
    assert nusc.get('sample_annotation', c['zero_size_annotation']['annotation'])['size'] == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        make_nuscenes_dataroot(tmp_path / 'x', corrupt=('nonsense',))
