"""Two DDP processes on CPU (gloo, launched by torchrun) equal one process holding the global batch.

What makes them equal (docs/training.md): the global batch of a step is the concatenation of the
per-rank batches, each a function of (seed, step, rank) alone, and the single process composes both
ranks' batches (curriculum.compose_as_ranks=2); features are gathered with gradients and every rank
computes the same global loss, the gather's backward sums the ranks' gradients and DDP averages them,
which leaves the gradient of the global loss; the tokenizer's BatchNorm uses global-batch statistics
(GlobalBatchNorm1d) in both runs; drop-path is off (per-rank RNG streams would differ).
"""

import subprocess

import pytest
import torch
from train_testutil import REPO, cli_env, torchrun, train_records

from blendclip_core.checkpoint import load_checkpoint, read_checkpoint
from blendclip_core.train.toy_data import ToySetConfig, make_toy_triplets
from blendclip_core.types import ObjectBatch
from training.train import main

pytestmark = pytest.mark.timeout(240)

BN_CANCELLED = {'tokenizer.first_conv.0.bias', 'tokenizer.first_conv.3.bias', 'tokenizer.second_conv.0.bias'}


def test_two_gloo_ranks_equal_one_process_with_the_global_batch(tmp_path, fast_args):
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip('torch.distributed with gloo is not available')
    args = fast_args + ['--set', 'batch_size=4', '--set', 'epochs=1', '--set', 'steps_per_epoch=6',
                        '--set', 'curriculum.warmup=0', '--set', 'curriculum.ramp=0',
                        '--set', 'checkpoint.every_steps=0', '--device', 'cpu']
    ddp, single = tmp_path / 'ddp', tmp_path / 'single'
    res = subprocess.run(torchrun() + ['--standalone', '--nproc_per_node', '2', '-m', 'training.train', *args,
                                       '--out', str(ddp)], cwd=REPO, env=cli_env(), capture_output=True,
                         text=True, timeout=200)
    assert res.returncode == 0, res.stderr[-3000:]
    assert main([*args, '--set', 'curriculum.compose_as_ranks=2', '--out', str(single)]) == 0

    a, b = train_records(ddp), train_records(single)
    assert sorted(a) == sorted(b) == list(range(1, 7))
    assert all(r['real_fraction'] == pytest.approx(0.3) for r in a.values())  # both domains in every batch
    for step in a:
        assert a[step]['loss'] == pytest.approx(b[step]['loss'], abs=1e-4), step
        assert a[step]['grad_norm'] == pytest.approx(b[step]['grad_norm'], rel=1e-3), step
    # Weights: equal, except biases that a BatchNorm right after cancels (their true gradient is 0, so
    # Adam's g / sqrt(v) amplifies rounding noise into lr-sized steps) and the running means they shift.
    wa = read_checkpoint(ddp / 'encoder.pt')['state_dict']
    wb = read_checkpoint(single / 'encoder.pt')['state_dict']
    assert wa.keys() == wb.keys()
    for k in wa:
        if k not in BN_CANCELLED and not k.endswith('running_mean'):
            assert torch.allclose(wa[k].float(), wb[k].float(), atol=2e-4), k
    # Embeddings agree with batch statistics (train mode), where those biases cancel exactly. In eval
    # mode they would not: the running means hold only part of each bias's drift.
    objs = make_toy_triplets(ToySetConfig(domain='real', seed=5, per_class=2, dim=32))
    batch = ObjectBatch.from_list([t.points for t in objs])
    with torch.no_grad():
        ea = load_checkpoint(ddp / 'encoder.pt')[0].train().encode(batch)
        eb = load_checkpoint(single / 'encoder.pt')[0].train().encode(batch)
    assert torch.allclose(ea, eb, atol=1e-4, rtol=1e-4)
    # ...and it is not trivially so: one process with one rank's batch only trains differently.
    one = tmp_path / 'one'
    assert main([*args, '--out', str(one)]) == 0
    assert train_records(one)[6]['loss'] != pytest.approx(a[6]['loss'], abs=1e-3)

