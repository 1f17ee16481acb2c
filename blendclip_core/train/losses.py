"""The BlendCLIP objective: symmetric InfoNCE of point features against frozen CLIP text and image features.

Each term is a small module returning a dict of named `*_loss` tensors; the trainer sums every value
whose key ends in `_loss` (open_clip's convention). Features are gathered across ranks, the point
features with gradients (see distributed.gather_with_grad), so every rank computes the global loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from blendclip_core.train import distributed


class LogitScale(nn.Module):
    """Learnable temperature, stored as log(scale) like CLIP; clamp() after each optimizer step."""

    def __init__(self, init: float = 1 / 0.07, max_value: float = 100.0) -> None:
        super().__init__()
        if not 0 < init <= max_value:
            raise ValueError(f'logit scale init {init} must be in (0, {max_value}]')
        self.log_scale = nn.Parameter(torch.tensor(math.log(init)))
        self.max_log = math.log(max_value)

    def forward(self) -> torch.Tensor:
        return self.log_scale.exp()

    @torch.no_grad()
    def clamp_(self) -> None:
        self.log_scale.clamp_(0.0, self.max_log)


def info_nce(logits: torch.Tensor, row_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy of each row against its diagonal entry, over rows where row_mask is True.

    Columns to exclude must already be -inf in logits.
    """
    target = torch.arange(logits.shape[0], device=logits.device)
    losses = F.cross_entropy(logits, target, reduction='none')
    if row_mask is None:
        return losses.mean()
    n = row_mask.sum()
    return torch.where(row_mask, losses, torch.zeros_like(losses)).sum() / n.clamp(min=1)


def symmetric_info_nce(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor,
                       b_valid: torch.Tensor | None = None) -> torch.Tensor:
    """(CE(a->b) + CE(b->a)) / 2 on L2-normalised a, b (N, D).

    b_valid (N,) bool marks rows of b that exist (a missing image): a->b rows and columns of missing b
    are dropped (no positive to find, and a missing b is no negative); b->a has rows only for present b,
    over every a (a point without an image is still a valid negative for another sample's image).
    """
    logits = scale * a @ b.T  # (N_a, N_b)
    if b_valid is None:
        return 0.5 * (info_nce(logits) + info_nce(logits.T))
    neg_inf = torch.finfo(logits.dtype).min
    a2b = logits.masked_fill(~b_valid[None, :], neg_inf)
    loss_a2b = info_nce(a2b, b_valid)
    loss_b2a = info_nce(logits.T, b_valid)
    # With no image at all both terms are 0 but stay in the graph (DDP sees the same parameters used).
    return 0.5 * (loss_a2b + loss_b2a)


class PointTextImageLoss(nn.Module):
    """L = w_t * InfoNCE(point, text) + w_i * InfoNCE(point, image), over the global (gathered) batch."""

    def __init__(self, init_logit_scale: float = 1 / 0.07, max_logit_scale: float = 100.0,
                 text_weight: float = 1.0, image_weight: float = 1.0) -> None:
        super().__init__()
        self.logit_scale = LogitScale(init_logit_scale, max_logit_scale)
        self.text_weight, self.image_weight = text_weight, image_weight

    def forward(self, point: torch.Tensor, text: torch.Tensor, image: torch.Tensor | None = None,
                image_valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """point (B, D) with grad; text/image (B, D) targets; image_valid (B,) bool (None: all present)."""
        point = F.normalize(distributed.gather_with_grad(point.float()), dim=-1)
        with_image = image is not None and bool(self.image_weight)
        d = text.shape[1]
        targets = [text.float()]
        if with_image:
            if image_valid is None:
                image_valid = torch.ones(image.shape[0], dtype=torch.bool, device=image.device)
            targets += [image.float(), image_valid.float()[:, None]]
        # one collective for all targets: each is a point where ranks wait for each other
        targets = distributed.gather(torch.cat(targets, 1) if with_image else targets[0])
        text = F.normalize(targets[:, :d], dim=-1)
        scale = self.logit_scale()
        out = {'point_text_loss': self.text_weight * symmetric_info_nce(point, text, scale)}
        if with_image:
            # Missing images arrive as zeros; normalise safely, they are masked anyway.
            di = image.shape[1]
            valid = targets[:, d + di] > 0.5
            image = F.normalize(targets[:, d:d + di], dim=-1)
            out['point_image_loss'] = self.image_weight * symmetric_info_nce(point, image, scale, valid)
        return out


def total_loss(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(v for k, v in terms.items() if k.endswith('_loss'))
