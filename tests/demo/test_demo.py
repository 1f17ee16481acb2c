"""`make demo` end to end (real node process, real replay process, real rclpy), and the shipped model."""

import json
import re

import numpy as np
import pytest

from blendclip_core.checkpoint import default_checkpoint_path, load_checkpoint


def test_default_model_is_shipped_with_an_honest_card(repo):
    path = default_checkpoint_path()
    assert path is not None and path.resolve() == (repo / 'models/default/blendclip-default.pt').resolve()
    assert path.stat().st_size < 20 * 2**20  # a few MB
    model, card = load_checkpoint(path)
    assert card.text_space == 'minilm:all-MiniLM-L6-v2' and card.embed_dim == 384 == model.embed_dim
    assert 'barrier' in card.classes_seen and 'kick scooter' in card.classes_seen
    measured = json.loads((repo / 'models/default/metrics.json').read_text())
    assert card.metrics['real_sweep_20pts/top1'] == pytest.approx(measured['real_sweep_20pts']['top1'])
    assert card.metrics['real_sweep_20pts/boxes'] == 7
    doc = (repo / 'docs/model_card.md').read_text()
    for key in ('real_sweep_20pts', 'real_sweep_all', 'real_heldout_10'):  # the doc quotes these numbers
        assert f'{100 * measured[key]["top1"]:.1f}' in doc, key


def test_default_model_serves_its_vocabulary_from_the_shipped_cache():
    from blendclip_core.classifier import ZeroShotClassifier
    from blendclip_core.types import ObjectBatch
    from blendclip_core.vocabulary import DRIVING

    clf = ZeroShotClassifier.from_checkpoint(default_checkpoint_path(), labels=DRIVING, device='cpu')
    pred = clf.classify(ObjectBatch.from_list([np.random.default_rng(0).normal(size=(40, 3))]))
    assert pred.indices.shape[0] == 1 and 0 <= pred.indices[0, 0] < len(DRIVING)
    assert clf.text_space.loads == 0  # no text model was loaded: every prompt came from the cache


@pytest.mark.timeout(240)
def test_demo_prints_what_blendclip_eval_computes(tmp_path, capsys, monkeypatch):
    from blendclip_ros import demo
    from training import evaluate

    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    out = tmp_path / 'demo'
    assert demo.main(['--out', str(out), '--timeout', '180']) == 0
    printed = capsys.readouterr().out
    m = re.search(r'accuracy on boxes with >= 20 points .*\((\d+) boxes\): '
                  r'top-1 ([\d.]+) %, top-5 ([\d.]+) %', printed)
    assert m, printed[-2000:]
    # The same labels through the blendclip-eval CLI, independently.
    assert evaluate.main(['--bag', str(out / 'labelled_bag'), '--out', str(tmp_path / 'eval'),
                          '--min-points', '20']) == 0
    ref = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
    assert int(m.group(1)) == ref['counts']['evaluated'] == 7
    assert float(m.group(2)) == pytest.approx(100 * ref['top1'], abs=0.05)
    assert float(m.group(3)) == pytest.approx(100 * ref['top5'], abs=0.05)
    assert (out / 'eval' / 'bev.png').stat().st_size > 10_000
    # The table lists every labelled box with the node's label and the truth.
    rows = [r for r in printed.splitlines() if re.match(r'\s*\d+\s+[\d.]+\s+\d+\s', r)]
    assert len(rows) == 69
    assert sum(r.rstrip().endswith('*') for r in rows) == 7


@pytest.mark.timeout(120)
def test_demo_explains_a_missing_checkpoint(tmp_path, capsys):
    from blendclip_ros import demo

    code = demo.main(['--out', str(tmp_path / 'demo'), '--checkpoint', str(tmp_path / 'nope.pt'),
                      '--timeout', '90'])
    err = capsys.readouterr().err
    assert code == 1
    assert 'could not start labelling' in err and 'checkpoint not found' in err


def test_demo_never_empties_a_folder_it_did_not_make(tmp_path):
    from blendclip_ros import demo

    (tmp_path / 'mine.txt').write_text('keep')
    assert demo.main(['--out', str(tmp_path)]) == 1
    assert (tmp_path / 'mine.txt').read_text() == 'keep'
