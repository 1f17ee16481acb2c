"""CAD triplets to training: blendclip-embed --cad, the trainer's `cad` source, and a short CLI training run
on the shared meshes (issue #19 item 4)."""

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.sample import TINY_CLIP
from PIL import Image
from train_testutil import cli, cli_env

from blendclip_core.mining.cad import MeshSampler, open_cad
from blendclip_core.mining.embed import EmbeddingsError
from blendclip_core.text_space import create_text_space
from training.embed import main as embed_main

REPO = Path(__file__).resolve().parents[2]
DIM = 32
TEMPLATES = ['point cloud of a {}.']


@pytest.fixture
def cad_meshes(shared_data) -> Path:
    folder = shared_data / 'cad'
    if not any(folder.glob('*.glb')):
        pytest.skip(f'no CAD meshes in {folder} (the shared data set ships Duck.glb, teapot.stl, ...)')
    return folder


def _class_file(path: Path, names: list[str]) -> str:
    """A `file:` text space: one random unit vector per class name (no text model)."""
    emb = np.random.default_rng(0).normal(size=(len(names), DIM)).astype(np.float32)
    np.savez(path, names=np.array(names), embeddings=emb / np.linalg.norm(emb, axis=1, keepdims=True))
    return f'file:{path}'


def _train(config: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / 'cad.yaml'
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(cli('--config', str(path)), cwd=REPO, env=cli_env(threads=2), capture_output=True,
                          text=True, timeout=600)


def test_meshes_embedded_and_trained_through_the_clis(cad_meshes, tmp_path):
    names = MeshSampler(cad_meshes).labels  # 'duck', 'teapot', 'cesium milk truck', ...
    spec = _class_file(tmp_path / 'classes.npz', names)
    emb_root = tmp_path / 'emb'
    source = {'kind': 'cad', 'name': 'meshes', 'root': str(cad_meshes), 'layout': 'mesh', 'embeddings': spec,
              'embeddings_root': str(emb_root), 'points': 256}
    out = tmp_path / 'run'
    config = {'seed': 0, 'device': 'cpu', 'output_dir': str(out),
              'model': {'name': 'pointbert-tiny', 'overrides': {'embed_dim': DIM}},
              'text_space': {'spec': spec, 'templates': TEMPLATES},
              'batch_size': 4, 'epochs': 1, 'steps_per_epoch': 3,
              'data': {'synthetic': [source], 'eval': [{**source, 'name': 'meshes_eval'}], 'max_points': 256,
                       'normalization': 'unit_sphere'},
              'curriculum': {'schedule': 'static', 'fraction': 0.0},
              'eval': {'every_epochs': 1.0, 'topk': [1]}, 'checkpoint': {'every_steps': 0},
              'log': {'every_steps': 1, 'tensorboard': False, 'progress': False}}

    before = _train(config, tmp_path)  # not embedded yet: the error names the command that embeds
    assert before.returncode == 2, before.stderr[-2000:]
    assert f'blendclip-embed --cad {cad_meshes} --layout mesh --space {spec} --out {emb_root} --text label' \
        in before.stderr
    no_spec = _train({**config, 'data': {**config['data'], 'synthetic': [
        {k: v for k, v in source.items() if k != 'embeddings'}]}}, tmp_path)
    assert no_spec.returncode == 2
    assert 'meshes carry no text embeddings: run `blendclip-embed' in no_spec.stderr

    args = ['--cad', str(cad_meshes), '--space', spec, '--out', str(emb_root), '--text', 'label',
            '--no-progress', '--reader-arg', 'points=256']
    assert embed_main(args) == 0
    assert embed_main(['--cad', str(cad_meshes), '--space', spec, '--no-progress']) == 2  # captions: no
    ds = open_cad(cad_meshes, 'mesh', embeddings=spec, embeddings_root=emb_root, points=256)
    classes = create_text_space(spec).embed_classes(names, TEMPLATES).numpy()
    for t in ds:
        np.testing.assert_allclose(t.text_embedding, classes[names.index(t.label)], atol=1e-6)
        assert t.image_embedding is None and t.points.shape == (256, 3)

    result = _train(config, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (out / 'metrics.jsonl').read_text().splitlines()]
    train = [r for r in records if r['kind'] == 'train']
    assert [r['step'] for r in train] == [1, 2, 3]
    assert all(np.isfinite(r['loss']) for r in train)
    assert any(r['kind'] == 'eval' for r in records)
    assert (out / 'encoder.pt').is_file()


def _ulip_folder(root: Path) -> None:
    rng = np.random.default_rng(0)
    for uid in ('chair1', 'lamp1', 'cone1'):
        np.save(root / f'{uid}.npy', rng.normal(size=(64, 3)).astype(np.float32))
    (root / 'captions.json').write_text(json.dumps({'chair1': 'a red chair', 'lamp1': 'a desk lamp'}))
    labels = {'chair1': 'chair', 'lamp1': 'lamp', 'cone1': 'traffic cone'}
    (root / 'labels.json').write_text(json.dumps(labels))
    buf = io.BytesIO()
    Image.new('RGB', (32, 32), (200, 30, 30)).save(buf, format='PNG')
    (root / 'chair1.png').write_bytes(buf.getvalue())  # a rendered view of one object
    np.savez(root / 'embeddings.npz', uids=np.array(['chair1']), text=np.ones((1, 8)))  # another space's


def test_ulip_captions_and_renders_embedded_resumed_and_stale(tmp_path):
    import open_clip

    root = tmp_path / 'ulip'
    root.mkdir()
    _ulip_folder(root)
    cfg = tmp_path / 'tiny-clip-cad.json'
    cfg.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(str(cfg))
    spec = 'openclip:tiny-clip-cad:none'
    command = f'run blendclip-embed --cad {root} --layout ulip --space {spec}'
    with pytest.raises(EmbeddingsError, match=command):
        open_cad(root, 'ulip', embeddings=spec)
    args = ['--cad', str(root), '--layout', 'ulip', '--space', spec, '--device', 'cpu', '--no-progress',
            '--model-config', str(cfg)]
    assert embed_main(args) == 0
    folder = root / 'embeddings' / 'openclip_tiny-clip-cad_none'
    assert json.loads((folder / 'meta.json').read_text())['dim'] == 32

    ds = open_cad(root, 'ulip', embeddings=spec, embed_dim=32)
    assert len(ds) == 3 and ds.labels == ['chair', 'traffic cone', 'lamp']  # embeddings/ is no object
    space = create_text_space(spec)
    for t in ds:
        np.testing.assert_allclose(t.text_embedding, space.embed_texts([t.caption])[0].numpy(), atol=1e-5)
    chair = ds[0]
    np.testing.assert_allclose(chair.image_embedding, space.embed_images([chair.image])[0].numpy(), atol=1e-5)
    assert ds[1].image_embedding is None and ds[1].caption == 'a 3D model of a traffic cone'
    with pytest.raises(EmbeddingsError, match='32-d but 16-d'):
        open_cad(root, 'ulip', embeddings=spec, embed_dim=16)

    before = (folder / 'triplets.npz').read_bytes()
    summary = _run_json(args)
    assert summary['embedded'] == 0 and summary['up_to_date'] == 3
    assert (folder / 'triplets.npz').read_bytes() == before  # nothing recomputed
    (root / 'captions.json').write_text(json.dumps({'chair1': 'a blue chair', 'lamp1': 'a desk lamp'}))
    with pytest.raises(EmbeddingsError, match='stale'):
        open_cad(root, 'ulip', embeddings=spec)[0]
    assert _run_json(args)['embedded'] == 1
    np.save(root / 'new1.npy', np.zeros((8, 3), np.float32))
    with pytest.raises(EmbeddingsError, match=r"1 of 4 objects have no embedding .*\['new1'\]"):
        open_cad(root, 'ulip', embeddings=spec)
    assert _run_json(args)['embedded'] == 1
    assert len(open_cad(root, 'ulip', embeddings=spec)) == 4


def _run_json(args) -> dict:
    """embed_main's printed summary."""
    import contextlib

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert embed_main(args) == 0
    return json.loads(buf.getvalue())


def test_toy_space_embeds_captions_and_cli_errors(tmp_path):
    root = tmp_path / 'ulip'
    root.mkdir()
    _ulip_folder(root)
    assert embed_main(['--cad', str(root), '--layout', 'ulip', '--space', 'toy', '--dim', '16',
                       '--no-progress']) == 0
    t = open_cad(root, 'ulip', embeddings='toy')[0]
    np.testing.assert_allclose(t.text_embedding, create_text_space('toy', dim=16).embed_texts([t.caption])[0],
                               atol=1e-6)
    assert t.image_embedding is None  # the toy space embeds no images
    toy = ['--cad', str(root), '--layout', 'ulip', '--space', 'toy', '--dim', '16', '--no-progress']
    assert embed_main([*toy, '--text', 'label']) == 0  # another text: everything embedded again
    t = open_cad(root, 'ulip', embeddings='toy')[2]
    np.testing.assert_allclose(t.text_embedding, create_text_space('toy', dim=16).embed_texts(['lamp'])[0],
                               atol=1e-6)
    assert embed_main([*toy, '--reader-arg', 'no_such_setting=1']) == 2
    assert embed_main([*toy, '--layout', 'mesh']) == 2  # no meshes there: nothing to sample
    with pytest.raises(SystemExit):
        embed_main(['--shards', str(root), '--out', str(tmp_path)])  # --out is for --cad
