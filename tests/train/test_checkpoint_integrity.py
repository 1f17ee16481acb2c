"""Damaged checkpoints and leftovers: flipped bytes and truncation are caught at load, `--resume` falls
back to the newest intact checkpoint and names what it skipped, none intact is one clear line, stale
temporaries are swept, and model.init_checkpoint starts training from exported weights."""

import logging
import shutil

import pytest
import torch
from train_testutil import FAST

from blendclip_core.checkpoint import HASH_KEY, load_checkpoint, read_checkpoint
from blendclip_core.train.loop import Trainer
from training.train import build_config, main, parse_args

STEPS = ['--set', 'epochs=3', '--set', 'checkpoint.every_steps=10', '--set', 'checkpoint.keep_last=5']


def _losses(out) -> dict[int, float]:
    import json

    return {r['step']: r['loss'] for r in map(json.loads, (out / 'metrics.jsonl').read_text().splitlines())
            if r['kind'] == 'train'}


@pytest.fixture(scope='module')
def finished_run(tmp_path_factory):
    """A 30-step run with checkpoints at steps 10, 20 and 30."""
    out = tmp_path_factory.mktemp('integrity') / 'run'
    assert main(FAST + STEPS + ['--out', str(out)]) == 0
    return out


@pytest.fixture
def run(finished_run, tmp_path):
    out = tmp_path / 'run'
    shutil.copytree(finished_run, out)
    return out


def _flip_tensor_bytes(path, n: int = 32) -> None:
    """Flip `n` bytes inside a weight tensor's data (not the pickle): the file still loads with torch."""
    weight = torch.load(path, weights_only=True)['module']['encoder.proj.weight']
    data = bytearray(path.read_bytes())
    at = data.find(weight.numpy().tobytes()[:256])
    assert at > 0
    data[at + 64:at + 64 + n] = bytes(b ^ 0xFF for b in data[at + 64:at + 64 + n])
    path.write_bytes(bytes(data))


def _ckpt(out, step: int):
    return out / 'checkpoints' / f'step_{step:08d}.pt'


def test_checkpoints_carry_a_content_hash(finished_run):
    for step in (10, 20, 30):
        assert len(read_checkpoint(_ckpt(finished_run, step))[HASH_KEY]) == 64


@pytest.mark.parametrize('damage', ['flipped', 'truncated'])
def test_resume_skips_a_damaged_latest_checkpoint(run, damage, caplog):
    ref = _losses(run)
    latest = _ckpt(run, 30)
    if damage == 'flipped':
        _flip_tensor_bytes(latest)
        torch.load(latest, weights_only=True)  # torch alone does not notice
    else:
        latest.write_bytes(latest.read_bytes()[:latest.stat().st_size // 2])
    with caplog.at_level(logging.INFO):
        assert main(FAST + STEPS + ['--out', str(run), '--resume']) == 0
    assert f'skipping damaged checkpoint {latest.name}' in caplog.text
    assert f'resumed from {_ckpt(run, 20)} at step 20' in caplog.text
    resumed = _losses(run)
    assert sorted(resumed) == list(range(1, 31))
    for step in range(21, 31):  # steps 21-30 were trained again, on the uninterrupted trajectory
        assert resumed[step] == pytest.approx(ref[step], abs=1e-5), step
    read_checkpoint(latest)  # rewritten intact by the resumed run


def test_no_intact_checkpoint_is_one_clear_error(run, capsys):
    for step in (10, 20, 30):
        _flip_tensor_bytes(_ckpt(run, step))
    assert main(FAST + STEPS + ['--out', str(run), '--resume']) == 2
    err = capsys.readouterr().err.strip()
    assert 'Traceback' not in err and len(err.splitlines()) == 1
    assert 'no intact checkpoint' in err and 'step_00000030.pt' in err
    assert main(FAST + STEPS + ['--out', str(run), '--resume', str(_ckpt(run, 20))]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f'{_ckpt(run, 20)}: content differs from its hash' in err


def test_stale_temporaries_are_swept_at_start(run):
    left = [run / 'checkpoints' / '.step_00000040.pt.tmp-999999', run / '.encoder.pt.tmp-999999']
    for path in left:
        path.write_bytes(b'half a checkpoint')
    assert main(FAST + STEPS + ['--out', str(run), '--resume']) == 0
    assert not any(p.exists() for p in left)


def test_init_checkpoint_starts_from_exported_weights(finished_run, tmp_path, capsys):
    exported = finished_run / 'encoder.pt'
    cfg = build_config(parse_args(FAST + ['--set', f'model.init_checkpoint={exported}']))
    weights, _ = load_checkpoint(exported)
    encoder = Trainer(cfg).encoder
    for key, value in weights.state_dict().items():
        assert torch.equal(encoder.state_dict()[key], value), key
    out = tmp_path / 'init'
    assert main(FAST + ['--set', 'epochs=0.5', '--set', f'model.init_checkpoint={exported}',
                        '--out', str(out)]) == 0
    assert (out / 'encoder.pt').is_file()
    # weights of another shape: one line naming the file, exit 2
    assert main(FAST + ['--set', 'epochs=0.5', '--set', f'model.init_checkpoint={exported}',
                        '--set', 'model.overrides={embed_dim: 48}', '--out', str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f'{exported}: weights do not fit pointbert-tiny' in err
