"""Parameter groups (no decay on norms, biases, tokens, logit scale) and the lr schedule."""

import pytest
import torch

from blendclip_core.encoder import create_model
from blendclip_core.train.losses import PointTextImageLoss
from blendclip_core.train.optim import build_optimizer, build_scheduler, cosine_factor, param_groups
from blendclip_core.train.step import TrainModule


def test_param_groups_of_the_real_encoder():
    module = TrainModule(create_model('pointbert-tiny'), PointTextImageLoss())
    decay, no_decay = param_groups(module, 0.1)
    assert decay['weight_decay'] == 0.1 and no_decay['weight_decay'] == 0.0
    nd = set(no_decay['names'])
    assert {'encoder.cls_token', 'encoder.cls_pos', 'loss.logit_scale.log_scale'} <= nd
    assert all(n.endswith('.bias') or 'norm' in n or 'first_conv.1' in n or 'second_conv.1' in n or n in (
        'encoder.cls_token', 'encoder.cls_pos', 'loss.logit_scale.log_scale') for n in nd)
    assert all(p.ndim >= 2 for p in decay['params'])
    assert 'encoder.blocks.0.attn.qkv.weight' in decay['names']
    assert 'encoder.pos_embed.0.weight' in decay['names']  # the positional MLP's weights are weights
    total = sum(p.numel() for p in module.parameters())
    assert sum(p.numel() for g in (decay, no_decay) for p in g['params']) == total


def test_adamw_settings():
    module = TrainModule(create_model('pointbert-tiny'), PointTextImageLoss())
    opt = build_optimizer(module, 1e-3, 0.1, (0.9, 0.98))
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults['betas'] == (0.9, 0.98)
    assert [g['weight_decay'] for g in opt.param_groups] == [0.1, 0.0]


def test_cosine_with_warmup():
    f = [cosine_factor(s, 100, 10, 1e-3, 1e-5) for s in range(101)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[55] == pytest.approx((1 + 0.01) / 2, rel=1e-6)
    assert f[100] == pytest.approx(0.01) and all(a >= b for a, b in zip(f[10:], f[11:]))
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([p], lr=1e-3)
    sched = build_scheduler(opt, 100, 10, 1e-3, 1e-5)
    for _ in range(100):
        opt.step()
        sched.step()
    assert opt.param_groups[0]['lr'] == pytest.approx(1e-5)
