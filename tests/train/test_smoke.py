"""CPU smoke run of blendclip-train on generated shapes: the loss falls, zero-shot accuracy on the
generated classes rises far above chance, and every output a user looks at is written."""

import json

import numpy as np
import pytest
import torch
from train_testutil import SMOKE, train_records

from blendclip_core.checkpoint import load_checkpoint
from blendclip_core.text_space.toy import class_embeddings
from blendclip_core.train.toy_data import SHAPES, ToySetConfig, make_toy_triplets
from blendclip_core.types import ObjectBatch
from training.train import main

pytestmark = pytest.mark.timeout(300)


def test_smoke_run_learns_the_generated_classes(tmp_path):
    out = tmp_path / 'smoke'
    assert main(['--config', str(SMOKE), '--data', 'synthetic', '--out', str(out)]) == 0

    recs = train_records(out)
    steps = sorted(recs)
    assert steps[-1] == 150
    first, last = recs[steps[0]]['loss'], recs[steps[-1]]['loss']
    assert last < 0.75 * first, (first, last)  # the InfoNCE terms fall from about 2 x ln(16)
    assert recs[steps[0]]['real_fraction'] == 0.0 and recs[steps[-1]]['real_fraction'] == pytest.approx(0.3)

    chance = 1 / len(SHAPES)
    summary = json.loads((out / 'summary.json').read_text())
    final = summary['final_eval']
    assert final['real_heldout/top1'] > 3 * chance, final  # sparse one-sided views, never trained on
    assert final['synthetic_heldout/top1'] > 3 * chance, final
    assert final['real_heldout/top5'] >= final['real_heldout/top1']

    for name in ('training_curves.png', 'eval/real_heldout_confusion.png', 'eval/synthetic_heldout.md',
                 'eval/real_heldout.json', 'config.yaml', 'checkpoints/best.pt'):
        assert (out / name).stat().st_size > 0, name
    assert list((out / 'tensorboard').glob('events.out.tfevents.*'))
    assert len(list((out / 'checkpoints').glob('step_*.pt'))) == 2  # keep_last: 2

    # The exported encoder is a normal checkpoint with a model card, and it classifies like the trainer.
    model, card = load_checkpoint(out / 'encoder.pt')
    assert card.text_space == 'toy' and card.embed_dim == 32 and card.metrics == final
    assert set(card.classes_seen) == set(SHAPES)
    held = make_toy_triplets(ToySetConfig(domain='real', seed=2, per_class=32, dim=32, points=(16, 64),
                                          noise=0.02))
    with torch.no_grad():
        emb = model.encode(ObjectBatch.from_list([t.points for t in held]))
    scores = torch.nn.functional.normalize(emb, dim=1).numpy() @ class_embeddings(list(SHAPES), 32).T
    names = sorted(SHAPES)
    order = [list(SHAPES).index(n) for n in names]
    pred = np.asarray(names)[scores[:, order].argmax(1)]
    acc = float(np.mean(pred == np.asarray([t.label for t in held])))
    assert acc == pytest.approx(final['real_heldout/top1'], abs=0.02)
