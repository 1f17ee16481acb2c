"""The driving-object generator: meshes fit their boxes, the simulated LiDAR is exact and looks like the
real sweep, generation is deterministic, and generated sets round-trip through .npz."""

import json

import numpy as np
import pytest

from blendclip_core.data.triplet import REAL, SYNTHETIC
from blendclip_core.synthetic import captions, dataset, lidar, parts, shapes
from blendclip_core.vocabulary import DRIVING, NUSCENES_10


def test_vocabularies_are_covered():
    names = shapes.class_names()
    assert set(DRIVING) <= set(names)
    assert shapes.NUSCENES_CLASSES == NUSCENES_10


@pytest.mark.parametrize('spec', shapes.CLASSES, ids=lambda s: s.name)
def test_every_class_builds_inside_its_box(spec):
    rng = np.random.default_rng(3)
    for _ in range(3):
        obj = shapes.make_object(spec, rng)
        lo, hi = obj.mesh.bounds
        half = obj.size_lwh / 2
        assert np.all(lo >= -half - 1e-6) and np.all(hi <= half + 1e-6)
        assert np.isclose(lo[2], -half[2]) and np.isclose(hi[2], half[2])  # stands on the box bottom
        if spec.tight:
            assert np.allclose(hi - lo, obj.size_lwh)
        pts = shapes.sample_surface(obj.mesh, 500, rng)
        assert pts.shape == (500, 3) and pts.dtype == np.float32
        assert np.all(np.abs(pts) <= half + 1e-4)


def test_sizes_follow_class_statistics():
    rng = np.random.default_rng(0)
    sizes = {n: np.array([shapes.make_object(n, rng).size_lwh for _ in range(30)])
             for n in ('car', 'bus', 'barrier')}
    assert 4.0 < np.median(sizes['car'][:, 0]) < 5.2
    assert np.median(sizes['bus'][:, 0]) > 2 * np.median(sizes['car'][:, 0])
    assert np.all(sizes['barrier'][:, 1] > sizes['barrier'][:, 0])  # long across the heading, as in nuScenes


def test_ray_casting_hits_the_near_face_only():
    cube = parts.box(-1, 1, -1, 1, -1, 1)
    origin = np.array([-5.0, 0.0, 0.0])
    dirs = np.array([[1.0, 0, 0], [-1.0, 0, 0], [0.0, 1, 0]])
    t = lidar.ray_mesh_distance(origin, dirs, np.asarray(cube.triangles))
    assert t[0] == pytest.approx(4.0)  # the near face at x = -1, not the far one at x = +1
    assert np.isinf(t[1]) and np.isinf(t[2])


def test_scan_is_one_sided_and_on_the_beam_pattern():
    rng = np.random.default_rng(1)
    size = np.array([4.0, 2.0, 1.6])
    block = parts.box(*(np.array([-1, 1, -1, 1, -1, 1]) * np.repeat(size / 2, 2)))
    cfg = lidar.LidarConfig(dropout_min=0.0, dropout_max=0.0, occlusion_prob=0.0, ground=False,
                            range_noise=0.0, box_center_noise=0.0, box_size_noise=0.0, box_yaw_noise=0.0,
                            sensor_mix=(), truncation_prob=0.0)
    for yaw in (0.0, 0.7, 2.0):
        scan = lidar.scan_object(block, size, rng, cfg, range_m=10.0, yaw=yaw)
        pts = scan.points.astype(np.float64)
        assert len(pts) > 100
        elev = np.degrees(np.arctan2(pts[:, 2], np.hypot(pts[:, 0], pts[:, 1])))
        beams = np.asarray(cfg.elevations_deg)
        assert np.abs(elev[:, None] - beams[None]).min(axis=1).max() < 0.2  # every return lies on a beam
        # Self-occlusion: every return lies on a face of the block that faces the sensor.
        rot = scan.box.rotations[0]
        local = (pts - scan.true_center) @ rot  # box frame
        sensor = (-scan.true_center) @ rot
        for p in local:
            axis = int(np.argmax(np.abs(p) / (size / 2)))
            normal = np.sign(p[axis])
            assert normal * (sensor[axis] - p[axis]) > 0


def test_scan_point_counts_resemble_the_real_sweep(repo):
    """Simulated HDL-32E counts at the real boxes' ranges match the real recounts in order of magnitude."""
    ann = json.loads((repo / 'data' / 'nuscenes_sample' / 'annotations_lidar.json').read_text())
    from blendclip_core.preprocess import crop_objects

    rng = np.random.default_rng(0)
    real, sim = [], []
    for o in ann['objects']:
        r = float(np.hypot(*o['center_xyz'][:2]))
        if o['label'] not in ('pedestrian', 'barrier', 'car') or r > 50:
            continue
        counts = []
        for _ in range(4):
            obj = shapes.make_object(o['label'], rng)
            scan = lidar.scan_object(obj.mesh, obj.size_lwh, rng, range_m=r, sensor='HDL-32E', height=1.84)
            counts.append(int(crop_objects(scan.points, scan.box).points_in_box[0]))
        real.append(o['points_in_box_recount'])
        sim.append(np.median(counts))
    real, sim = np.array(real), np.array(sim)
    assert 0.5 < np.median(sim) / max(np.median(real), 1) < 2.0
    near = real >= 20
    assert np.all(sim[near] >= 5) and np.median(sim[near]) >= 15  # dense in reality -> dense here
    assert np.corrcoef(np.log1p(real), np.log1p(sim))[0, 1] > 0.6


def test_generation_is_deterministic_and_domains_differ():
    cfg = dataset.GeneratorConfig(classes=('car', 'pedestrian'), per_class=2, domain=REAL, seed=5)
    a, b = dataset.generate(cfg), dataset.generate(cfg)
    assert all(np.array_equal(p, q) for p, q in zip(a.points, b.points))
    assert a.captions == b.captions and a.labels == ['car', 'car', 'pedestrian', 'pedestrian']
    dense = dataset.generate(dataset.GeneratorConfig(classes=('car',), per_class=2, dense_points=256))
    assert dense.domain == SYNTHETIC and all(len(p) == 256 for p in dense.points)
    for p in a.points + dense.points:  # centred at the centroid, as preprocess does
        assert len(p) >= 1 and np.allclose(p.mean(axis=0), 0, atol=1e-3)


def test_captions_name_the_class_only():
    rng = np.random.default_rng(0)
    for spec in shapes.CLASSES:
        obj = shapes.make_object(spec, rng)
        caps = captions.make_captions(spec.name, obj.variant, obj.size_lwh, spec.size_mean[0], rng, 20.0)
        assert len(caps) == 3 and spec.name in caps[0]
        others = [c.name for c in shapes.CLASSES if c.name != spec.name and c.name not in spec.name
                  and c.name not in obj.variant]
        assert not any(f' {o} ' in f' {c} ' for c in caps for o in others), caps


def test_npz_round_trip_and_source(tmp_path):
    gen = dataset.generate(dataset.GeneratorConfig(classes=('bus', 'dog'), per_class=3, domain=REAL, seed=2))
    rng = np.random.default_rng(0)
    table = {}

    def fake_space(texts):  # any text space works; this one is a fixed random vector per text
        return np.stack([table.setdefault(t, rng.normal(size=8)) for t in texts])

    dataset.embed(gen, fake_space)
    path = dataset.save_npz(tmp_path / 'g.npz', gen)
    back = dataset.load_npz(path)
    assert back.labels == gen.labels and back.captions == gen.captions and back.domain == REAL
    for p, q in zip(gen.points, back.points):
        assert np.allclose(p, q, atol=5e-3)
    assert np.allclose(back.text_embeddings, gen.text_embeddings, atol=2e-3)
    src = dataset.source(path=str(path), domain=REAL, classes=['dog'])
    assert len(src) == 3 and src.labels == ['dog'] * 3 and src[0].text_embedding.shape == (8,)
    with pytest.raises(ValueError, match='holds the'):
        dataset.source(path=str(path), domain=SYNTHETIC)


def test_parallel_generation_equals_serial():
    cfg = dataset.GeneratorConfig(classes=('barrier', 'traffic cone'), per_class=2, domain=REAL, seed=7)
    a, b = dataset.generate(cfg), dataset.generate(cfg, workers=2)
    assert a.labels == b.labels and a.captions == b.captions
    assert all(np.array_equal(p, q) for p, q in zip(a.points, b.points))


def test_bad_requests_fail_clearly(tmp_path):
    with pytest.raises(KeyError, match='unknown class'):
        shapes.make_object('spaceship', np.random.default_rng(0))
    with pytest.raises(ValueError, match='domain'):
        dataset.generate(dataset.GeneratorConfig(domain='cad'))
    with pytest.raises(ValueError, match='does not exist'):
        dataset.source(path=str(tmp_path / 'missing.npz'))
    with pytest.raises(ValueError, match='no text embeddings'):
        dataset.save_npz(tmp_path / 'x.npz', dataset.generate(dataset.GeneratorConfig(classes=('dog',),
                                                                                      per_class=1)))


def test_every_caption_is_in_the_enumerated_universe():
    """What makes generation possible where the text model is not installed (the GPU machine)."""
    universe = set(dataset.caption_universe())
    for domain in (SYNTHETIC, REAL):
        gen = dataset.generate(dataset.GeneratorConfig(per_class=2, domain=domain, seed=11, dense_points=64))
        assert {c for caps in gen.captions for c in caps} <= universe


def test_sample_sweep_source_matches_the_annotations(repo):
    src = dataset.sample_sweep_source(str(repo / 'data' / 'nuscenes_sample'), min_points=20)
    assert sorted(src.num_points) == [21, 29, 32, 45, 46, 79, 479]  # the recounts in annotations_lidar.json
    assert sorted(set(src.labels)) == ['barrier', 'car', 'truck']


def test_bad_files_and_settings_are_typed_errors(tmp_path):
    bad = tmp_path / 'bad.npz'
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(ValueError, match='not a generated set'):
        dataset.load_npz(bad)
    with pytest.raises(ValueError, match='unknown generator setting'):
        dataset.source(path=str(tmp_path / 'new.npz'), generate={'per_klass': 3}, text_space='minilm:x')


def test_a_config_alone_makes_the_set_and_later_runs_load_the_same(tmp_path):
    """The trainer-config path: generated on first use with the real MiniLM space, saved, then loaded."""
    kwargs = dict(path=str(tmp_path / 'set.npz'), domain=REAL, text_space='minilm:all-MiniLM-L6-v2',
                  generate={'classes': ['car', 'barrier'], 'per_class': 2, 'domain': REAL, 'seed': 3})
    first = dataset.source(**kwargs)
    again = dataset.source(**kwargs)  # loads the file: no generation, no text model
    assert first.labels == again.labels == ['car', 'car', 'barrier', 'barrier']
    for a, b in zip(first, again):
        assert np.array_equal(a.points, b.points) and np.array_equal(a.text_embedding, b.text_embedding)
        assert a.text_embedding.shape == (384,) and abs(np.linalg.norm(a.text_embedding) - 1) < 1e-5
    # Text targets of one class sit closer together than across classes.
    e = np.stack([t.text_embedding for t in first])
    assert e[0] @ e[1] > e[0] @ e[2] and e[2] @ e[3] > e[1] @ e[3]
