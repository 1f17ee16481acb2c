"""blendclip-eval on a labelled bag: numbers equal an independent recomputation, files are written.

The predictions here are constructed (known right and wrong answers, labels outside the protocol,
missing predictions, few points), so every filter and metric is exercised without a model; the
end-to-end run on a model-labelled bag is in test_bags_live.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bag_test_utils import copy_with_corrupt
from rosbags.highlevel import AnyReader

from blendclip_core.evaluation import protocol as proto
from blendclip_core.evaluation.metrics import metrics_from_ranked
from blendclip_core.evaluation.protocol import rank_labels
from blendclip_core.vocabulary import DRIVING, NUSCENES_10_NAMES, TRUCKSCENES_12_NAMES
from blendclip_ros.bag import nuscenes2bag
from blendclip_ros.bag import typestore as tsm
from blendclip_ros.bag.evaluate import evaluate_labelled_bag
from blendclip_ros.bag.writer import BagWriter
from training import evaluate

DEVKIT_CONFIGS = {
    'nuscenes': 'nuscenes/eval/detection/configs/detection_cvpr_2019.json',
    'truckscenes': 'truckscenes/eval/detection/configs/detection_cvpr_2024.json',
}


@pytest.mark.parametrize('name', sorted(DEVKIT_CONFIGS))
def test_protocol_ranges_are_the_devkits(name):
    import importlib
    pkg = importlib.import_module(DEVKIT_CONFIGS[name].split('/')[0])
    cfg = json.loads((Path(pkg.__file__).parent / Path(*DEVKIT_CONFIGS[name].split('/')[1:])).read_text())
    p = proto.get_protocol(name)
    assert p.ranges_m == {k: float(v) for k, v in cfg['class_range'].items()}
    names = NUSCENES_10_NAMES if name == 'nuscenes' else TRUCKSCENES_12_NAMES
    assert len(p.class_names) == len(names) == (10 if name == 'nuscenes' else 12)


def test_protocol_names_and_ranges():
    p = proto.NUSCENES
    assert p.templates == ('point cloud of a {}.',)
    for label in ('construction_vehicle', 'Construction Vehicle', 'construction-vehicle '):
        assert p.class_names[p.class_index(label)] == 'construction vehicle'
    assert p.class_index('kick scooter') == p.class_index('') == -1
    idx = p.class_indices(['car', 'pedestrian', 'traffic cone', 'car', 'dog'])
    mask = p.in_range(idx, np.array([50.0, 40.5, 29.9, 50.1, 1.0]))
    assert mask.tolist() == [True, False, True, False, False]
    with pytest.raises(ValueError):
        proto.get_protocol('kitti')


def make_labelled_bag(src: Path, out: Path, seed: int = 0) -> dict:
    """Copy `src` and add /blendclip/objects with constructed predictions; returns them by box id."""
    rng = np.random.default_rng(seed)
    store = tsm.make_typestore()
    obj_t, hyp_t = store.types['blendclip/msg/LabelledObject'], store.types['blendclip/msg/LabelHypothesis']
    truth = {}
    with AnyReader([src]) as reader, BagWriter(out, store) as bag:
        for conn, t, raw in reader.messages():
            bag.write_raw(conn.topic, conn.msgtype, t, raw)
            if conn.topic != '/ground_truth/categories':
                continue
            gt = reader.deserialize(raw, conn.msgtype)
            objects = []
            for o in gt.objects:
                if rng.uniform() < 0.1:
                    continue  # no prediction for this box: must count as a miss
                truth_name = proto.normalise_label(o.label)
                others = [lab for lab in DRIVING if proto.normalise_label(lab) != truth_name]
                ranked = list(rng.permutation(others)[:5])
                rank = int(rng.integers(0, 7))
                if o.label and rank < 5:
                    ranked.insert(rank, NUSCENES_10_NAMES[o.label])
                ranked = ranked[:5]
                n_points = int(rng.integers(0, 60))
                truth[o.id] = (ranked, n_points)
                objects.append(obj_t(id=o.id, pose=o.pose, size=o.size, label=ranked[0], score=0.5,
                                     top_k=[hyp_t(label=lab, score=0.1) for lab in ranked],
                                     num_points=n_points, status=0, detector_label='',
                                     detector_score=float('nan')))
            arr = store.types[tsm.LABELLED_OBJECT_ARRAY](header=gt.header, objects=objects,
                                                         vocabulary_version='v', model='constructed')
            bag.write('/blendclip/objects', t, arr)
    return truth


def expected(sample_dir: Path, truth: dict, min_points: int) -> dict:
    """Straight loops over the source JSON: class, ego distance via lidar2ego, devkit ranges."""
    ann = json.loads((sample_dir / 'annotations_lidar.json').read_text())
    lidar2ego = np.array(ann['lidar2ego'])
    ranges = json.loads((Path(__import__('nuscenes').__file__).parent
                         / 'eval/detection/configs/detection_cvpr_2019.json').read_text())['class_range']
    rows = []
    for o in ann['objects']:
        cls = o['label']
        if cls not in ranges:
            continue
        c = lidar2ego[:3, :3] @ np.array(o['center_xyz']) + lidar2ego[:3, 3]
        if np.hypot(c[0], c[1]) > ranges[cls]:
            continue
        pred = truth.get(str(o['index']))
        n = pred[1] if pred else o['num_lidar_pts']
        if n < min_points:
            continue
        ranked = [lab.replace(' ', '_') for lab in (pred[0] if pred else [])]
        rows.append((cls, ranked[:1] == [cls], cls in ranked[:5]))
    per_class = {}
    for cls, top1, _ in rows:
        per_class.setdefault(cls, []).append(top1)
    return {'n': len(rows), 'top1': np.mean([r[1] for r in rows]), 'top5': np.mean([r[2] for r in rows]),
            'mean_class_top1': np.mean([np.mean(v) for v in per_class.values()]),
            'per_class_n': {k: len(v) for k, v in per_class.items()}}


@pytest.mark.parametrize('min_points', [1, 20])
def test_eval_labelled_bag_equals_recomputation(sample_dir, tmp_path, min_points):
    src = tmp_path / 'in'
    assert nuscenes2bag.main([str(src), '--sample-dir', str(sample_dir), '--no-progress']) == 0
    labelled = tmp_path / 'labelled'
    truth = make_labelled_bag(src, labelled, seed=min_points)
    out = tmp_path / 'eval'
    assert evaluate.main(['--bag', str(labelled), '--out', str(out), '--min-points', str(min_points)]) == 0
    summary = json.loads((out / 'metrics.json').read_text())
    want = expected(sample_dir, truth, min_points)
    assert summary['counts']['evaluated'] == want['n'] > 0
    assert summary['top1'] == pytest.approx(want['top1'])
    assert summary['top5'] == pytest.approx(want['top5'])
    assert summary['mean_class_top1'] == pytest.approx(want['mean_class_top1'])
    per_class = summary['result']['per_class']
    assert {NUSCENES_10_NAMES[k]: v for k, v in want['per_class_n'].items()} == {
        k: v['n'] for k, v in per_class.items() if v['n']}
    assert np.sum(summary['result']['confusion']) <= want['n']
    assert summary['counts']['outside_classes'] == 1  # the one 'ignored_other_category' box
    assert summary['filters']['distance'].endswith('base_link')
    for name in ('confusion.png', 'bev.png'):
        assert (out / name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert '| **overall** |' in (out / 'per_class.md').read_text()
    # The function the demo calls gives the same numbers as the CLI's file.
    again = evaluate_labelled_bag(labelled, min_points=min_points)
    assert again['top1'] == summary['top1'] and again['counts'] == summary['counts']


def test_eval_closed_set_ranks_only_protocol_classes(sample_dir, tmp_path):
    src = tmp_path / 'in'
    assert nuscenes2bag.main([str(src), '--sample-dir', str(sample_dir), '--no-progress']) == 0
    labelled = tmp_path / 'labelled'
    make_labelled_bag(src, labelled, seed=5)
    open_set = evaluate_labelled_bag(labelled)
    closed = evaluate_labelled_bag(labelled, closed_set=True)
    # Dropping non-class labels can only move true classes up the ranking.
    assert closed['top1'] >= open_set['top1'] and closed['top5'] >= open_set['top5']
    assert closed['counts']['evaluated'] == open_set['counts']['evaluated']


def test_eval_errors(tmp_path, sample_dir):
    src = tmp_path / 'in'
    assert nuscenes2bag.main([str(src), '--sample-dir', str(sample_dir), '--no-progress']) == 0
    assert evaluate.main(['--bag', str(src), '--out', str(tmp_path / 'e')]) == 2  # not labelled


def test_eval_shards_equals_per_object_classification(dataroot, tiny_checkpoint, tmp_path):
    """Mined triplets + checkpoint: the batched CLI equals classifying each triplet alone."""
    from nuscenes.eval.detection.utils import category_to_detection_name

    from blendclip_core.classifier import ZeroShotClassifier
    from blendclip_core.data.shards import iter_shards
    from blendclip_core.mining.objects import MineConfig
    from blendclip_core.mining.run import RunConfig, run_mining
    from blendclip_core.types import ObjectBatch
    root, info = dataroot
    shards = tmp_path / 'shards'
    run_mining(RunConfig(dataroot=str(root), version=info['version'], split='scene-0001', out=str(shards),
                         mine=MineConfig(sweeps=1)), progress=False)
    out = tmp_path / 'eval'
    assert evaluate.main(['--shards', str(shards), '--checkpoint', str(tiny_checkpoint), '--device', 'cpu',
                          '--out', str(out)]) == 0
    summary = json.loads((out / 'metrics.json').read_text())
    p = proto.NUSCENES
    clf = ZeroShotClassifier.from_checkpoint(tiny_checkpoint, vocabulary=list(p.class_names),
                                             templates=list(p.templates), device='cpu')
    hits1, hits5, void = [], [], 0
    for t in iter_shards(shards):
        cls = category_to_detection_name(t.label)
        if cls is None:
            void += 1
            continue
        assert t.meta['distance'] <= p.ranges_m[cls]  # the generated scene is small
        pred = clf.classify(ObjectBatch.from_list([t.points]))
        ranked = [lab for lab, _ in pred.top_labels(0)]
        hits1.append(ranked[:1] == [NUSCENES_10_NAMES[cls]])
        hits5.append(NUSCENES_10_NAMES[cls] in ranked[:5])
    assert summary['counts']['evaluated'] == len(hits1) > 0
    assert summary['counts']['outside_classes'] == void
    assert summary['top1'] == pytest.approx(np.mean(hits1))
    assert summary['top5'] == pytest.approx(np.mean(hits5))
    assert (out / 'confusion.png').read_bytes()[:4] == b'\x89PNG'


def test_eval_detector_boxes_matched_by_center(sample_dir, tmp_path):
    """A detector's boxes (results file, own ids) are paired with the ground truth by centre distance."""
    ann = json.loads((sample_dir / 'annotations_lidar.json').read_text())
    to_global = np.array(ann['ego2global']) @ np.array(ann['lidar2ego'])
    rng = np.random.default_rng(7)
    entries, det_to_gt = [], []
    for o in ann['objects']:
        if rng.uniform() < 0.2:
            continue  # missed by the detector: a miss for its ground-truth box
        c = to_global[:3, :3] @ (np.array(o['center_xyz']) + rng.uniform(-0.05, 0.05, 3)) + to_global[:3, 3]
        yaw = o['yaw'] + np.arctan2(to_global[1, 0], to_global[0, 0])
        entries.append({'sample_token': ann['sample_token'], 'translation': c.tolist(),
                        'size': [o['size_lwh'][1], o['size_lwh'][0], o['size_lwh'][2]],
                        'rotation': [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)], 'velocity': [0, 0],
                        'detection_name': 'car', 'detection_score': 0.9, 'attribute_name': ''})
        det_to_gt.append(o)
    far = (to_global @ np.array([80.0, 80.0, 0.0, 1.0]))[:3]  # a false positive, matched to nothing
    entries.append({**entries[0], 'translation': far.tolist()})
    results = tmp_path / 'results.json'
    results.write_text(json.dumps({'meta': {}, 'results': {ann['sample_token']: entries}}))
    src = tmp_path / 'in'
    assert nuscenes2bag.main([str(src), '--sample-dir', str(sample_dir), '--detections', str(results),
                              '--no-progress']) == 0
    # Predictions for the detector's boxes: truth (of the box each came from) at a random rank.
    store = tsm.make_typestore()
    obj_t, hyp_t = store.types['blendclip/msg/LabelledObject'], store.types['blendclip/msg/LabelHypothesis']
    labelled, truth = tmp_path / 'labelled', {}
    with AnyReader([src]) as reader, BagWriter(labelled, store) as bag:
        for conn, t, raw in reader.messages():
            bag.write_raw(conn.topic, conn.msgtype, t, raw)
            if conn.topic != '/detections':
                continue
            dets = reader.deserialize(raw, conn.msgtype)
            objects = []
            for box in dets.boxes:
                i = int(box.id[3:])
                gt = det_to_gt[i] if i < len(det_to_gt) else None
                ranked = list(rng.permutation([lab for lab in DRIVING if gt is None or lab.replace(' ', '_')
                                               != gt['label']])[:5])
                if gt is not None and gt['label'] in NUSCENES_10_NAMES and rng.uniform() < 0.5:
                    ranked = [NUSCENES_10_NAMES[gt['label']]] + ranked[:4]
                if gt is not None:
                    truth[str(gt['index'])] = ranked
                objects.append(obj_t(id=box.id, pose=box.pose, size=box.size, label=ranked[0], score=0.5,
                                     top_k=[hyp_t(label=lab, score=0.1) for lab in ranked], num_points=50,
                                     status=0, detector_label='car', detector_score=0.9))
            bag.write('/blendclip/objects', t, store.types[tsm.LABELLED_OBJECT_ARRAY](
                header=dets.header, objects=objects, vocabulary_version='v', model='constructed'))
    summary = evaluate_labelled_bag(labelled)
    assert summary['filters']['match'] == 'center'
    want = expected(sample_dir, {k: (v, 50) for k, v in truth.items()}, min_points=1)
    assert summary['counts']['evaluated'] == want['n'] > 0
    assert summary['counts']['evaluated_without_prediction'] > 0  # the missed boxes
    assert summary['top1'] == pytest.approx(want['top1']) and 0 < summary['top1'] < 1
    assert summary['top5'] == pytest.approx(want['top5'])
    # Pairing by id finds nothing here: every box is a miss.
    assert evaluate_labelled_bag(labelled, match='id')['top5'] == 0.0


def test_metrics_from_ranked_equals_metrics_from_scores():
    """Given full rankings, the bag path's metrics are the trainer's zero_shot_metrics exactly."""
    from blendclip_core.evaluation.metrics import ranked, zero_shot_metrics
    rng = np.random.default_rng(3)
    names = proto.NUSCENES.class_names
    scores = rng.normal(size=(300, len(names)))
    labels = rng.integers(-1, len(names), 300)
    labels[labels == 4] = 3  # one class with no sample: NaN in its row, left out of the mean
    ref = zero_shot_metrics(scores, labels, names)
    got = metrics_from_ranked(ranked(scores, 5), labels, names)
    assert got.overall == pytest.approx(ref.overall)
    assert got.mean_per_class == pytest.approx(ref.mean_per_class)
    for k in (1, 5):
        np.testing.assert_array_equal(np.isnan(got.per_class[k]), np.isnan(ref.per_class[k]))
        np.testing.assert_allclose(np.nan_to_num(got.per_class[k]), np.nan_to_num(ref.per_class[k]))
    np.testing.assert_array_equal(got.confusion, ref.confusion)


def test_rank_labels_open_and_closed_set():
    p = proto.NUSCENES
    ranked = ['kick scooter', 'car', 'dog', 'Traffic Cone']
    assert rank_labels(ranked, p, 5, closed_set=False) == [-1, p.class_index('car'), -1,
                                                                     p.class_index('traffic_cone'), -1]
    assert rank_labels(ranked, p, 3, closed_set=True) == [p.class_index('car'),
                                                                    p.class_index('traffic_cone'), -1]
    assert rank_labels((), p, 2, closed_set=False) == [-1, -1]


def run_eval(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'training.evaluate', *map(str, args)], capture_output=True,
                          text=True, timeout=60)


@pytest.fixture(scope='module')
def scenes_labelled(dataroot, tmp_path_factory):
    """6 keyframes of the generated dataroot with constructed predictions."""
    root, info = dataroot
    folder = tmp_path_factory.mktemp('eval-scenes')
    assert nuscenes2bag.main([str(folder / 'src'), '--dataroot', str(root), '--version', info['version'],
                              '--no-progress']) == 0
    make_labelled_bag(folder / 'src', folder / 'labelled', seed=7)
    return folder / 'labelled'


def test_eval_skips_corrupt_messages_and_names_them(scenes_labelled, tmp_path):
    """An undecodable ground-truth array and an undecodable label array: that frame and those labels are
    left out, counted and named; the rest is scored (it used to end in a rosbags traceback)."""
    bag = tmp_path / 'bag'
    bad = copy_with_corrupt(scenes_labelled, bag, {'/ground_truth/categories': [1],
                                                   '/blendclip/objects': [4]})
    done = run_eval('--bag', bag, '--out', tmp_path / 'eval')
    assert done.returncode == 0, done.stderr
    assert 'Traceback' not in done.stderr
    named = f"/blendclip/objects at {bad['/blendclip/objects'][0]} ns"
    assert 'skipped 2 corrupt messages' in done.stdout and named in done.stdout
    summary = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
    clean = evaluate_labelled_bag(scenes_labelled)
    with AnyReader([scenes_labelled]) as reader:
        conns = [c for c in reader.connections if c.topic == '/ground_truth/categories']
        lost = [len(reader.deserialize(raw, c.msgtype).objects)
                for c, _, raw in reader.messages(connections=conns)][1]
    counts = summary['counts']
    assert counts['corrupt_messages'] == 2 and counts['frames'] == clean['counts']['frames'] - 1 == 5
    assert counts['gt_boxes'] == clean['counts']['gt_boxes'] - lost
    assert counts['frames_without_labels'] == 1
    assert summary['corrupt_messages']['by_topic'] == {'/ground_truth/categories': 1, '/blendclip/objects': 1}


def damaged_bags(labelled: Path, folder: Path) -> dict[str, Path]:
    """Copies of a complete bag, each damaged the way a disk, a kill or a user can."""
    out = {}
    for name in ('truncated', 'no_metadata', 'bad_metadata'):
        out[name] = folder / name
        shutil.copytree(labelled, out[name])
    (storage,) = out['truncated'].glob('*.mcap')
    with open(storage, 'r+b') as f:
        f.truncate(storage.stat().st_size // 2)
    (out['no_metadata'] / 'metadata.yaml').unlink()
    (out['bad_metadata'] / 'metadata.yaml').write_text('rosbag2_bagfile_information: [\n')
    out['missing'] = folder / 'missing'
    out['temporary'] = folder / '.x.tmp-1' / 'x'  # what a killed label-bag leaves
    shutil.copytree(labelled, out['temporary'])
    return out


@pytest.mark.parametrize('case, says', [
    ('truncated', 'cannot read the bag'), ('no_metadata', 'incomplete bag: no metadata.yaml'),
    ('bad_metadata', 'cannot read the bag'), ('missing', 'no such bag'),
    ('temporary', 'incomplete bag: the temporary'), ('unlabelled', 'has no /blendclip/objects'),
    ('no_shards', 'not a shard directory'), ('bad_shard_index', 'is not valid JSON')])
def test_eval_errors_are_one_line(sample_dir, tmp_path, case, says):
    """Every expected error: exit code 2 and one line on stderr naming the file (was a traceback)."""
    src, labelled = tmp_path / 'in', tmp_path / 'labelled'
    assert nuscenes2bag.main([str(src), '--sample-dir', str(sample_dir), '--no-progress']) == 0
    make_labelled_bag(src, labelled)
    bags = {**damaged_bags(labelled, tmp_path), 'unlabelled': src}
    (tmp_path / 'shards').mkdir()
    (tmp_path / 'bad_shards').mkdir()
    (tmp_path / 'bad_shards' / 'index.json').write_text('{"format": ')
    if case in bags:
        args = ['--bag', bags[case]]
    else:
        args = ['--shards', tmp_path / ('shards' if case == 'no_shards' else 'bad_shards')]
    done = run_eval(*args, '--out', tmp_path / 'eval')
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith('blendclip-eval: error: ') and done.stderr.count('\n') == 1, done.stderr
    assert says in done.stderr
    assert 'Traceback' not in done.stderr
