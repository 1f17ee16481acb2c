"""Checkpoint round trip (safe loading), ULIP-2 key remapping, default path lookup."""

import argparse
import logging
from pathlib import Path

import pytest
import torch
from encoder_testutil import batch_of, random_objects

from blendclip_core.checkpoint import (
    HASH_KEY,
    CheckpointError,
    ModelCard,
    content_digest,
    default_checkpoint_path,
    load_checkpoint,
    read_checkpoint,
    remap_ulip_state_dict,
    save_checkpoint,
)
from blendclip_core.encoder import create_model


def _trained_like(name='pointbert-tiny', **kw):
    torch.manual_seed(0)
    m = create_model(name, **kw)
    with torch.no_grad():  # non-default BN statistics and weights, so a bad load would show
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


def _embed(m, seed=0):
    with torch.no_grad():
        return m.encode(batch_of(random_objects([5, 200, 0], seed=seed)))


def test_round_trip_with_card(tmp_path):
    m = _trained_like(embed_dim=32)
    card = ModelCard(name='t', text_space='minilm:all-MiniLM-L6-v2', metrics={'top1': 0.5},
                     classes_seen=['car'], training_data={'real_ratio': 0.3})
    path = save_checkpoint(tmp_path / 'sub' / 'm.pt', m, card, extra={'epoch': 3})
    assert [p.name for p in path.parent.iterdir()] == ['m.pt']  # no temporary file left
    raw = torch.load(path, weights_only=True)  # safe loading works on our format
    assert raw['extra'] == {'epoch': 3}
    m2, card2 = load_checkpoint(path)
    assert card2.text_space == card.text_space and card2.metrics == {'top1': 0.5}
    assert card2.embed_dim == 32 and card2.architecture['name'] == 'pointbert-tiny'
    assert m2.config == m.config and not m2.training
    assert torch.equal(_embed(m), _embed(m2))
    m3, _ = load_checkpoint(path, max_points=1024)  # non-shape overrides apply
    assert m3.config.max_points == 1024


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / 'none.pt')
    bad = tmp_path / 'bad.pt'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError):
        load_checkpoint(bad)
    other = tmp_path / 'other.pt'
    torch.save({'state_dict': {'foo.weight': torch.zeros(2)}}, other)
    with pytest.raises(ValueError, match='no point encoder weights'):
        load_checkpoint(other)


def _flip(path: Path, tensor: torch.Tensor, n: int = 32) -> None:
    """Flip `n` bytes inside `tensor`'s data in the file: torch.load still reads it (no CRC check)."""
    data = bytearray(path.read_bytes())
    at = data.find(tensor.numpy().tobytes()[:256])
    assert at > 0
    data[at + 64:at + 64 + n] = bytes(b ^ 0xFF for b in data[at + 64:at + 64 + n])
    path.write_bytes(bytes(data))


def test_flipped_or_truncated_checkpoint_is_refused_naming_the_file(tmp_path):
    m = _trained_like(embed_dim=32)
    path = save_checkpoint(tmp_path / 'm.pt', m, ModelCard(name='t'))
    assert read_checkpoint(path)[HASH_KEY] == content_digest(read_checkpoint(path))
    moved = tmp_path / 'elsewhere' / 'moved.pt'  # the hash travels inside the file
    moved.parent.mkdir()
    path.rename(moved)
    _flip(moved, m.state_dict()['proj.weight'])
    torch.load(moved, weights_only=True)  # torch alone reads it as other weights
    with pytest.raises(CheckpointError, match=f'{moved}: content differs from its hash'):
        load_checkpoint(moved)
    good = save_checkpoint(tmp_path / 'good.pt', m, ModelCard(name='t'))
    good.write_bytes(good.read_bytes()[:-4000])
    with pytest.raises(CheckpointError, match=f'{good}: unreadable checkpoint'):
        load_checkpoint(good)


def test_checkpoint_without_hash_loads_with_a_note(tmp_path, caplog):
    m = _trained_like(embed_dim=32)
    path = save_checkpoint(tmp_path / 'm.pt', m, ModelCard(name='t'))
    old = {k: v for k, v in torch.load(path, weights_only=True).items() if k != HASH_KEY}
    torch.save(old, path)  # as written before checkpoints had a hash
    with caplog.at_level(logging.INFO, logger='blendclip_core.checkpoint'):
        m2, _ = load_checkpoint(path)
    assert f'{path} has no content hash' in caplog.text
    assert torch.equal(_embed(m), _embed(m2))


def test_shipped_default_model_carries_its_hash():
    path = Path(__file__).resolve().parents[2] / 'models' / 'default' / 'blendclip-default.pt'
    payload = read_checkpoint(path)
    assert payload[HASH_KEY] == content_digest(payload)


def _to_ulip(sd):
    """Our keys -> the ULIP-2 PointBERT layout (as in salesforce/ULIP ULIP2_PointBERT + DDP)."""
    out = {}
    for k, v in sd.items():
        if k == 'proj.weight':
            out['module.pc_projection'] = v.t().clone()
            continue
        name = k.replace('tokenizer.', 'encoder.')
        if name.startswith('blocks.'):
            name = 'blocks.' + name
        if name.startswith('encoder.') and v.ndim == 2:
            v = v[..., None]  # 1x1 Conv1d weights
        out['module.point_encoder.' + name] = v.clone()
    out['module.logit_scale'] = torch.tensor(2.65)
    out['module.open_clip_model.visual.proj'] = torch.zeros(4, 4)
    out['module.point_encoder.cls_head_finetune.0.weight'] = torch.zeros(3, 3)
    return out


def test_ulip_remap_loads_strict():
    m = _trained_like()
    ulip = _to_ulip(m.state_dict())
    assert 'module.point_encoder.encoder.first_conv.0.weight' in ulip
    assert 'module.point_encoder.blocks.blocks.1.attn.qkv.weight' in ulip
    unknown = []
    remapped = remap_ulip_state_dict(ulip, unknown)
    assert sorted(unknown) == ['module.logit_scale', 'module.open_clip_model.visual.proj',
                               'module.point_encoder.cls_head_finetune.0.weight']
    m2 = create_model('pointbert-tiny').eval()
    m2.load_state_dict(remapped, strict=True)
    assert torch.equal(_embed(m), _embed(m2))
    assert remap_ulip_state_dict(m.state_dict()).keys() == m.state_dict().keys()  # ours pass through


def test_load_ulip_checkpoint_file(tmp_path):
    m = _trained_like(embed_dim=48)
    path = tmp_path / 'ulip2_pointbert.pt'
    torch.save({'epoch': 10, 'state_dict': _to_ulip(m.state_dict()),
                'args': argparse.Namespace(model='ULIP2_PointBERT')}, path)
    m2, card = load_checkpoint(path, config='pointbert-tiny')
    assert m2.embed_dim == 48 and 'ULIP' in card.notes
    assert torch.equal(_embed(m), _embed(m2))


def test_default_checkpoint_path(tmp_path, monkeypatch):
    monkeypatch.setenv('BLENDCLIP_MODEL', str(tmp_path / 'x.pt'))
    assert default_checkpoint_path() == tmp_path / 'x.pt'
    monkeypatch.delenv('BLENDCLIP_MODEL')
    share = tmp_path / 'share' / 'blendclip' / 'models' / 'default'
    share.mkdir(parents=True)
    (share / 'blendclip-default.pt').write_bytes(b'x')
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path))
    found = default_checkpoint_path()
    repo_copy = Path(__file__).resolve().parents[2] / 'models' / 'default' / 'blendclip-default.pt'
    assert found == (repo_copy if repo_copy.is_file() else share / 'blendclip-default.pt')


def test_load_ulip_safetensors(tmp_path):
    safetensors = pytest.importorskip('safetensors.torch')
    m = _trained_like()
    path = tmp_path / 'pointbert.safetensors'
    safetensors.save_file({k: v.contiguous() for k, v in _to_ulip(m.state_dict()).items()}, str(path))
    m2, _ = load_checkpoint(path, config='pointbert-tiny')
    assert torch.equal(_embed(m), _embed(m2))


def _without_recent_fields(path: Path) -> Path:
    """Rewrite a checkpoint as one saved before input_normalization / box_size_input existed."""
    import json

    from blendclip_core.checkpoint import seal

    raw = torch.load(path, weights_only=True)
    card = json.loads(raw['card'])
    del card['input_normalization'], card['input_cap'], card['architecture']['box_size_input']
    raw['card'] = json.dumps(card)
    torch.save(seal({k: v for k, v in raw.items() if k != HASH_KEY}), path)
    return path


def test_card_without_input_normalization_is_refused_unless_named(tmp_path):
    m = _trained_like(embed_dim=32)
    path = _without_recent_fields(save_checkpoint(tmp_path / 'old.pt', m, ModelCard(name='old')))
    with pytest.raises(CheckpointError, match='does not record its input normalisation.*input_normali'):
        load_checkpoint(path)
    m2, card = load_checkpoint(path, input_normalization='metric')
    assert card.input_normalization == 'metric' and card.cap == 'uniform'
    assert not m2.config.box_size_input  # an old architecture: the box size input stays off
    assert torch.equal(_embed(m), _embed(m2))
    _, card = load_checkpoint(path, input_normalization='unit_sphere')
    assert card.input_normalization == 'unit_sphere' and card.cap == 'fps'
    with pytest.raises(CheckpointError, match='unknown input normalisation'):
        load_checkpoint(path, input_normalization='metres')


def test_saved_card_records_input_normalization(tmp_path):
    path = save_checkpoint(tmp_path / 'm.pt', _trained_like(embed_dim=32),
                           ModelCard(name='m', input_normalization='unit_sphere'))
    _, card = load_checkpoint(path)
    assert (card.input_normalization, card.cap, card.max_points) == ('unit_sphere', 'fps', 8192)


def test_ulip_import_gets_the_reference_normalization(tmp_path):
    m = _trained_like(embed_dim=48)
    path = tmp_path / 'ulip2_pointbert.pt'
    torch.save({'state_dict': _to_ulip(m.state_dict())}, path)
    _, card = load_checkpoint(path, config='pointbert-tiny')
    assert (card.input_normalization, card.cap, card.max_points) == ('unit_sphere', 'fps', 8192)


def test_box_size_input_is_off_by_default_and_needs_its_channels():
    assert not create_model('pointbert-tiny').config.box_size_input
    m = create_model('pointbert-tiny', in_channels=6, box_size_input=True)
    assert m.in_channels == 6
    with pytest.raises(ValueError, match='box_size_input needs in_channels >= 6'):
        create_model('pointbert-tiny', box_size_input=True)


def test_shipped_default_records_its_input():
    """The input the ablation chose (docs/model_card.md): unit sphere, FPS cap, the box size as input."""
    model, card = load_checkpoint(default_checkpoint_path())
    assert card.input_normalization == 'unit_sphere' and card.cap == 'fps'
    assert model.config.box_size_input and model.config.in_channels == 6
