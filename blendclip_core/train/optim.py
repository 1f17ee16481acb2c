"""AdamW with the method's parameter groups, and a cosine learning-rate schedule with linear warm-up."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

# Parameters whose name contains one of these never decay: learned tokens (CLS and its position) are
# not weights to shrink, and decaying the temperature would pull it towards scale 1. The positional
# embedding here is an MLP of the centres: its matrices decay like any other layer's (as in ULIP).
NO_DECAY_NAME_PARTS = ('cls_token', 'cls_pos', 'mask_token', 'log_scale', 'logit_scale')


def decays(name: str, param: torch.Tensor, no_decay_parts: Iterable[str] = NO_DECAY_NAME_PARTS) -> bool:
    """Weight decay only for matrices/kernels: not biases, norms (1-d), scalars or named tokens."""
    if param.ndim <= 1:
        return False
    return not any(part in name for part in no_decay_parts)


def param_groups(module: nn.Module, weight_decay: float,
                 no_decay_parts: Iterable[str] = NO_DECAY_NAME_PARTS) -> list[dict]:
    no_decay_parts = tuple(no_decay_parts)
    decay, no_decay = [], []
    decay_names, no_decay_names = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        if decays(name, p, no_decay_parts):
            decay.append(p)
            decay_names.append(name)
        else:
            no_decay.append(p)
            no_decay_names.append(name)
    return [{'params': decay, 'weight_decay': weight_decay, 'names': decay_names},
            {'params': no_decay, 'weight_decay': 0.0, 'names': no_decay_names}]


def build_optimizer(module: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float],
                    eps: float = 1e-8, fused: bool | None = None) -> torch.optim.AdamW:
    groups = param_groups(module, weight_decay)
    for g in groups:
        g.pop('names')
    kwargs = {'fused': fused} if fused is not None else {}
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, **kwargs)


def cosine_factor(step: int, total_steps: int, warmup_steps: int, lr: float, lr_min: float) -> float:
    """Multiplier of the base lr: linear 1/warmup..1 over warm-up, then cosine from 1 to lr_min/lr."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    floor = lr_min / lr if lr > 0 else 0.0
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, lr: float,
                    lr_min: float) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: cosine_factor(s, total_steps, warmup_steps, lr, lr_min))
