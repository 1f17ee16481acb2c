"""Damaged or mismatched artefacts are refused at load with an error naming the file."""

import json
import shutil

import numpy as np
import pytest

from blendclip_core.atomic import dumps, sha256_file
from blendclip_core.checkpoint import HASH_KEY
from blendclip_core.export import ArtefactError, load_exported
from blendclip_core.export.artefact import MANIFEST, VOCABULARY_FILE, manifest_digest

FORMATS = ('aoti', 'onnx')


@pytest.fixture(params=FORMATS)
def copy(request, exported, tmp_path):
    dst = tmp_path / request.param
    shutil.copytree(exported[request.param], dst)
    return dst


def _manifest(root):
    return json.loads((root / MANIFEST).read_text())


def _reseal(root, manifest):
    """Write a manifest as a careless tool would: consistent hashes over mismatched parts."""
    for name in manifest['files']:
        path = root / name
        manifest['files'][name] = {'sha256': sha256_file(path), 'bytes': path.stat().st_size}
    manifest[HASH_KEY] = manifest_digest(manifest)
    (root / MANIFEST).write_bytes(dumps(manifest))


def test_intact_copy_loads(copy):
    assert len(load_exported(copy).labels) == 16


@pytest.mark.parametrize('victim', ['model', VOCABULARY_FILE])
def test_truncated_file(copy, victim):
    name = _manifest(copy)['model']['file'] if victim == 'model' else victim
    data = (copy / name).read_bytes()
    (copy / name).write_bytes(data[:len(data) // 2])
    with pytest.raises(ArtefactError, match=rf'{name}: content differs.*truncated'):
        load_exported(copy)


def test_flipped_byte_same_size(copy):
    name = _manifest(copy)['model']['file']
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / name).write_bytes(bytes(data))
    with pytest.raises(ArtefactError, match=name):
        load_exported(copy)


def test_edited_manifest(copy):
    m = _manifest(copy)
    m['card']['logit_scale'] = 1.0
    (copy / MANIFEST).write_bytes(dumps(m))
    with pytest.raises(ArtefactError, match=r'manifest.json: content differs from its hash'):
        load_exported(copy)


def test_wrong_card(copy):
    """Another model's card (other name and width) in a manifest whose own hashes are consistent."""
    from blendclip_core.checkpoint import ModelCard
    from blendclip_core.export.artefact import card_digest

    m = _manifest(copy)
    card = ModelCard.from_dict({**m['card'], 'name': 'another-model'})
    m['card'], m['card_sha256'] = json.loads(card.to_json()), card_digest(card)
    _reseal(copy, m)
    name = m['model']['file']
    with pytest.raises(ArtefactError, match=rf'{name}: built from another model card.*wrong card'):
        load_exported(copy)


def test_card_without_its_digest(copy):
    m = _manifest(copy)
    m['card']['name'] = 'another-model'
    _reseal(copy, m)
    with pytest.raises(ArtefactError, match='model card differs'):
        load_exported(copy)


def _rewrite_vocabulary(root, rows, width):
    with np.load(root / VOCABULARY_FILE) as z:
        arrays = {k: z[k] for k in z.files}
    emb = np.random.default_rng(0).normal(size=(rows, width)).astype(np.float32)
    arrays['names'], arrays['embeddings'] = arrays['names'][:rows], emb
    np.savez(root / VOCABULARY_FILE, **arrays)


def test_wrong_vocabulary_size(copy):
    _rewrite_vocabulary(copy, 10, 64)
    _reseal(copy, _manifest(copy))
    with pytest.raises(ArtefactError, match=rf'{VOCABULARY_FILE}: 10 class embeddings.*lists 16 labels'):
        load_exported(copy)


def test_wrong_vocabulary_width(copy):
    _rewrite_vocabulary(copy, 16, 384)
    _reseal(copy, _manifest(copy))
    with pytest.raises(ArtefactError, match=rf'{VOCABULARY_FILE}: class embeddings of width 384.*64'):
        load_exported(copy)


def test_missing_manifest_and_file(copy):
    (copy / VOCABULARY_FILE).unlink()
    with pytest.raises(ArtefactError, match=rf'{VOCABULARY_FILE}: missing'):
        load_exported(copy)
    (copy / MANIFEST).unlink()
    with pytest.raises(ArtefactError, match='manifest.json: not found'):
        load_exported(copy)
