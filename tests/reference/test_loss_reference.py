"""Our PointTextImageLoss is the reference's ULIPWithImageLoss (models/losses.py) on one process.

The reference takes ULIP2_WITH_OPENCLIP's output dict: raw point embeddings, text embeddings already
normalised (mean of normalised captions, renormalised), raw image embeddings and the logit scale
already exponentiated; it normalises all three itself and gathers across ranks (rank 0 of 1 here).
Ours takes raw (B, D) tensors and holds log(scale) as its parameter.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from blendclip_core.train.losses import PointTextImageLoss, total_loss

B, D = 12, 32
SCALE = 1 / 0.07  # both initialise the logit scale to 1/0.07


def _embeddings(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    point, text, image = (torch.randn(B, D, generator=g) for _ in range(3))
    text = text + 0.8 * point  # matched pairs more alike than others, as after some training
    image = image + 0.5 * point
    return point, F.normalize(text, dim=-1), image


def _reference_loss(reference, point: torch.Tensor, text: torch.Tensor, image: torch.Tensor,
                    log_scale: torch.Tensor) -> torch.Tensor:
    outputs = {'pc_embed': point, 'text_embed': text, 'image_embed': image, 'logit_scale': log_scale.exp()}
    out = reference.losses.ULIPWithImageLoss()(outputs)
    assert out['loss'] is out['ulip_loss']
    return out['loss']


def test_loss_and_gradients_equal_the_reference(reference):
    point, text, image = _embeddings(0)
    p_ref = point.clone().requires_grad_()
    log_ref = torch.tensor(math.log(SCALE), requires_grad=True)
    expected = _reference_loss(reference, p_ref, text, image, log_ref)
    expected.backward()

    ours = PointTextImageLoss(init_logit_scale=SCALE)
    p_ours = point.clone().requires_grad_()
    terms = ours(p_ours, text, image)
    assert sorted(terms) == ['point_image_loss', 'point_text_loss']
    got = total_loss(terms)
    got.backward()
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(p_ours.grad, p_ref.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours.logit_scale.log_scale.grad, log_ref.grad, rtol=1e-5, atol=1e-7)
    assert 0.1 < float(expected.detach()) < 2 * math.log(B)  # neither saturated nor at chance


def test_loss_equals_the_reference_at_other_scales(reference):
    point, text, image = _embeddings(1)
    for scale in (1.0, 7.5, 100.0):  # ours clamps the scale to [1, 100]; inside it both agree
        expected = _reference_loss(reference, point, text, image, torch.tensor(math.log(scale)))
        got = total_loss(PointTextImageLoss(init_logit_scale=scale)(point, text, image))
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


def test_difference_sample_without_image_is_masked_not_dropped(reference):
    """Named difference: the reference never sees a sample without an image: its collate drops it
    from the batch (customized_collate_fn: `example[3] is not None`), text term included. Ours keeps
    it: its text term counts in full, its image row and column are masked from the image term."""
    point, text, image = _embeddings(2)
    valid = torch.ones(B, dtype=torch.bool)
    valid[3] = False
    loss = PointTextImageLoss(init_logit_scale=SCALE)
    ours = loss(point, text, image, valid)
    full_text = loss(point, text)['point_text_loss']
    torch.testing.assert_close(ours['point_text_loss'], full_text)  # sample 3 still in the text term
    keep = valid.nonzero().squeeze(1)
    dropped = _reference_loss(reference, point[keep], text[keep], image[keep], torch.tensor(math.log(SCALE)))
    torch.testing.assert_close(total_loss(loss(point[keep], text[keep], image[keep])), dropped)
    assert abs(float(total_loss(ours).detach()) - float(dropped)) > 1e-3  # the batches train differently
