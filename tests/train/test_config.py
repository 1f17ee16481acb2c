"""Typed config: YAML + dotted overrides, clear errors for typos and wrong types, shipped configs load."""

import pytest
from train_testutil import REPO

from blendclip_core.train.config import ConfigError, SourceConfig, TrainConfig, load_config, to_dict
from training.train import main


@pytest.mark.parametrize('name', ['smoke.yaml', 'pointbert_s_nuscenes.yaml'])
def test_shipped_configs_load(name):
    cfg = load_config(REPO / 'training' / 'configs' / name)
    assert isinstance(cfg, TrainConfig)
    assert cfg.optim.betas == (0.9, 0.98)
    assert load_config(base=to_dict(cfg)) == cfg  # round trip through plain dicts


def test_recipe_config_matches_the_method():
    cfg = load_config(REPO / 'training' / 'configs' / 'pointbert_s_nuscenes.yaml')
    assert cfg.model.name == 'pointbert-s' and cfg.batch_size == 64 and cfg.epochs == 250
    assert (cfg.optim.lr, cfg.optim.lr_min, cfg.optim.weight_decay) == (1e-3, 1e-5, 0.1)
    assert (cfg.curriculum.schedule, cfg.curriculum.warmup, cfg.curriculum.max_fraction) == ('ramp', 1, 0.3)
    assert cfg.augment.dropout_max == 0.875 and cfg.augment.scale == (0.8, 1.25)
    assert cfg.data.real[0] == SourceConfig('shards', 'nuscenes_train', {
        'root': 'data/triplets/nuscenes', 'split': 'train', 'include_void': False,
        'embeddings': 'openclip:ViT-B-16:datacomp_xl_s13b_b90k'})
    assert len(cfg.eval.vocabulary) == 10


def test_overrides_and_yaml_numbers():
    cfg = load_config(None, ['optim.lr=2e-3', 'curriculum.points=[[0, 0], [5, 0.3]]', 'batch_size=8',
                             ('model.overrides', {'embed_dim': 16})])
    assert cfg.optim.lr == 2e-3 and cfg.batch_size == 8 and cfg.model.overrides == {'embed_dim': 16}
    assert cfg.curriculum.points == ((0, 0), (5, 0.3))


@pytest.mark.parametrize('override, message', [
    ('optim.lrr=1', 'optim.lrr'),
    ('batch_size=1.5', 'batch_size: expected int'),
    ('log.tensorboard=yes please', 'expected true/false'),
    ('optim.betas=[0.9]', 'expected 2 values'),
    ('data.real=[{name: x}]', 'needs a mapping with a "kind"'),
    ('ddp_comm=fp16', "ddp_comm must be 'fp32' or 'bf16'"),
])
def test_config_errors_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_cli_reports_config_errors_and_prints_config(capsys):
    assert main(['--set', 'optim.lrr=1']) == 2
    assert 'optim.lrr' in capsys.readouterr().err
    assert main(['--data', 'synthetic', '--print-config', '--set', 'seed=3']) == 0
    printed = capsys.readouterr().out
    assert 'seed: 3' in printed and 'real_heldout' in printed
    assert main(['--data', 'synthetic', '--resume', '/nonexistent/step_1.pt']) == 2
    assert 'not found' in capsys.readouterr().err
    assert main(['--set', 'data.real=[{kind: shards, root: /nonexistent/shards}]']) == 2
    assert 'cannot set up training' in capsys.readouterr().err
