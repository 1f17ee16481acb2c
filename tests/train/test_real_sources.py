"""The whole chain on real code paths: blendclip-mine shards of a generated nuScenes-format dataroot,
blendclip-embed with a tiny OpenCLIP, then blendclip-train with those shards as the real side (and an
eval set), OpenCLIP as the text space for the evaluation vocabulary, toy shapes as the synthetic side."""

import json

import pytest
from helpers.sample import TINY_CLIP

from blendclip_core.data.datasets import TripletDataset

pytest.importorskip('nuscenes')
open_clip = pytest.importorskip('open_clip')

pytestmark = pytest.mark.timeout(300)



def test_train_on_mined_and_embedded_shards(tmp_path):
    from helpers.nuscenes_dataroot import make_nuscenes_dataroot

    from blendclip_core.mining.objects import MineConfig
    from blendclip_core.mining.run import RunConfig, run_mining
    from training.embed import main as embed_main
    from training.train import main as train_main

    make_nuscenes_dataroot(tmp_path / 'root', scenes=1, samples_per_scene=3, sweeps_per_sample=1)
    shards = tmp_path / 'shards'
    run_mining(RunConfig(str(tmp_path / 'root'), 'v1.0-mini', 'all', str(shards), MineConfig(sweeps=1)),
               progress=False)
    cfg = tmp_path / 'tiny-clip-train.json'
    cfg.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(str(cfg))
    spec = 'openclip:tiny-clip-train:none'
    assert embed_main(['--shards', str(shards), '--space', spec, '--device', 'cpu', '--no-progress',
                       '--model-config', str(cfg)]) == 0
    real = TripletDataset(shards, embeddings=spec, include_void=False)
    classes = sorted(set(real.labels))
    assert len(real) >= 6 and len(classes) >= 3

    source = {'kind': 'shards', 'root': str(shards), 'embeddings': spec, 'include_void': False}
    out = tmp_path / 'run'
    args = ['--set', 'model.overrides={embed_dim: 32}', '--set', 'batch_size=6', '--set', 'epochs=1',
            '--set', 'steps_per_epoch=4', '--set', 'optim.warmup_epochs=0', '--set', 'log.every_steps=1',
            '--set', 'log.tensorboard=false', '--set', 'log.progress=false',
            '--set', 'curriculum.schedule=static', '--set', 'curriculum.fraction=0.5',
            '--set', f'curriculum.excluded_real_classes=[{classes[0]}]',
            '--set', 'data.synthetic=[{kind: toy, per_class: 4, points: [40, 64]}]',
            '--set', f'data.real=[{json.dumps(source)}]',
            '--set', f'data.eval=[{json.dumps({**source, "name": "mined"})}]',
            '--set', f'text_space.spec={spec}', '--device', 'cpu', '--out', str(out)]
    assert train_main(args) == 0
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['steps'] == 4 and summary['vocabulary'] == classes
    assert 0.0 <= summary['final_eval']['mined/top1'] <= summary['final_eval']['mined/top5'] <= 1.0
    report = json.loads((out / 'eval' / 'mined.json').read_text())
    assert report['num_samples'] == len(real)
    from blendclip_core.checkpoint import load_checkpoint

    _, card = load_checkpoint(out / 'encoder.pt')
    assert card.text_space == spec
    assert classes[0] not in card.classes_seen  # held out of the real side
    assert set(classes[1:]) <= set(card.classes_seen)
