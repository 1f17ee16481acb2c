"""Mining a generated nuScenes dataroot: counts, motion compensation, crops, labels, corrupt inputs."""

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers.nuscenes_dataroot import make_nuscenes_dataroot
from PIL import Image

from blendclip_core.data.shards import iter_shards, read_index
from blendclip_core.datasets.nuscenes import NUSCENES, load_lidar_bin
from blendclip_core.mining.captioners import TemplateCaptioner
from blendclip_core.mining.categories import NUSCENES_TO_DETECTION, TRUCKSCENES_TO_DETECTION, coarse_label
from blendclip_core.mining.objects import MineConfig, mine_frame
from blendclip_core.mining.run import RunConfig, run_mining
from blendclip_core.mining.sweeps import crop_sweeps, stack_sweeps

pytest.importorskip('nuscenes')


open_nuscenes = NUSCENES.open_db


def nuscenes_frame(db, token, config, scene):
    """The shared reader with the miner's sweep count."""
    return NUSCENES.read_frame(db, token, config.sweeps, scene)


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp('nusc')
    info = make_nuscenes_dataroot(root, scenes=1, samples_per_scene=3, sweeps_per_sample=2)
    return root, info, open_nuscenes(root, 'v1.0-mini')


def _mine(db, info, **kw):
    config = MineConfig(**{'min_points': 0, **kw})
    out = {}
    for token in info['sample_tokens'][0]:
        frame = nuscenes_frame(db, token, config, 'scene-0001')
        triplets, skips = mine_frame(frame, config, TemplateCaptioner())
        assert not skips
        out.update({t.key: t for t in triplets})
    return out


def _brute_force_count(points: np.ndarray, box) -> int:
    """One point at a time, in the box frame (devkit Box: wlh, orientation)."""
    rot = box.orientation.rotation_matrix
    w, length, h = box.wlh
    n = 0
    for p in points:
        x, y, z = rot.T @ (p - box.center)
        n += abs(x) <= length / 2 and abs(y) <= w / 2 and abs(z) <= h / 2
    return n


def test_points_per_box_equal_brute_force_and_generator(generated):
    root, info, db = generated
    mined = _mine(db, info, sweeps=1)
    assert len(mined) == len(info['annotations'])
    sample = db.get('sample', info['sample_tokens'][0][1])
    path, boxes, _ = db.get_sample_data(sample['data']['LIDAR_TOP'])
    cloud = load_lidar_bin(path)[:, :3].astype(np.float64)
    for box in boxes:
        t = mined[box.token]
        expected = info['annotations'][box.token]['points_per_sweep'][0]
        assert len(t.points) == _brute_force_count(cloud, box) == expected
        assert t.meta['num_points'] == len(t.points)
        # stored in the box frame: inside the half-sizes, intensity kept
        assert (np.abs(t.points[:, :3]) <= np.asarray(t.meta['box']['size_lwh']) / 2 + 1e-4).all()
        np.testing.assert_allclose(t.points[:, 3], info['annotations'][box.token]['intensity'])


def test_multisweep_counts_with_motion_compensation(generated):
    _, info, db = generated
    mined = _mine(db, info, sweeps=3)
    for token, ann in info['annotations'].items():
        assert len(mined[token].points) == sum(ann['points_per_sweep'][:3]), ann['category']
    no_comp = _mine(db, info, sweeps=3, motion_comp=False)
    moving = [t for t, a in info['annotations'].items() if a['moving'] and a['key_index'] >= 2]
    assert moving
    for token in moving:  # without compensation the older sweeps of a moving object leave its box
        assert len(no_comp[token].points) < len(mined[token].points)


def _spread(points: np.ndarray, intensity: float) -> float:
    """Extent along the box heading of the object's own points (all sweeps together)."""
    x = points[points[:, 3] == np.float32(intensity), 0]
    return float(x.max() - x.min())


def test_motion_compensation_shrinks_moving_object_spread(generated):
    _, info, db = generated
    comp = _mine(db, info, sweeps=3, margin=3.0)
    raw = _mine(db, info, sweeps=3, margin=3.0, motion_comp=False)
    car = next(t for t, a in info['annotations'].items()
               if a['moving'] and a['category'] == 'vehicle.car' and a['key_index'] >= 2)
    ann = info['annotations'][car]
    length = ann['size_wlh'][1]
    spread_comp = _spread(comp[car].points, ann['intensity'])
    spread_raw = _spread(raw[car].points, ann['intensity'])
    # points lie on the box faces shrunk by 10 %: compensated sweeps stay inside that length
    assert 0.8 * length < spread_comp <= 0.9 * length + 1e-3
    lag = float(raw[car].points[:, 4].max())
    speed = float(np.linalg.norm(ann['velocity']))
    assert spread_raw == pytest.approx(spread_comp + speed * lag, abs=0.1 * length)
    cone = next(t for t, a in info['annotations'].items() if a['category'] == 'movable_object.trafficcone')
    cone_ann = info['annotations'][cone]
    assert _spread(comp[cone].points, cone_ann['intensity']) == pytest.approx(
        _spread(raw[cone].points, cone_ann['intensity']))


def test_crops_land_on_the_right_pixels(generated):
    _, info, db = generated
    mined = _mine(db, info, sweeps=1, min_crop_px=10)
    with_image = 0
    for token, ann in info['annotations'].items():
        t = mined[token]
        expected = ann['image']
        if expected is None or int(ann['visibility']) < 4:
            assert t.image is None
            continue
        assert t.meta['camera'] == expected['camera'] and t.meta['crop_rect'] == expected['rect']
        crop = np.asarray(Image.open(io.BytesIO(t.image)).convert('RGB'), np.float64)
        u0, v0, u1, v1 = expected['rect']
        assert crop.shape[:2] == (v1 - v0, u1 - u0)
        if not expected['overlapped']:
            inner = crop[2:-2, 2:-2].reshape(-1, 3).mean(0)
            np.testing.assert_allclose(inner, expected['colour'], atol=12)
            with_image += 1
    assert with_image >= 4
    # the default 50 px rule keeps only the big crops
    mined = _mine(db, info, sweeps=1)
    for token, ann in info['annotations'].items():
        rect = ann['image'] and ann['image']['rect']
        big = (bool(rect) and rect[2] - rect[0] >= 50 and rect[3] - rect[1] >= 50
               and int(ann['visibility']) >= 4)
        assert (mined[token].image is not None) == big
        if rect and not big and int(ann['visibility']) >= 4:
            assert mined[token].meta['image_status'] == 'small_crop'


def test_labels_void_flags_and_captions(generated):
    _, info, db = generated
    mined = _mine(db, info, sweeps=1)
    from nuscenes.eval.detection.utils import category_to_detection_name

    cats = Counter()
    for token, ann in info['annotations'].items():
        t = mined[token]
        cats[ann['category']] += 1
        assert t.label == ann['category']
        assert t.label_coarse == (category_to_detection_name(ann['category']) or '')
        assert t.is_void == t.meta['void'] == (ann['category'] in ('movable_object.debris', 'animal'))
        assert t.meta['annotation_token'] == token and t.meta['sample_token'] == ann['sample']
    assert cats['movable_object.debris'] and cats['animal']
    parked = next(mined[t] for t, a in info['annotations'].items() if 'vehicle.parked' in a['attributes'])
    assert parked.caption == 'a parked car, about 4.5 m long'
    walker = next(mined[t] for t, a in info['annotations'].items()
                  if a['category'] == 'human.pedestrian.adult')
    assert walker.caption == 'a walking pedestrian, about 1.8 m tall'


def test_category_maps_equal_the_devkits():
    from helpers.nuscenes_dataroot import CATEGORIES
    from nuscenes.eval.detection.utils import category_to_detection_name as nusc_map

    for cat in CATEGORIES:
        assert coarse_label(cat) == (nusc_map(cat) or '')
    assert set(NUSCENES_TO_DETECTION) <= set(CATEGORIES)
    truck = pytest.importorskip('truckscenes.eval.detection.utils')
    extra = {'vehicle.other', 'static_object.traffic_sign', 'vehicle.ego_trailer'}
    for cat in set(TRUCKSCENES_TO_DETECTION) | set(CATEGORIES) | extra:
        assert coarse_label(cat, 'truckscenes') == (truck.category_to_detection_name(cat) or '')
    assert len(set(TRUCKSCENES_TO_DETECTION.values())) == 12


def test_real_sweep_counts_match_recount(repo):
    """The real LIDAR_TOP sweep cropped by its 69 boxes through the mining path gives the recounts."""
    from nuscenes.utils.data_classes import Box
    from nuscenes.utils.geometry_utils import points_in_box
    from pyquaternion import Quaternion

    folder = repo / 'data' / 'nuscenes_sample'
    ann = json.loads((folder / 'annotations_lidar.json').read_text())
    cloud = load_lidar_bin(folder / ann['lidar_file'])
    stack = stack_sweeps([(cloud, np.eye(4), 0.0)])
    objs = ann['objects']
    assert len(objs) == 69
    yaws = np.array([o['yaw'] for o in objs])
    c, s = np.cos(yaws), np.sin(yaws)
    rot = np.zeros((len(objs), 3, 3))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1
    centers = np.array([o['center_xyz'] for o in objs])
    sizes = np.array([o['size_lwh'] for o in objs])
    crops = crop_sweeps(stack, centers, sizes, rot, np.zeros((len(objs), 3)))
    counts = [len(p) for p in crops]
    assert counts == [o['points_in_box_recount'] for o in objs]
    from blendclip_core.geometry import Boxes
    from blendclip_core.preprocess import crop_objects

    node_path = crop_objects(cloud[:, :3], Boxes.from_yaw(centers, sizes, yaws))
    assert node_path.points_in_box.tolist() == counts
    for o, n in zip(objs[:20], counts):  # and the devkit's own test agrees
        box = Box(o['center_xyz'], [o['size_lwh'][1], o['size_lwh'][0], o['size_lwh'][2]],
                  Quaternion(axis=[0, 0, 1], angle=o['yaw']))
        assert points_in_box(box, cloud[:, :3].T.astype(np.float64)).sum() == n


def test_corrupt_inputs_are_skipped_counted_and_reported(tmp_path):
    root = tmp_path / 'root'
    info = make_nuscenes_dataroot(root, corrupt=('missing_pcd', 'truncated_pcd', 'zero_size_annotation',
                                                 'missing_sweep'))
    from training.mine import main

    first = info['sample_tokens'][0][0]
    sorted(root.glob('samples/CAM_FRONT/*.jpg'))[0].unlink()  # the first sample's front image
    broken = info['corrupted']['zero_size_annotation']['annotation']
    lost_crops = 0
    for t, a in info['annotations'].items():
        im = a['image']
        if a['sample'] == first and t != broken and im and im['camera'] == 'CAM_FRONT':
            lost_crops += int(a['visibility']) >= 4 and min(im['rect'][2] - im['rect'][0],
                                                           im['rect'][3] - im['rect'][1]) >= 50
    out = tmp_path / 'out'
    rc = main(['--dataroot', str(root), '--split', 'scene-0001', '--out', str(out), '--sweeps', '3',
               '--no-progress'])
    assert rc == 0
    index = read_index(out)
    assert lost_crops >= 1 and index['images']['missing_image'] == lost_crops
    per_sample = len(info['annotations']) // 3
    assert index['skipped'] == {'missing_lidar': per_sample, 'corrupt_lidar': per_sample, 'invalid_box': 1}
    assert index['sweeps_skipped'] == {'missing_lidar': 1}
    assert index['num_samples'] == per_sample - 1
    keys = {t.key for t in iter_shards(out, verify='sha256')}
    assert info['corrupted']['zero_size_annotation']['annotation'] not in keys
    report = (out / 'report' / 'summary.md').read_text()
    assert 'missing_lidar' in report and 'corrupt_lidar' in report and 'invalid_box' in report
    assert (out / 'report' / 'points_per_object.png').stat().st_size > 1000
    assert (out / 'report' / 'examples.png').stat().st_size > 1000
    summary = json.loads((out / 'report' / 'summary.json').read_text())
    assert sum(summary['points_histogram']['counts']) == index['num_samples']


def test_missing_dataroot_and_bad_split_are_clear_errors(tmp_path, generated, capsys):
    from training.mine import main

    assert main(['--dataroot', str(tmp_path / 'nope'), '--out', str(tmp_path / 'o'), '--no-progress']) == 2
    assert 'not found' in capsys.readouterr().err
    root = generated[0]
    assert main(['--dataroot', str(root), '--split', 'scene-9999', '--out', str(tmp_path / 'o2'),
                 '--no-progress']) == 2
    assert 'scene-9999' in capsys.readouterr().err


def test_workers_and_split_parts_give_the_same_bytes(tmp_path):
    root = tmp_path / 'root'
    make_nuscenes_dataroot(root, scenes=3, samples_per_scene=3, sweeps_per_sample=1)
    base = dict(dataroot=str(root), version='v1.0-mini', split='all', mine=MineConfig(sweeps=2))
    one = run_mining(RunConfig(out=str(tmp_path / 'one'), **base), progress=False)
    two = run_mining(RunConfig(out=str(tmp_path / 'two'), workers=2, **base), progress=False)
    for part in (0, 1):  # two machines into one directory, the index rebuilt by the last
        parts = run_mining(RunConfig(out=str(tmp_path / 'parts'), shard_index=part, shard_count=2, **base),
                           progress=False)
    assert one == two == parts
    assert one['scenes'] == 3 and sum(one['splits']['all']['classes'].values()) == one['num_samples']
    for r in one['shards']:
        data = (tmp_path / 'one' / r['name']).read_bytes()
        assert data == (tmp_path / 'two' / r['name']).read_bytes()
        assert data == (tmp_path / 'parts' / r['name']).read_bytes()
    assert (tmp_path / 'one' / 'index.json').read_bytes() == (tmp_path / 'two' / 'index.json').read_bytes()
    assert Path(tmp_path / 'one' / 'report' / 'points_per_object.png').is_file()


def test_full_visibility_matches_the_devkit(generated):
    """The camera choice rests on the devkit's BoxVisibility.ALL rule: same boxes, every camera."""
    from nuscenes.utils.geometry_utils import BoxVisibility

    from blendclip_core.mining.objects import box_corners, project_fully_visible

    _, info, db = generated
    compared = 0
    for token in info['sample_tokens'][0]:
        frame = nuscenes_frame(db, token, MineConfig(sweeps=1), 'scene-0001')
        for cam in frame.cameras:
            _, boxes, _ = db.get_sample_data(db.get('sample', token)['data'][cam.channel],
                                             box_vis_level=BoxVisibility.ALL)
            ours = {a.token for a in frame.annotations
                    if project_fully_visible(box_corners(a.center, a.rotation, a.size_lwh), cam) is not None}
            assert ours == {b.token for b in boxes}
            compared += len(ours)
    assert compared >= 10


def test_broken_records_are_counted_and_failed_scenes_reported(tmp_path, capsys):
    root = tmp_path / 'root'
    info = make_nuscenes_dataroot(root, scenes=2, samples_per_scene=3, sweeps_per_sample=1)
    tables = root / 'v1.0-mini'
    anns = json.loads((tables / 'sample_annotation.json').read_text())
    bad_sample = info['sample_tokens'][0][1]
    next(a for a in anns if a['sample_token'] == bad_sample)['rotation'] = 'not a quaternion'
    (tables / 'sample_annotation.json').write_text(json.dumps(anns))
    scenes = json.loads((tables / 'scene.json').read_text())
    scenes[1]['first_sample_token'] = 'no-such-sample'
    (tables / 'scene.json').write_text(json.dumps(scenes))
    from training.mine import main

    out = tmp_path / 'out'
    rc = main(['--dataroot', str(root), '--split', 'all', '--out', str(out), '--sweeps', '2',
               '--no-progress'])
    assert rc == 1 and 'scene-0002' in capsys.readouterr().err
    index = read_index(out)
    per_sample = len(info['annotations']) // 6
    assert index['scenes'] == 1 and index['skipped'] == {'error_ValueError': per_sample}
    assert index['num_samples'] == 2 * per_sample
