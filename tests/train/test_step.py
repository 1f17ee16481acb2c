"""The train step and loop guards: non-finite steps are skipped, counted and stop the run; the
global-batch BatchNorm equals torch's BatchNorm in one process."""

from pathlib import Path

import numpy as np
import pytest
import torch
from train_testutil import FAST

from blendclip_core.encoder import create_model
from blendclip_core.train.distributed import GlobalBatchNorm1d, convert_batchnorm
from blendclip_core.train.loop import NonFiniteLossError, Trainer
from blendclip_core.train.losses import PointTextImageLoss
from blendclip_core.train.optim import build_optimizer, build_scheduler
from blendclip_core.train.step import TrainModule, batch_to_device, train_step
from training.train import build_config, parse_args


def tiny_setup():
    torch.manual_seed(0)
    enc = create_model('pointbert-tiny', embed_dim=16)
    loss = PointTextImageLoss()
    module = TrainModule(enc, loss)
    opt = build_optimizer(module, 1e-3, 0.1, (0.9, 0.98))
    return module, loss, opt, build_scheduler(opt, 100, 0, 1e-3, 1e-5)


def tensors(text_nan: bool = False):
    rng = np.random.default_rng(0)
    counts = np.array([40, 70, 33, 64])
    pts = torch.from_numpy(rng.normal(size=(counts.sum(), 3)).astype(np.float32))
    text = torch.nn.functional.normalize(torch.randn(4, 16), dim=1)
    if text_nan:
        text[1, 0] = float('nan')
    return pts, counts, text, torch.randn(4, 16), torch.tensor([True, False, True, True])


def test_finite_step_updates_and_nonfinite_step_is_skipped():
    module, loss, opt, sched = tiny_setup()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    res = train_step(module, loss, opt, sched, tensors(), 1.0, torch.device('cpu'))
    assert not bool(res.skipped) and torch.isfinite(res.loss)
    assert set(res.terms) == {'point_text_loss', 'point_image_loss'}
    assert not torch.equal(before['encoder.proj.weight'], module.state_dict()['encoder.proj.weight'])

    after_good = {k: v.clone() for k, v in module.state_dict().items() if 'num_batches' not in k}
    res = train_step(module, loss, opt, sched, tensors(text_nan=True), 1.0, torch.device('cpu'))
    assert bool(res.skipped) and not torch.isfinite(res.loss)
    for k, v in after_good.items():
        assert torch.equal(v, module.state_dict()[k]), k  # no parameter or running statistic moved
    assert sched.last_epoch == 2  # the lr schedule still advanced


def test_run_stops_after_the_nonfinite_limit(tmp_path):
    cfg = build_config(parse_args(FAST + ['--out', str(tmp_path), '--set', 'optim.max_nonfinite_steps=3',
                                          '--set', 'epochs=1', '--set', 'curriculum.warmup=5']))
    trainer = Trainer(cfg)
    for t in trainer.synthetic.sources[0]:  # fault injection: every synthetic target is NaN
        t.text_embedding = np.full_like(t.text_embedding, np.nan)
    with pytest.raises(NonFiniteLossError, match='4 non-finite steps'):
        trainer.fit()
    rows = (tmp_path / 'metrics.jsonl').read_text().splitlines()
    assert '"skipped_steps": 3' in rows[2]


def test_global_batchnorm_equals_batchnorm_in_one_process():
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm1d(8)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    gbn = convert_batchnorm(torch.nn.Sequential(bn), torch.device('cpu'))[0]
    assert isinstance(gbn, GlobalBatchNorm1d) and torch.equal(gbn.weight, bn.weight)
    ref = torch.nn.BatchNorm1d(8)
    ref.load_state_dict(gbn.state_dict())
    x = (3 * torch.randn(50, 8) + 1).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    y, y2 = gbn(x), ref(x2)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    (y2 * g).sum().backward()
    assert torch.allclose(y, y2, atol=1e-5)
    assert torch.allclose(x.grad, x2.grad, atol=1e-4)
    assert torch.allclose(gbn.weight.grad, ref.weight.grad, atol=1e-4)
    assert torch.allclose(gbn.running_mean, ref.running_mean, atol=1e-6)
    assert torch.allclose(gbn.running_var, ref.running_var, atol=1e-5)
    gbn.eval()
    ref.eval()
    assert torch.allclose(gbn(x), ref(x), atol=1e-5)


def test_batch_to_device_keeps_counts_on_host():
    from blendclip_core.train.sources import TrainBatch
    from blendclip_core.types import ObjectBatch

    b = TrainBatch(ObjectBatch.from_list([np.zeros((3, 3)), np.ones((5, 3))]), np.zeros((2, 4), np.float32),
                   np.zeros((2, 4), np.float32), np.array([True, False]), np.array([False, True]), ['a', 'b'])
    pts, counts, *_ = batch_to_device(b, torch.device('cpu'))
    assert pts.shape == (8, 3) and isinstance(counts, np.ndarray) and counts.tolist() == [3, 5]


def test_dataloader_workers_build_the_same_batches(tmp_path):
    from train_testutil import train_records

    from training.train import main

    runs = {}
    for workers in (0, 2):
        out = tmp_path / f'w{workers}'
        assert main(FAST + ['--set', 'epochs=0.5', '--workers', str(workers), '--out', str(out)]) == 0
        runs[workers] = train_records(out)
    assert sorted(runs[0]) == sorted(runs[2]) == [1, 2, 3, 4, 5]
    assert all(runs[0][s]['loss'] == runs[2][s]['loss'] for s in runs[0])


def test_rng_state_round_trip_loads_with_weights_only(tmp_path):
    import random

    from blendclip_core.train.checkpointing import atomic_torch_save, rng_state, set_rng_state

    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    atomic_torch_save({'rng': rng_state()}, tmp_path / 'r.pt')
    want = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(torch.load(tmp_path / 'r.pt', weights_only=True)['rng'])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(want[0], got[0]) and np.array_equal(want[1], got[1]) and want[2] == got[2]
    assert [p.name for p in tmp_path.iterdir()] == ['r.pt']  # no temporary file left behind


@pytest.mark.timeout(240)
def test_global_batchnorm_compiles_whole_under_two_gloo_ranks(tmp_path):
    """The compiled trainer uses GlobalBatchNorm1d on CUDA because torch.compile traces its collective
    into one graph (fullgraph=True fails on any break); compiled values and gradients equal eager's."""
    import json
    import subprocess

    from train_testutil import REPO, cli_env, torchrun

    worker = Path(__file__).with_name('global_bn_compile_worker.py')
    res = subprocess.run(torchrun() + ['--standalone', '--nproc_per_node', '2', str(worker), str(tmp_path)],
                         cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=220)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert res.returncode == 0, f'results written: {written}\n{res.stderr[-3000:]}'
    ranks = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in (0, 1)]
    for r in ranks:
        assert r['graph_breaks'] == 0
        assert r['compiled']['y'] == pytest.approx(r['eager']['y'], rel=1e-5)
        assert np.allclose(r['compiled']['grad'], r['eager']['grad'], atol=1e-5)
    # global statistics: both ranks' running means moved identically (twice: eager, then compiled)
    assert np.allclose(ranks[0]['compiled']['running_mean'], ranks[1]['compiled']['running_mean'], atol=1e-6)
