"""TruckScenes through the same conversion path, on a TruckScenes-format root converted from a
generated nuScenes root (the mining tests' converter: LIDAR_TOP split into LIDAR_LEFT / LIDAR_RIGHT
.pcd files with their own mounting poses)."""

from __future__ import annotations

import numpy as np
import pytest
from bag_test_utils import cloud_array
from helpers.nuscenes_dataroot import make_nuscenes_dataroot
from rosbags.highlevel import AnyReader

from blendclip_core.geometry import quaternion_to_matrix
from blendclip_ros.bag import nuscenes2bag

truckscenes = pytest.importorskip('truckscenes')


@pytest.mark.filterwarnings('ignore:The visualization dependencies:UserWarning')
def test_truckscenes_fused_lidars_and_twelve_classes(tmp_path):
    from mining.test_truckscenes import to_truckscenes
    from truckscenes.eval.detection.utils import category_to_detection_name
    nusc_root, truck_root = tmp_path / 'nusc', tmp_path / 'truck'
    make_nuscenes_dataroot(nusc_root, samples_per_scene=2, sweeps_per_sample=0, ground_points=300,
                           write_images=False)
    to_truckscenes(nusc_root, truck_root)
    out = tmp_path / 'bag'
    assert nuscenes2bag.main(['--out', str(out), '--dataset', 'truckscenes', '--dataroot', str(truck_root),
                              '--version', 'v1.0-mini', '--no-progress']) == 0
    trucksc = truckscenes.TruckScenes(version='v1.0-mini', dataroot=str(truck_root), verbose=False)
    with AnyReader([out]) as reader:
        msgs = {}
        for conn, _, raw in reader.messages():
            msgs.setdefault(conn.topic, []).append(reader.deserialize(raw, conn.msgtype))
    assert len(msgs['/lidar/points']) == len(trucksc.sample) == 2
    for sample, cloud, boxes, gt in zip(trucksc.sample, msgs['/lidar/points'], msgs['/detections'],
                                        msgs['/ground_truth/categories']):
        assert cloud.header.frame_id == 'LIDAR_LEFT'  # every LiDAR fused into the first (sorted)
        pts = cloud_array(cloud)
        left = trucksc.get('sample_data', sample['data']['LIDAR_LEFT'])
        right = trucksc.get('sample_data', sample['data']['LIDAR_RIGHT'])
        n_left = len(read_pcd(truck_root / left['filename']))
        right_pts = read_pcd(truck_root / right['filename'])
        assert len(pts) == n_left + len(right_pts)
        # The right LiDAR's points, moved right -> ego -> left, land where the converter took them from.
        r_r, t_r = calib(trucksc, right)
        r_l, t_l = calib(trucksc, left)
        want = ((right_pts[:, :3] @ r_r.T + t_r) - t_l) @ r_l
        got = np.stack([pts['x'], pts['y'], pts['z']], 1)[n_left:]
        np.testing.assert_allclose(got, want, atol=1e-4)
        # Boxes: the devkit's own transformation into LIDAR_LEFT; classes: TruckScenes' 12.
        _, ref_boxes, _ = trucksc.get_sample_data(left['token'])
        ref = {b.token: b for b in ref_boxes}
        assert [b.id for b in boxes.boxes] == sample['anns'] == [o.id for o in gt.objects]
        for box, obj in zip(boxes.boxes, gt.objects):
            p = box.pose.position
            np.testing.assert_allclose([p.x, p.y, p.z], ref[box.id].center, atol=1e-6)
            ann = trucksc.get('sample_annotation', box.id)
            assert obj.label == (category_to_detection_name(ann['category_name']) or '')
    labels = {o.label for m in msgs['/ground_truth/categories'] for o in m.objects}
    assert 'animal' in labels  # a TruckScenes class (void in nuScenes)


def read_pcd(path) -> np.ndarray:
    import pypcd4
    data = pypcd4.PointCloud.from_path(str(path)).pc_data
    return np.stack([data['x'], data['y'], data['z'], data['intensity']], 1).astype(np.float64)


def calib(trucksc, sd):
    cs = trucksc.get('calibrated_sensor', sd['calibrated_sensor_token'])
    w, x, y, z = cs['rotation']
    return quaternion_to_matrix(np.array([[x, y, z, w]]))[0], np.asarray(cs['translation'])
