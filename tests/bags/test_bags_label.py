"""blendclip-label-bag on the real nuScenes sweep, and its refusals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from bag_test_utils import copy_with_corrupt
from rosbags.highlevel import AnyReader

from blendclip_ros.bag import label_bag, nuscenes2bag


@pytest.fixture(scope='module')
def sample_bag(sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp('label') / 'sample'
    assert nuscenes2bag.main(['--out', str(out), '--sample-dir', str(sample_dir), '--no-progress']) == 0
    return out


def test_label_real_sample(sample_bag, sample_dir, params_file, tmp_path, capsys):
    out = tmp_path / 'labelled'
    assert label_bag.main([str(sample_bag), str(out), '--params-file', str(params_file), '--no-progress',
                           '-p', 'min_points:=5']) == 0
    assert 'labelled 1 frames (69 objects)' in capsys.readouterr().out
    ann = json.loads((sample_dir / 'annotations_lidar.json').read_text())
    with AnyReader([out]) as reader:
        conns = {c.topic: c for c in reader.connections}
        (msg,) = [reader.deserialize(raw, c.msgtype)
                  for c, _, raw in reader.messages(connections=[conns['/blendclip/objects']])]
        (markers,) = [reader.deserialize(raw, c.msgtype)
                      for c, _, raw in reader.messages(connections=[conns['/blendclip/markers']])]
    assert msg.header.frame_id == 'LIDAR_TOP' and msg.model == 'bags-tiny'
    assert [o.id for o in msg.objects] == [str(o['index']) for o in ann['objects']]
    for obj, src in zip(msg.objects, ann['objects']):
        if src['points_in_box_recount'] >= 5:
            # Points inside the box, as the annotation file recounted them on this very scan.
            assert obj.num_points == src['points_in_box_recount']
            assert obj.status == 0 and obj.label and len(obj.top_k) == 5
        else:
            assert obj.status == 1 and obj.label == '' and not obj.top_k  # NO_POINTS
    assert len(markers.markers) > 0 and markers.markers[0].header.frame_id == 'LIDAR_TOP'


def test_label_bag_refusals(sample_bag, tmp_path, capsys):
    def run(*args):
        return label_bag.main([*map(str, args), '--no-progress'])

    assert run(sample_bag, tmp_path / 'a', '-p', 'top_k:=0') == 2
    assert 'top_k=0 is outside' in capsys.readouterr().err
    assert run(sample_bag, tmp_path / 'b', '-p', 'boxes_topic:=/nope') == 2
    assert 'needs blendclip/msg/DetectedBoxArray on /nope' in capsys.readouterr().err
    assert run(tmp_path / 'missing', tmp_path / 'c') == 2
    assert run(sample_bag, sample_bag) == 2
    assert 'exists' in capsys.readouterr().err
    assert run(sample_bag, tmp_path / 'd', '-p', f'checkpoint:={tmp_path / "none.pt"}') == 2
    assert not (tmp_path / 'd').exists()
    assert run(sample_bag, tmp_path / 'e', '-p', 'top_k') == 2  # not name:=value


def test_label_corrupt_dataroot_answers_every_box(params_file, tmp_path):
    """A zero-size annotation reaches the node's pipeline as INVALID_BOX; frames with lost LiDAR files
    were skipped (and counted) by the conversion, so nothing else is missing."""
    from helpers.nuscenes_dataroot import make_nuscenes_dataroot
    root = tmp_path / 'root'
    info = make_nuscenes_dataroot(root, samples_per_scene=3, sweeps_per_sample=0, ground_points=200,
                                  write_images=False, corrupt=('zero_size_annotation', 'missing_pcd'))
    src, out = tmp_path / 'src', tmp_path / 'out'
    assert nuscenes2bag.main(['--out', str(src), '--dataroot', str(root), '--no-progress']) == 0
    stats = label_bag.label_bag(src, out, label_bag.node_params(params_file, {}), progress=False)
    assert stats.frames_labelled == 2 and stats.status_counts['INVALID_BOX'] == 1
    bad = info['corrupted']['zero_size_annotation']['annotation']
    with AnyReader([out]) as reader:
        conns = [c for c in reader.connections if c.topic == '/blendclip/objects']
        objects = [o for c, _, raw in reader.messages(connections=conns)
                   for o in reader.deserialize(raw, c.msgtype).objects]
    assert [o.status for o in objects if o.id == bad] == [2]  # STATUS_INVALID_BOX
    assert all(o.status == 0 for o in objects if o.id != bad and o.num_points > 0)


@pytest.fixture(scope='module')
def scene_bag(dataroot, tmp_path_factory):
    """6 keyframes (2 scenes) of the generated dataroot."""
    root, info = dataroot
    out = tmp_path_factory.mktemp('label-scenes') / 'scenes'
    assert nuscenes2bag.main([str(out), '--dataroot', str(root), '--version', info['version'],
                              '--no-progress']) == 0
    return out


def run_label_bag(*args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, '-m', 'blendclip_ros.bag.label_bag', *map(str, args), '--no-progress']
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def objects_stamps(path) -> list[int]:
    with AnyReader([path]) as reader:
        conns = [c for c in reader.connections if c.topic == '/blendclip/objects']
        return [t for _, t, _ in reader.messages(connections=conns)]


def test_label_bag_skips_corrupt_messages_and_names_them(scene_bag, params_file, tmp_path):
    """One undecodable box array and one cloud: those two frames are skipped, counted and named;
    the other four are labelled and the command succeeds (it used to abort with 'error not set')."""
    src, out = tmp_path / 'src', tmp_path / 'out'
    bad = copy_with_corrupt(scene_bag, src, {'/detections': [1], '/lidar/points': [3]})
    done = run_label_bag(src, out, '--params-file', params_file)
    assert done.returncode == 0, done.stderr
    assert 'labelled 4 frames' in done.stdout
    assert 'corrupt messages skipped: 2 (/detections 1, /lidar/points 1)' in done.stdout
    for topic, (t,) in bad.items():
        assert f'{topic} at {t} ns: ' in done.stdout
    with AnyReader([scene_bag]) as reader:
        conns = [c for c in reader.connections if c.topic == '/detections']
        stamps = [t for _, t, _ in reader.messages(connections=conns)]
    assert objects_stamps(out) == [t for i, t in enumerate(stamps) if i not in (1, 3)]
    with AnyReader([out]) as reader:  # every input record is copied as recorded, the corrupt ones too
        assert {c.topic: c.msgcount for c in reader.connections}['/detections'] == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out', 'src']


def test_killed_label_bag_leaves_no_bag_and_rerun_needs_no_cleanup(scene_bag, params_file, tmp_path):
    """SIGKILL while the output is being written: no bag under the output name (so nothing partial can
    be evaluated), blendclip-eval refuses the temporary in one line, and the same command then succeeds."""
    out = tmp_path / 'out'
    cmd = [sys.executable, '-m', 'blendclip_ros.bag.label_bag', str(scene_bag), str(out), '--params-file',
           str(params_file), '--no-progress']
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        temp = wait_for_bag_file(tmp_path, proc)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists() and temp.exists()
    ev = subprocess.run([sys.executable, '-m', 'training.evaluate', '--bag', str(temp), '--out',
                         str(tmp_path / 'eval')], capture_output=True, text=True, timeout=60)
    assert ev.returncode == 2 and ev.stderr.count('\n') == 1 and 'incomplete bag' in ev.stderr, ev.stderr
    done = run_label_bag(scene_bag, out, '--params-file', params_file)
    assert done.returncode == 0, done.stderr
    assert len(objects_stamps(out)) == 6
    assert [p.name for p in tmp_path.iterdir() if p.name != 'eval'] == ['out']  # the leftover is gone


def wait_for_bag_file(folder, proc, timeout: float = 60.0):
    """The writer's temporary once it exists (the bag is being written: it is opened before the first
    frame and renamed after the last, so the whole labelling run is the window to kill in)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for temp in folder.glob('.out.tmp-*'):
            return temp
        time.sleep(0.002)
    raise AssertionError(f'no temporary bag appeared (exit code {proc.poll()})')
