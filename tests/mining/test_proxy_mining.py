"""Proxy mining (CLIP2): 2D boxes lifted into the LiDAR of a generated dataroot with known geometry land
in shards with their provenance and train; the lifting's parts on constructed points."""

import json

import numpy as np
import pytest
from helpers.nuscenes_dataroot import make_nuscenes_dataroot
from helpers.sample import TINY_CLIP

from blendclip_core.data.datasets import TripletDataset
from blendclip_core.mining.lifting import GroundMap, clusters, fit_rectangle
from blendclip_core.mining.objects import MineConfig
from blendclip_core.mining.proxy import DetectorError, create_detector
from blendclip_core.mining.run import RunConfig, run_mining

pytest.importorskip('nuscenes')
open_clip = pytest.importorskip('open_clip')
pytestmark = pytest.mark.timeout(300)



def test_rectangle_ground_and_clusters():
    rng = np.random.default_rng(0)
    yaw = 0.4
    local = rng.uniform([-2.0, -0.9], [2.0, 0.9], (400, 2))
    c, s = np.cos(yaw), np.sin(yaw)
    centre, size, fitted = fit_rectangle(local @ np.array([[c, s], [-s, c]]) + [10.0, 5.0])
    np.testing.assert_allclose(centre, [10.0, 5.0], atol=0.1)
    np.testing.assert_allclose(size, [4.0, 1.8], atol=0.15)
    assert abs((fitted - yaw + np.pi / 2) % np.pi - np.pi / 2) < 0.06
    road = np.column_stack([rng.uniform(-20, 20, (4000, 2)), rng.normal(-1.8, 0.02, 4000)])
    ground = GroundMap(road, 2.0)
    assert np.abs(ground.height(np.array([[0.0, 0.0], [15.0, -15.0], [500.0, 0.0]])) + 1.8).max() < 0.1
    two = np.concatenate([rng.normal(0, 0.1, (50, 3)), rng.normal(3, 0.1, (50, 3))])
    labels = clusters(two, 0.6)
    assert len(set(labels[:50])) == 1 and len(set(labels[50:])) == 1 and labels[0] != labels[50]


def test_detector_specs(tmp_path):
    with pytest.raises(DetectorError, match='unknown detector'):
        create_detector('yolo')
    with pytest.raises(DetectorError, match='does not exist'):
        create_detector(f'hf:{tmp_path / "none"}')
    with pytest.raises(DetectorError, match='given boxes'):
        create_detector(f'given:{tmp_path / "none.json"}')


def _given_boxes(generated: dict, labels: dict, path) -> dict:
    """The generator's fully visible boxes' image rectangles as 2D detections, per sample and camera."""
    boxes: dict = {}
    for token, ann in generated['annotations'].items():
        if ann['image'] and labels.get(token):
            det = {'box': ann['image']['rect'], 'label': labels[token], 'score': 0.9}
            boxes.setdefault(ann['sample'], {}).setdefault(ann['image']['camera'], []).append(det)
    path.write_text(json.dumps(boxes))
    return boxes


def test_proxy_triplets_land_in_shards_and_train(tmp_path):
    from training.embed import main as embed_main
    from training.mine import main as mine_main
    from training.train import main as train_main

    generated = make_nuscenes_dataroot(tmp_path / 'root', scenes=1, samples_per_scene=3, sweeps_per_sample=1)
    annotated = tmp_path / 'annotated'
    run_mining(RunConfig(str(tmp_path / 'root'), 'v1.0-mini', 'all', str(annotated), MineConfig(sweeps=2)),
               progress=False)
    truth = {t.key: t for t in TripletDataset(annotated)}
    given = _given_boxes(generated, {k: t.label_coarse for k, t in truth.items()}, tmp_path / 'boxes.json')
    assert sum(len(d) for cams in given.values() for d in cams.values()) >= 6

    shards = tmp_path / 'proxy'
    assert mine_main(['--dataroot', str(tmp_path / 'root'), '--split', 'all', '--sweeps', '2', '--out',
                      str(shards), '--proxy', f'given:{tmp_path / "boxes.json"}', '--no-progress']) == 0
    proxies = list(TripletDataset(shards))
    assert len(proxies) >= 4
    errors = []
    for p in proxies:  # each lands on a generated box of its sample, with its label and provenance
        assert p.meta['proxy']['detector'].startswith('given:') and p.meta['proxy']['score'] == 0.9
        same = [t for t in truth.values() if t.meta['sample_token'] == p.meta['sample_token']]
        dist = [np.linalg.norm(np.subtract(t.meta['box']['center'][:2], p.meta['box']['center'][:2]))
                for t in same]
        nearest = same[int(np.argmin(dist))]
        # visible faces only: the centre sits toward the sensor, inside the true footprint
        assert min(dist) < nearest.meta['box']['size_lwh'][0] / 2
        assert nearest.label_coarse == p.label_coarse == p.label
        assert p.image is not None and len(p.points) >= 5
        errors.append(min(dist))
    assert np.median(errors) < 0.5
    cfg = tmp_path / 'tiny-clip-proxy.json'
    cfg.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(str(cfg))
    spec = 'openclip:tiny-clip-proxy:none'
    assert embed_main(['--shards', str(shards), '--space', spec, '--device', 'cpu', '--no-progress',
                       '--model-config', str(cfg)]) == 0
    source = {'kind': 'shards', 'root': str(shards), 'embeddings': spec}
    out = tmp_path / 'run'
    args = ['--set', 'model.overrides={embed_dim: 32}', '--set', 'batch_size=4', '--set', 'epochs=1',
            '--set', 'steps_per_epoch=3', '--set', 'optim.warmup_epochs=0', '--set', 'log.tensorboard=false',
            '--set', 'log.progress=false', '--set', 'curriculum.schedule=static',
            '--set', 'curriculum.fraction=0.5',
            '--set', 'data.synthetic=[{kind: toy, per_class: 4, points: [40, 64]}]',
            '--set', f'data.real=[{json.dumps(source)}]', '--set', f'text_space.spec={spec}',
            '--device', 'cpu', '--out', str(out)]
    assert train_main(args) == 0
    assert json.loads((out / 'summary.json').read_text())['steps'] == 3
