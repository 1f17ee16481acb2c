"""blendclip-label-frames end to end (subprocess, the shipped model): on the real nuScenes sample, on a
PCD + JSON box list written here, and one clear line with a non-zero exit for files it cannot read."""

import json
import subprocess
import sys

import numpy as np
from conftest import REPO
from real_data import real
from test_file_formats import write_pcd


def run(*args):
    return subprocess.run([sys.executable, '-m', 'training.label_frames', *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_labels_the_real_nuscenes_sample(tmp_path):
    done = run(real('nuscenes_sample'), '--vocabulary', 'nuscenes', '--out', tmp_path, '--device', 'cpu')
    assert done.returncode == 0, done.stderr
    labels = json.loads((tmp_path / 'labels.json').read_text())
    assert len(labels['objects']) == 69 and labels['vocabulary'][0] == 'car'
    truck = max(labels['objects'], key=lambda o: o['points'])  # the 479-point truck
    assert truck['truth'] == 'truck' and truck['status'] == 'OK' and truck['label']
    assert (tmp_path / 'ca9a282c9e77460f8360f564131a8af5_bev.png').stat().st_size > 10_000
    header = done.stdout.splitlines()[0].split()
    assert header == ['frame', 'box', 'label', 'score', 'points', 'status', 'truth']


def test_labels_a_written_pcd_with_a_box_list(tmp_path):
    rng = np.random.default_rng(0)
    car = rng.uniform([-2, -0.9, 0.2], [2, 0.9, 1.5], (400, 3)) + [10, 5, 0]
    rows = np.zeros(len(car), [('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('intensity', '<f4')])
    rows['x'], rows['y'], rows['z'] = car.T
    pcd = write_pcd(tmp_path / 'cloud.pcd', ['x', 'y', 'z', 'intensity'], [4] * 4, ['F'] * 4, [1] * 4, rows)
    (tmp_path / 'boxes.json').write_text(json.dumps([
        {'center': [10, 5, 0.85], 'size': [4.2, 1.9, 1.5], 'yaw': 0.0, 'id': 'car-1'},
        {'center': [-30, 0, 1], 'size': [1, 1, 2], 'quaternion': [0, 0, 0, 1], 'id': 'empty'}]))
    done = run(pcd, tmp_path / 'boxes.json', '--vocabulary', 'car, pedestrian, bus', '--out', tmp_path / 'o',
               '--device', 'cpu')
    assert done.returncode == 0, done.stderr
    objects = {o['box']: o for o in json.loads((tmp_path / 'o' / 'labels.json').read_text())['objects']}
    assert objects['car-1']['points'] == 400 and objects['car-1']['label'] in ('car', 'pedestrian', 'bus')
    assert objects['empty']['status'] == 'NO_POINTS' and objects['empty']['label'] == ''
    assert (tmp_path / 'o' / 'cloud.pcd_bev.png').is_file()


def test_unknown_or_broken_files_exit_non_zero_with_one_line(tmp_path):
    (tmp_path / 'cloud.xyz').write_text('1 2 3\n')
    (tmp_path / 'broken.pcd').write_bytes(b'VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\n'
                                          b'POINTS 9\nDATA binary\n')
    (tmp_path / 'boxes.json').write_text('[]')
    for points, match in (('cloud.xyz', 'unknown points format'), ('broken.pcd', 'unreadable PCD')):
        done = run(tmp_path / points, tmp_path / 'boxes.json', '--out', tmp_path / 'o')
        assert done.returncode == 2 and done.stdout == ''
        assert len(done.stderr.strip().splitlines()) == 1 and match in done.stderr
