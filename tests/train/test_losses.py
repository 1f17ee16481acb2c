"""Symmetric InfoNCE against a hand-written reference, image masking, logit scale."""

import math

import pytest
import torch
import torch.nn.functional as F

from blendclip_core.train.losses import LogitScale, PointTextImageLoss, symmetric_info_nce, total_loss


def reference_info_nce(a, b, scale, valid=None):
    """Loops over rows: -log softmax of the positive, a->b over present b, b->a for present b over all a."""
    n = a.shape[0]
    valid = [True] * n if valid is None else valid.tolist()
    a2b, b2a = [], []
    for i in range(n):
        if not valid[i]:
            continue
        cols = [j for j in range(n) if valid[j]]
        logits = torch.stack([scale * a[i] @ b[j] for j in cols])
        a2b.append(-(logits[cols.index(i)] - torch.logsumexp(logits, 0)))
        logits_b = torch.stack([scale * b[i] @ a[j] for j in range(n)])
        b2a.append(-(logits_b[i] - torch.logsumexp(logits_b, 0)))
    if not a2b:
        return torch.tensor(0.0, dtype=a.dtype)
    return 0.5 * (torch.stack(a2b).mean() + torch.stack(b2a).mean())


def unit(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)


def test_symmetric_info_nce_matches_reference():
    a, b = unit(7, 16, 0), unit(7, 16, 1)
    got = symmetric_info_nce(a, b, torch.tensor(14.0, dtype=torch.float64))
    assert got.item() == pytest.approx(reference_info_nce(a, b, 14.0).item(), rel=1e-10)


def test_masked_image_term_matches_reference():
    a, b = unit(9, 16, 2), unit(9, 16, 3)
    valid = torch.tensor([1, 0, 1, 1, 0, 1, 1, 1, 0], dtype=torch.bool)
    got = symmetric_info_nce(a, b, torch.tensor(10.0, dtype=torch.float64), valid)
    assert got.item() == pytest.approx(reference_info_nce(a, b, 10.0, valid).item(), rel=1e-10)


def test_missing_image_changes_nothing_that_needs_it():
    """A missing image's (garbage) embedding must not affect the loss or the gradients."""
    torch.manual_seed(0)
    loss = PointTextImageLoss().double()
    p = torch.randn(6, 8, dtype=torch.float64, requires_grad=True)
    text, image = torch.randn(6, 8, dtype=torch.float64), torch.randn(6, 8, dtype=torch.float64)
    valid = torch.tensor([1, 1, 0, 1, 0, 1], dtype=torch.bool)
    out1 = loss(p, text, image, valid)
    g1 = torch.autograd.grad(total_loss(out1), p)[0]
    image2 = image.clone()
    image2[~valid] = 1e6 * torch.randn(2, 8, dtype=torch.float64)
    out2 = loss(p, text, image2, valid)
    g2 = torch.autograd.grad(total_loss(out2), p)[0]
    assert out1['point_image_loss'].item() == pytest.approx(out2['point_image_loss'].item(), rel=1e-12)
    assert torch.allclose(g1, g2)
    # ...while a present image does matter
    image3 = image.clone()
    image3[0] = torch.randn(8, dtype=torch.float64)
    changed = loss(p, text, image3, valid)['point_image_loss'].item()
    assert changed != pytest.approx(out1['point_image_loss'].item())


def test_no_image_at_all_gives_zero_term_with_graph():
    loss = PointTextImageLoss()
    p = torch.randn(4, 8, requires_grad=True)
    out = loss(p, torch.randn(4, 8), torch.zeros(4, 8), torch.zeros(4, dtype=torch.bool))
    assert out['point_image_loss'].item() == 0.0 and torch.isfinite(out['point_image_loss'])
    total_loss(out).backward()
    assert torch.isfinite(p.grad).all()


def test_terms_are_named_and_weighted():
    loss = PointTextImageLoss(text_weight=1.0, image_weight=0.5)
    p, t, i = torch.randn(5, 8), torch.randn(5, 8), torch.randn(5, 8)
    out = loss(p, t, i)
    assert set(out) == {'point_text_loss', 'point_image_loss'}
    scale = loss.logit_scale()
    pn, tn, inn = (F.normalize(x, dim=1) for x in (p, t, i))
    assert out['point_image_loss'].item() == pytest.approx(
        0.5 * reference_info_nce(pn, inn, scale.item()).item(), rel=1e-5)
    ref_text = reference_info_nce(pn, tn, scale.item()).item()
    assert out['point_text_loss'].item() == pytest.approx(ref_text, rel=1e-5)
    assert total_loss({**out, 'accuracy': torch.tensor(9.0)}).item() == pytest.approx(
        (out['point_text_loss'] + out['point_image_loss']).item())


def test_logit_scale_init_and_clamp():
    s = LogitScale()
    assert s().item() == pytest.approx(1 / 0.07, rel=1e-6)
    with torch.no_grad():
        s.log_scale.fill_(10.0)
    s.clamp_()
    assert s().item() == pytest.approx(100.0, rel=1e-6)
    with pytest.raises(ValueError):
        LogitScale(init=200.0)


def test_perfect_alignment_has_low_loss():
    x = unit(16, 32, 4).float()
    aligned = symmetric_info_nce(x, x, torch.tensor(100.0))
    shuffled = symmetric_info_nce(x, x[torch.randperm(16)], torch.tensor(100.0))
    assert aligned.item() < 1e-3 < shuffled.item()
    assert math.isclose(symmetric_info_nce(x, x, torch.tensor(0.0)).item(), math.log(16), rel_tol=1e-5)
