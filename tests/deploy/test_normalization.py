"""The card's input normalisation travels with the export: the manifest's card records it, load_exported
and predict apply it through the classifier's embed as the checkpoint's classifier does, and an artefact
whose card lacks it is refused."""

import json

import numpy as np
import pytest
import torch

import blendclip_core
from blendclip_core.atomic import dumps
from blendclip_core.checkpoint import HASH_KEY, ModelCard, save_checkpoint
from blendclip_core.classifier import ZeroShotClassifier
from blendclip_core.encoder import create_model
from blendclip_core.export import ArtefactError, export_artefact, load_exported, read_manifest
from blendclip_core.export.artefact import MANIFEST, card_digest, manifest_digest
from blendclip_core.types import ObjectBatch


@pytest.fixture(scope='module')
def unit_sphere_checkpoint(tiny_checkpoint, tmp_path_factory):
    """The tiny deploy model with a card that says its encoder takes unit-sphere inputs."""
    torch.manual_seed(1)
    model = create_model('pointbert-tiny').eval()
    eager_card = ZeroShotClassifier.from_checkpoint(tiny_checkpoint, device='cpu')
    card = ModelCard(name='deploy-tiny-sphere', text_space=eager_card.text_space_spec, logit_scale=30.0,
                     prompt_templates=['point cloud of a {}.'], inference_precision='fp32',
                     input_normalization='unit_sphere')
    return save_checkpoint(tmp_path_factory.mktemp('sphere') / 'sphere.pt', model, card)


@pytest.fixture(scope='module')
def sphere_onnx(unit_sphere_checkpoint, tmp_path_factory):
    return export_artefact(unit_sphere_checkpoint, 'onnx', tmp_path_factory.mktemp('sphere_onnx') / 'onnx')


def _objects(seed: int = 0) -> list[np.ndarray]:
    """Objects metres across (unit-sphere scaling changes them a lot), 1 to 3,000 points."""
    rng = np.random.default_rng(seed)
    return [(rng.uniform(-0.5, 0.5, (n, 3)) * rng.uniform(1.0, 8.0, 3)).astype(np.float32)
            for n in (1, 5, 40, 300, 3000)] * 4


def test_exported_unit_sphere_model_labels_as_the_eager_one(unit_sphere_checkpoint, sphere_onnx):
    eager = ZeroShotClassifier.from_checkpoint(unit_sphere_checkpoint, device='cpu')
    exported = load_exported(sphere_onnx)
    assert read_manifest(sphere_onnx).card.input_normalization == 'unit_sphere'
    assert (exported.input_normalization, exported.input_cap) == ('unit_sphere', eager.input_cap)
    batch = ObjectBatch.from_list(_objects())
    a, b = eager.embed(batch), exported.embed(batch)
    assert (a * b).sum(1).min().item() >= 0.999
    top1 = [c.classify(batch, top_k=1).indices for c in (eager, exported)]
    np.testing.assert_array_equal(*top1)
    # the same network fed metric inputs embeds otherwise: the test would see a missing normalisation
    raw = exported.encoder.encode(batch)
    raw = torch.nn.functional.normalize(raw.float(), dim=-1)
    assert (a * raw).sum(1).min().item() < 0.99


def test_predict_applies_the_artefacts_normalisation(unit_sphere_checkpoint, sphere_onnx):
    objs = _objects(1)
    ref = blendclip_core.predict(objs, checkpoint=unit_sphere_checkpoint, device='cpu')
    out = blendclip_core.predict(objs, checkpoint=sphere_onnx)
    assert out.labels == ref.labels
    np.testing.assert_allclose(out.scores, ref.scores, atol=1e-3)


def test_artefact_whose_card_lacks_the_normalisation_is_refused(sphere_onnx, tmp_path):
    import shutil

    copy = shutil.copytree(sphere_onnx, tmp_path / 'old')
    path = copy / MANIFEST
    manifest = json.loads(path.read_text())
    del manifest['card']['input_normalization']  # as an export from before the field, sealed anew
    manifest['card_sha256'] = card_digest(ModelCard.from_dict(manifest['card']))
    manifest[HASH_KEY] = manifest_digest(manifest)
    path.write_bytes(dumps(manifest))
    with pytest.raises(ArtefactError, match='input normalisation'):
        load_exported(copy)


def test_cli_exports_a_card_without_the_field_when_told_its_normalisation(tiny_checkpoint, tmp_path, capsys):
    from blendclip_core.checkpoint import read_checkpoint, seal
    from training.export import main

    payload = read_checkpoint(tiny_checkpoint)
    card = json.loads(payload['card'])
    del card['input_normalization']  # a checkpoint from before cards recorded it
    old = tmp_path / 'old.pt'
    torch.save(seal({**payload, 'card': json.dumps(card)}), old)
    args = ['--checkpoint', str(old), '--format', 'onnx', '--out', str(tmp_path / 'out')]
    assert main(args) == 2
    assert 'does not record its input normalisation' in capsys.readouterr().err
    assert main([*args, '--input-normalization', 'unit_sphere']) == 0
    assert load_exported(tmp_path / 'out').input_normalization == 'unit_sphere'


def test_exported_box_size_model_labels_frames_as_the_eager_one(tiny_checkpoint, tmp_path):
    """A model that takes the box size (as the shipped default) exports with its 6 channels; through
    label_frame on the real sweep the artefact gets the same boxes and gives the same labels."""
    from helpers.sample import load_sweep

    from blendclip_core.pipeline import PipelineConfig, label_frame

    torch.manual_seed(2)
    model = create_model('pointbert-tiny', in_channels=6, box_size_input=True).eval()
    text_space = ZeroShotClassifier.from_checkpoint(tiny_checkpoint, device='cpu').text_space_spec
    card = ModelCard(name='deploy-tiny-box', text_space=text_space, logit_scale=30.0,
                     prompt_templates=['point cloud of a {}.'], inference_precision='fp32',
                     input_normalization='unit_sphere')
    ckpt = save_checkpoint(tmp_path / 'box.pt', model, card)
    exported = load_exported(export_artefact(ckpt, 'onnx', tmp_path / 'onnx'))
    assert exported.encoder.config.box_size_input and exported.encoder.config.in_channels == 6
    points, boxes, _ = load_sweep()
    config = PipelineConfig(min_points=1, top_k=3)
    a = label_frame(points[:, :3], boxes, ZeroShotClassifier.from_checkpoint(ckpt, device='cpu'), config)
    b = label_frame(points[:, :3], boxes, exported, config)
    ok = a.num_points > 0
    np.testing.assert_array_equal(a.indices[ok, 0], b.indices[ok, 0])
    np.testing.assert_allclose(a.scores[ok], b.scores[ok], atol=1e-3)
