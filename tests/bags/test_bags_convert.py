"""blendclip-nuscenes2bag: bags from a generated dataroot and from the real sample read back three ways.

AnyReader decodes with only the definitions stored in the bag; real rclpy typesupport deserialises
the same bytes with the built `blendclip.msg` classes; the devkit gives the expected boxes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from bag_test_utils import cloud_array
from helpers.nuscenes_dataroot import EGO_SPEED, make_nuscenes_dataroot
from nuscenes.eval.detection.utils import category_to_detection_name
from nuscenes.nuscenes import NuScenes
from rosbags.highlevel import AnyReader

from blendclip_core.datasets.frame import CorruptInputError
from blendclip_core.datasets.nuscenes import load_lidar_bin
from blendclip_ros.bag import nuscenes2bag
from blendclip_ros.conversions.stamps import stamp_to_ns

CLOUD, BOXES, GT = '/lidar/points', '/detections', '/ground_truth/categories'


def read_bag(path: Path) -> dict[str, list]:
    """topic -> [(log time, decoded message, raw bytes)], decoded with the bag's own definitions."""
    out: dict[str, list] = {}
    with AnyReader([path]) as reader:  # no typestore given: definitions come from the bag
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype), raw))
    return out


def stamp_ns(header) -> int:
    return stamp_to_ns(header.stamp)


def assert_cloud_bit_exact(msg, pcd_bin: Path) -> None:
    raw = np.fromfile(pcd_bin, dtype='<f4').reshape(-1, 5)
    pts = cloud_array(msg)
    assert [f.name for f in msg.fields][:5] == ['x', 'y', 'z', 'intensity', 'ring']
    assert len(pts) == len(raw)
    for i, name in enumerate(('x', 'y', 'z', 'intensity')):
        assert pts[name].dtype == np.float32
        assert np.array_equal(pts[name].view(np.uint32), raw[:, i].view(np.uint32)), name
    assert pts['ring'].dtype == np.uint16
    assert np.array_equal(pts['ring'], raw[:, 4].astype(np.uint16))


def rclpy_roundtrip(topics: dict) -> int:
    """Every cloud and every message of ours, deserialised by real rclpy typesupport."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import PointCloud2

    from blendclip.msg import DetectedBoxArray, LabelledObjectArray
    classes = {CLOUD: PointCloud2, BOXES: DetectedBoxArray, GT: LabelledObjectArray}
    n = 0
    for topic, cls in classes.items():
        for _, decoded, raw in topics[topic]:
            msg = deserialize_message(bytes(raw), cls)
            assert stamp_ns(msg.header) == stamp_ns(decoded.header)
            if topic == CLOUD:
                assert bytes(msg.data) == bytes(decoded.data)
            else:
                items = msg.boxes if topic == BOXES else msg.objects
                ref = decoded.boxes if topic == BOXES else decoded.objects
                assert [b.id for b in items] == [b.id for b in ref]
                assert [b.pose.position.x for b in items] == [b.pose.position.x for b in ref]
                if topic == GT:
                    assert [o.label for o in items] == [o.label for o in ref]
            n += 1
    return n


@pytest.fixture(scope='module', params=[('mcap', 9, 'kilted'), ('sqlite3', 8, 'humble')],
                ids=['mcap-v9-kilted', 'sqlite3-v8-humble'])
def dataroot_bag(request, dataroot, tmp_path_factory):
    root, info = dataroot
    storage, version, distro = request.param
    out = tmp_path_factory.mktemp('bags') / f'gen_{storage}'
    rc = nuscenes2bag.main([str(out), '--dataroot', str(root), '--version', info['version'], '--cameras',
                            '--storage', storage, '--bag-version', str(version), '--distro', distro,
                            '--no-progress'])
    assert rc == 0
    return out, storage, version


def test_dataroot_bag_reads_back_with_embedded_definitions(dataroot, dataroot_bag):
    root, info = dataroot
    out, storage, version = dataroot_bag
    meta = (out / 'metadata.yaml').read_text()
    assert f'storage_identifier: {storage}' in meta and f'version: {version}' in meta
    topics = read_bag(out)
    nusc = NuScenes(version=info['version'], dataroot=str(root), verbose=False)
    samples = [t for scene in info['sample_tokens'] for t in scene]
    assert len(topics[CLOUD]) == len(topics[BOXES]) == len(topics[GT]) == len(samples)
    for (_, cloud, _), (_, boxes, _), (_, gt, _), token in zip(topics[CLOUD], topics[BOXES], topics[GT],
                                                              samples):
        sample = nusc.get('sample', token)
        sd = nusc.get('sample_data', sample['data']['LIDAR_TOP'])
        assert stamp_ns(cloud.header) == stamp_ns(boxes.header) == stamp_ns(gt.header)
        assert stamp_ns(cloud.header) == sd['timestamp'] * 1000
        assert cloud.header.frame_id == boxes.header.frame_id == 'LIDAR_TOP'
        assert_cloud_bit_exact(cloud, root / sd['filename'])
        # Boxes: the devkit's own transformation into the sensor frame is the reference.
        _, ref_boxes, _ = nusc.get_sample_data(sd['token'])
        ref = {b.token: b for b in ref_boxes}
        assert [b.id for b in boxes.boxes] == list(sample['anns']) == [o.id for o in gt.objects]
        for box, obj in zip(boxes.boxes, gt.objects):
            r = ref[box.id]
            p = box.pose.position
            assert np.allclose([p.x, p.y, p.z], r.center, atol=1e-6)
            assert np.allclose([box.size.x, box.size.y, box.size.z], r.wlh[[1, 0, 2]])
            q = box.pose.orientation
            assert abs(abs(np.dot([q.w, q.x, q.y, q.z], r.orientation.q)) - 1) < 1e-9
            assert box.detector_label == '' and np.isnan(box.detector_score)  # the answer is only on GT
            ann = info['annotations'][box.id]
            assert obj.label == (category_to_detection_name(ann['category']) or '')
            assert obj.detector_label == ann['category']
            assert obj.num_points == ann['points_per_sweep'][0]
    assert rclpy_roundtrip(topics) == 3 * len(samples)
    # tf: one static message with the rig, map -> base_link for every LiDAR and camera frame.
    (_, static, _), = topics['/tf_static']
    assert {t.child_frame_id for t in static.transforms} == {'LIDAR_TOP', 'CAM_FRONT', 'CAM_BACK'}
    assert len(topics['/tf']) == 3 * len(samples)
    assert len(topics['/cameras/CAM_FRONT/image/compressed']) == len(samples)
    jpeg = bytes(topics['/cameras/CAM_FRONT/image/compressed'][0][1].data)
    assert jpeg[:2] == b'\xff\xd8'
    info_msg = topics['/cameras/CAM_FRONT/camera_info'][0][1]
    assert (info_msg.width, info_msg.height) == (160, 90)


def test_real_sample_bag(sample_dir, tmp_path):
    out = tmp_path / 'sample_bag'
    assert nuscenes2bag.main([str(out), '--sample-dir', str(sample_dir), '--no-progress']) == 0
    ann = json.loads((sample_dir / 'annotations_lidar.json').read_text())
    topics = read_bag(out)
    (_, cloud, _), = topics[CLOUD]
    (_, boxes, _), = topics[BOXES]
    (_, gt, _), = topics[GT]
    assert_cloud_bit_exact(cloud, sample_dir / ann['lidar_file'])
    assert len(cloud_array(cloud)) == ann['num_points'] == 34688
    assert stamp_ns(cloud.header) == 1532402927647951000
    objs = ann['objects']
    assert len(boxes.boxes) == len(gt.objects) == len(objs) == 69
    for box, obj, src in zip(boxes.boxes, gt.objects, objs):
        assert box.id == obj.id == str(src['index'])
        p = box.pose.position
        assert [p.x, p.y, p.z] == pytest.approx(src['center_xyz'], abs=1e-9)
        assert [box.size.x, box.size.y, box.size.z] == pytest.approx(src['size_lwh'], abs=1e-9)
        q = box.pose.orientation
        assert [q.x, q.y, q.z, q.w] == pytest.approx(src['quaternion_xyzw'], abs=1e-9)
        assert obj.label == ('' if src['label'] == 'ignored_other_category' else src['label'])
    labels = [o.label for o in gt.objects]
    assert labels.count('pedestrian') == 30 and labels.count('barrier') == 22 and labels.count('') == 1
    assert rclpy_roundtrip(topics) == 3


def test_detections_results_file(dataroot, tmp_path):
    """A detector's submission file (global frame) lands in the LiDAR frame; --min-score filters."""
    root, info = dataroot
    nusc = NuScenes(version=info['version'], dataroot=str(root), verbose=False)
    results, rng = {}, np.random.default_rng(0)
    for token in info['sample_tokens'][0]:
        sample = nusc.get('sample', token)
        entries = []
        for ann_token in sample['anns']:
            a = nusc.get('sample_annotation', ann_token)
            entries.append({'sample_token': token, 'translation': a['translation'], 'size': a['size'],
                            'rotation': a['rotation'], 'velocity': [0.0, 0.0],
                            'detection_name': category_to_detection_name(a['category_name']) or 'car',
                            'detection_score': float(rng.uniform()), 'attribute_name': ''})
        entries.append({'sample_token': token, 'translation': [0, 0]})  # malformed: counted, skipped
        results[token] = entries
    path = tmp_path / 'results.json'
    path.write_text(json.dumps({'meta': {'use_lidar': True}, 'results': results}))
    out = tmp_path / 'det_bag'
    assert nuscenes2bag.main([str(out), '--dataroot', str(root), '--scenes', 'scene-0001', '--detections',
                              str(path), '--min-score', '0.5', '--no-progress']) == 0
    topics = read_bag(out)
    assert len(topics[BOXES]) == 3
    for (_, boxes, _), (_, gt, _), token in zip(topics[BOXES], topics[GT], info['sample_tokens'][0]):
        kept = [(i, e) for i, e in enumerate(results[token][:-1]) if e['detection_score'] >= 0.5]
        assert [b.id for b in boxes.boxes] == [f'det{i}' for i, _ in kept]
        scores = [e['detection_score'] for _, e in kept]
        assert [b.detector_score for b in boxes.boxes] == pytest.approx(scores)
        gt_by_id = {o.id: o for o in gt.objects}
        for b, (i, _) in zip(boxes.boxes, kept):
            ref = gt_by_id[nusc.get('sample', token)['anns'][i]]
            assert b.pose.position.x == pytest.approx(ref.pose.position.x, abs=1e-6)
            assert b.pose.position.y == pytest.approx(ref.pose.position.y, abs=1e-6)


def test_sweeps_and_corrupt_dataroot(tmp_path):
    root = tmp_path / 'corrupt'
    info = make_corrupt(root)
    out = tmp_path / 'bag'
    summary = nuscenes2bag.convert(
        nuscenes2bag.DevkitSource.open('nuscenes', root, info['version'], sweeps=3), out, progress=False)
    # sample 1 lost its file, sample 2 is truncated: both skipped and counted; sample 0 lost a sweep.
    assert summary.frames == 1 and summary.skipped_frames == 2 and summary.skipped_sweeps == 1
    (_, cloud, _), = read_bag(out)[CLOUD]
    pts = cloud_array(cloud)
    frames = info['lidar_frames'][0]
    key = frames[2]  # sweeps, sweeps, key: the key frame of sample 0
    n_key = len(load_lidar_bin(root / key['file']))
    assert not (root / frames[1]['file']).exists()  # the sweep just before the key frame was deleted
    n_prev = len(load_lidar_bin(root / frames[0]['file']))
    assert len(pts) == n_key + n_prev
    assert np.all(pts['time'][:n_key] == 0)
    assert np.allclose(pts['time'][n_key:], (key['timestamp'] - frames[0]['timestamp']) * 1e-6)
    # The older sweep is moved into the key frame's LiDAR frame: the generated ego drives straight
    # ahead (LiDAR +y) at EGO_SPEED, so its points sit that much further back.
    raw_prev = np.fromfile(root / frames[0]['file'], dtype='<f4').reshape(-1, 5)
    lag = (key['timestamp'] - frames[0]['timestamp']) * 1e-6
    assert np.allclose(pts['y'][n_key:], raw_prev[:, 1] - EGO_SPEED * lag, atol=1e-4)
    assert np.allclose(pts['x'][n_key:], raw_prev[:, 0], atol=1e-4)


def make_corrupt(root: Path) -> dict:
    return make_nuscenes_dataroot(root, scenes=1, samples_per_scene=3, sweeps_per_sample=2,
                                  ground_points=200, write_images=False,
                                  corrupt=('missing_pcd', 'truncated_pcd', 'missing_sweep'))


def test_cli_errors(tmp_path, sample_dir, capsys):
    assert nuscenes2bag.main([str(tmp_path / 'x'), '--dataroot', str(tmp_path), '--no-progress']) == 2
    assert 'no table folder' in capsys.readouterr().err
    assert nuscenes2bag.main([str(tmp_path / 'y'), '--sample-dir', str(tmp_path), '--no-progress']) == 2
    assert 'has no annotations_lidar.json' in capsys.readouterr().err
    bad = tmp_path / 'bad.json'
    bad.write_text('[1, 2]')
    assert nuscenes2bag.main([str(tmp_path / 'z'), '--sample-dir', str(sample_dir), '--detections', str(bad),
                              '--no-progress']) == 2
    assert "expected an object with a 'results' mapping" in capsys.readouterr().err


def test_cli_wrong_channel_converts_nothing(dataroot, tmp_path, capsys):
    root, info = dataroot
    rc = nuscenes2bag.main([str(tmp_path / 'w'), '--dataroot', str(root), '--version', info['version'],
                            '--scenes', 'scene-0001', '--lidar', 'LIDAR_FRONT', '--no-progress'])
    assert rc == 2 and 'no frame could be converted' in capsys.readouterr().err


def test_type_hashes_equal_rosidl(dataroot_bag):
    """Jazzy+ `ros2 bag play` compares RIHS01 type hashes: the bag's must be rosidl's own."""
    import sys
    out, _, _ = dataroot_bag
    share = Path(sys.prefix) / 'share'
    checked = 0
    with AnyReader([out]) as reader:
        for conn in reader.connections:
            pkg, _, name = conn.msgtype.split('/')
            ref = share / pkg / 'msg' / f'{name}.json'
            if not ref.is_file():
                continue  # tf2_msgs: no wheel installed here
            hashes = {h['type_name']: h['hash_string'] for h in json.loads(ref.read_text())['type_hashes']}
            assert conn.digest == hashes[conn.msgtype], conn.topic
            checked += 1
    assert checked >= 5  # clouds, our two types, compressed images, camera info


def run_convert(*args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, '-m', 'blendclip_ros.bag.nuscenes2bag', *map(str, args), '--no-progress']
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_truncated_lidar_file_is_skipped_counted_and_named(tmp_path):
    """A key file cut 3 bytes into a float (1003 bytes) used to become a 50-point frame; the miner's
    check (byte size a multiple of 20) rejects it, so the converter skips and names that keyframe."""
    root = tmp_path / 'root'
    info = make_nuscenes_dataroot(root, scenes=1, samples_per_scene=3, sweeps_per_sample=0,
                                  ground_points=200, write_images=False)
    key = [f for f in info['lidar_frames'][0] if f['key']][1]
    with open(root / key['file'], 'r+b') as f:
        f.truncate(50 * 20 + 3)
    with pytest.raises(CorruptInputError):
        load_lidar_bin(root / key['file'])  # what the miner does with it
    out = tmp_path / 'bag'
    done = run_convert(out, '--dataroot', root, '--version', info['version'])
    assert done.returncode == 0, done.stderr
    sample = info['sample_tokens'][0][1]
    assert 'skipped 1 frames' in done.stdout
    why = f'LiDAR file {root / key["file"]} has 1003 bytes'
    assert f'skipped sample {sample} of scene-0001: {why}' in done.stdout
    clouds = read_bag(out)[CLOUD]
    assert [stamp_ns(m.header) for _, m, _ in clouds] == [
        f['timestamp'] * 1000 for f in info['lidar_frames'][0] if f['key'] and f is not key]


def test_killed_conversion_leaves_no_bag_and_rerun_needs_no_cleanup(tmp_path):
    """SIGKILL with two keyframes handed to the writer and the third being read: no bag under the
    output name, the temporary is refused by blendclip-eval, and the same command then converts all."""
    root = tmp_path / 'root'
    info = make_nuscenes_dataroot(root, scenes=1, samples_per_scene=3, sweeps_per_sample=0,
                                  ground_points=200, image_size=(160, 90))
    third = sorted((root / 'samples' / 'CAM_FRONT').glob('*.jpg'))[2]
    jpeg = third.read_bytes()
    third.unlink()
    os.mkfifo(third)  # the converter blocks reading it, with the bag open and two frames in it
    out = tmp_path / 'out'
    args = [out, '--dataroot', root, '--version', info['version'], '--cameras', '--no-progress']
    proc = subprocess.Popen([sys.executable, '-m', 'blendclip_ros.bag.nuscenes2bag', *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob('.out.tmp-*/out/*.mcap')) and time.monotonic() < deadline:
            assert proc.poll() is None
            time.sleep(0.01)
        time.sleep(0.5)  # at the FIFO by now (nothing else takes that long)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    (temp,) = tmp_path.glob('.out.tmp-*')
    assert not out.exists()
    ev = subprocess.run([sys.executable, '-m', 'training.evaluate', '--bag', str(temp / 'out'), '--out',
                         str(tmp_path / 'eval')], capture_output=True, text=True, timeout=60)
    assert ev.returncode == 2 and 'incomplete bag' in ev.stderr and ev.stderr.count('\n') == 1, ev.stderr
    third.unlink()
    third.write_bytes(jpeg)
    done = run_convert(*args[:-1])
    assert done.returncode == 0, done.stderr
    assert len(read_bag(out)[CLOUD]) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out', 'root']  # the leftover is gone


def test_ground_truth_as_vision_msgs(sample_dir, tmp_path):
    """--vision-ground-truth: the same boxes and classes as /ground_truth/categories, as a
    vision_msgs/Detection3DArray that rosidl's own typesupport (built from ../shared/upstream) decodes
    and whose type hash is rosidl's."""
    from installed_msgs import import_msgs, msgs_env, msgs_prefix
    prefix = msgs_prefix('vision_msgs')
    out = tmp_path / 'vision_gt'
    run = subprocess.run([sys.executable, '-m', 'blendclip_ros.bag.nuscenes2bag', str(out), '--sample-dir',
                          str(sample_dir), '--vision-ground-truth', '--no-progress'],
                         capture_output=True, text=True, timeout=120, env=msgs_env(prefix, dict(os.environ)))
    assert run.returncode == 0, run.stderr
    assert '/ground_truth/detections: 1 messages' in run.stdout
    topics = read_bag(out)
    (_, gt, _), = topics[GT]
    (_, dets, raw), = topics['/ground_truth/detections']
    assert stamp_ns(dets.header) == stamp_ns(gt.header) and dets.header.frame_id == gt.header.frame_id
    assert len(dets.detections) == len(gt.objects) == 69
    for det, obj in zip(dets.detections, gt.objects):
        assert det.id == obj.id
        assert det.bbox.center == obj.pose and det.bbox.size == obj.size
        assert [r.hypothesis.class_id for r in det.results] == ([obj.label] if obj.label else [])
        assert all(r.hypothesis.score == 1.0 for r in det.results)
    msg = import_msgs(prefix, 'vision_msgs')
    from rclpy.serialization import deserialize_message
    decoded = deserialize_message(bytes(raw), msg.Detection3DArray)
    assert [d.results[0].hypothesis.class_id if d.results else '' for d in decoded.detections] == \
        [o.label for o in gt.objects]
    ref = json.loads((prefix / 'share/vision_msgs/msg/Detection3DArray.json').read_text())
    hashes = {h['type_name']: h['hash_string'] for h in ref['type_hashes']}
    with AnyReader([out]) as reader:
        conn, = [c for c in reader.connections if c.topic == '/ground_truth/detections']
        assert conn.digest == hashes['vision_msgs/msg/Detection3DArray']


def test_ground_truth_as_vision_msgs_without_vision_msgs(sample_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('AMENT_PREFIX_PATH', sys.prefix)  # the venv: the wheels, no vision_msgs
    out = tmp_path / 'no_vision'
    assert nuscenes2bag.main([str(out), '--sample-dir', str(sample_dir), '--vision-ground-truth',
                              '--no-progress']) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'no vision_msgs .msg files' in err and 'install vision_msgs' in err
    assert not out.exists()
