"""Every reader on the real files of ../shared/data: the boxes land where the derived JSON files (checked
against the datasets' own point counts) put them, labels are nuScenes-10 names or None."""

import json

import numpy as np
import pytest
from real_data import real

from blendclip_core.datasets.kitti import MMDET3D_KITTI_CLASSES
from blendclip_core.datasets.labelled import read_labelled_frames
from blendclip_core.preprocess import crop_objects


def _boxes_match(frame, objects):
    boxes = frame.boxes
    np.testing.assert_allclose(boxes.centers, [o['center_xyz'] for o in objects], atol=1e-3)
    np.testing.assert_allclose(boxes.sizes, [o['size_lwh'] for o in objects], atol=1e-6)
    dyaw = np.angle(np.exp(1j * (boxes.yaws - [o['yaw'] for o in objects])))
    assert np.abs(dyaw).max() < 1e-3


def test_kitti_info_boxes_are_the_derived_velodyne_boxes():
    frame, = read_labelled_frames(real('kitti_sample', '000008.pkl'))
    derived = json.loads(real('kitti_sample', 'annotations_lidar.json').read_text())['objects']
    cars = [o for o in derived if o['label'] != 'DontCare']
    assert frame.labels == ('car',) * 6 and frame.points.shape == (17238, 4)
    _boxes_match(frame, cars)


def test_kitti_label_2_and_calib_written_from_the_info_read_the_same(tmp_path):
    """A KITTI object folder (velodyne/, label_2/, calib/) written from the real frame's pickle."""
    import pickle
    info = pickle.loads(real('kitti_sample', '000008.pkl').read_bytes())['data_list'][0]
    for d in ('velodyne', 'label_2', 'calib'):
        (tmp_path / d).mkdir()
    (tmp_path / 'velodyne' / '000008.bin').write_bytes(real('kitti_sample', '000008.bin').read_bytes())
    lines = []
    for i in info['instances']:
        name = MMDET3D_KITTI_CLASSES[i['bbox_label_3d']] if i['bbox_label_3d'] >= 0 else 'DontCare'
        x, y, z, length, h, w, ry = i['bbox_3d']
        lines.append(f'{name} 0 0 0 {" ".join(map(str, i["bbox"]))} {h} {w} {length} {x} {y} {z} {ry}')
    (tmp_path / 'label_2' / '000008.txt').write_text('\n'.join(lines) + '\n')
    r0 = np.asarray(info['images']['R0_rect'])[:3, :3].ravel()
    tr = np.asarray(info['lidar_points']['Tr_velo_to_cam'])[:3].ravel()
    (tmp_path / 'calib' / '000008.txt').write_text(
        f'P2: {" ".join(["0"] * 12)}\nR0_rect: {" ".join(map(str, r0))}\n'
        f'Tr_velo_to_cam: {" ".join(map(str, tr))}\n')
    frame, = read_labelled_frames(tmp_path)
    derived = json.loads(real('kitti_sample', 'annotations_lidar.json').read_text())['objects']
    _boxes_match(frame, [o for o in derived if o['label'] != 'DontCare'])
    single, = read_labelled_frames(tmp_path / 'velodyne' / '000008.bin', tmp_path / 'label_2' / '000008.txt')
    np.testing.assert_array_equal(single.boxes.centers, frame.boxes.centers)


def test_av2_sweeps_labels_tracks_and_point_counts():
    frames = list(read_labelled_frames(real('av2_sample')))
    assert [f.token[:8] for f in frames] == ['02a00399', '7fab2350', '7fab2350', 'adcf7d18']
    for frame in frames:
        m = json.loads(real('av2_sample', f'{frame.token}_annotations.json').read_text())
        assert list(frame.labels) == [o['nuscenes_class'] for o in m['objects']]
        assert [a.instance_token for a in frame.annotations] == [o['track_uuid'] for o in m['objects']]
        counts = np.diff(crop_objects(frame.points, frame.boxes, max_points=10 ** 6).batch.offsets)
        assert counts.tolist() == [o['num_interior_pts'] for o in m['objects']]


def test_nuscenes_sample_frame():
    frame, = read_labelled_frames(real('nuscenes_sample'))
    assert len(frame.labels) == 69 and frame.labels.count(None) == 1
    assert frame.labels.count('pedestrian') == 30 and frame.points.shape == (34688, 5)


def test_a_folder_no_reader_takes_says_what_each_reads():
    from blendclip_core.datasets.files import UnknownFormatError
    with pytest.raises(UnknownFormatError, match='kitti: .*av2: .*nuscenes_sample: '):
        list(read_labelled_frames(real('cad')))
