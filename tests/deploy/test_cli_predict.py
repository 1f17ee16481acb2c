"""blendclip-export end to end (ONNX: seconds), and blendclip_core.predict on every kind of model."""

import numpy as np
import pytest

import blendclip_core
from blendclip_core.export import load_exported
from blendclip_core.predict import objects_batch
from training.export import main


def test_cli_writes_a_loadable_artefact(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / 'cli'
    assert main(['--checkpoint', str(tiny_checkpoint), '--format', 'onnx', '--out', str(out),
                 '--vocabulary', 'car', 'truck', 'pedestrian']) == 0
    assert load_exported(out).labels == ('car', 'truck', 'pedestrian')
    args = ['--checkpoint', str(tiny_checkpoint), '--format', 'onnx', '--out', str(out)]
    assert main([*args, '--opset', '17']) == 2
    assert main(['--checkpoint', str(tmp_path / 'none.pt'), '--format', 'aoti', '--out', str(out)]) == 2
    assert 'none.pt' in capsys.readouterr().err


def _objects(seed):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, 3)).astype(np.float32) for n in (1, 7, 300, 8192, 9000)]


def test_predict_checkpoint_and_artefacts_agree(tiny_checkpoint, exported):
    objs = _objects(0)
    ref = blendclip_core.predict(objs, checkpoint=tiny_checkpoint, device='cpu')
    assert len(ref.labels) == 5 and ref.scores.shape == (5,) and all(ref.labels)
    for fmt in ('aoti', 'onnx'):
        out = blendclip_core.predict(objs, checkpoint=exported[fmt])
        assert out.labels == ref.labels
        np.testing.assert_allclose(out.scores, ref.scores, atol=1e-3)


def test_predict_padded_batch_and_vocabulary(tiny_checkpoint):
    objs = _objects(1)[:3]
    padded = np.zeros((3, 300, 3), np.float32)
    for i, o in enumerate(objs):
        padded[i, :len(o)] = o
    a = blendclip_core.predict(objs, checkpoint=tiny_checkpoint, device='cpu')
    b = blendclip_core.predict(padded, lengths=[1, 7, 300], checkpoint=tiny_checkpoint, device='cpu')
    assert a.labels == b.labels
    sub = blendclip_core.predict(objs, ['car', 'bus'], checkpoint=tiny_checkpoint, device='cpu')
    assert set(sub.labels) <= {'car', 'bus'}
    again = blendclip_core.predict(objs, checkpoint=tiny_checkpoint, device='cpu')  # default vocabulary back
    assert again.labels == a.labels


def test_predict_input_errors():
    with pytest.raises(ValueError, match=r'objects \[1\] have no points'):
        objects_batch([np.ones((3, 3)), np.zeros((0, 3))])
    with pytest.raises(ValueError, match=r'\(N, 3\) xyz'):
        objects_batch([np.ones((3, 4))])
    with pytest.raises(ValueError, match='lengths'):
        objects_batch(np.ones((2, 5, 3)), lengths=[1, 6])
    batch = objects_batch([np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])])
    np.testing.assert_allclose(batch.points, [[-1, 0, 1], [1, 0, -1]])  # centred on the box midpoint


def test_predict_with_the_shipped_default_takes_box_sizes():
    """The shipped default takes the box size: given boxes reach it, and without them each object's own
    extent does (the same as passing that extent)."""
    from blendclip_core.normalization import points_box_size

    rng = np.random.default_rng(3)
    objs = [rng.uniform(-0.5, 0.5, (60, 3)) * [4.4, 1.8, 1.5],
            rng.uniform(-0.5, 0.5, (30, 3)) * [0.5, 0.5, 1.7]]
    implicit = blendclip_core.predict(objs, device='cpu')
    own = points_box_size(objects_batch(objs))
    explicit = blendclip_core.predict(objs, device='cpu', box_sizes=own)
    assert implicit.labels == explicit.labels
    np.testing.assert_allclose(implicit.scores, explicit.scores, atol=1e-6)
    swapped = blendclip_core.predict(objs, device='cpu', box_sizes=own[::-1])
    assert not np.allclose(swapped.scores, implicit.scores, atol=1e-3)
