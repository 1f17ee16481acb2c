"""What one training step does: the module DDP wraps (encoder + loss), the device copy of a batch, and
`train_step`, which skips a non-finite update on every rank together."""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from blendclip_core.checkpoint import init_from_checkpoint
from blendclip_core.train import distributed
from blendclip_core.train.config import TrainConfig
from blendclip_core.train.losses import PointTextImageLoss, total_loss
from blendclip_core.train.sources import TrainBatch


def create_encoder(cfg: TrainConfig) -> nn.Module:
    from blendclip_core.encoder import create_model

    encoder = create_model(cfg.model.name, **cfg.model.overrides)
    if cfg.model.init_checkpoint:
        init_from_checkpoint(encoder, cfg.model.init_checkpoint)
    return encoder


def embed_dim_of(encoder: nn.Module) -> int:
    config = getattr(encoder, 'config', None)
    dim = getattr(config, 'embed_dim', None) or getattr(encoder, 'embed_dim', None)
    if not dim:
        raise ValueError('cannot tell the encoder output width (expected encoder.config.embed_dim)')
    return int(dim)


def compile_encoder(encoder: nn.Module, dynamic: bool | None = None) -> None:
    """torch.compile the heavy submodules in place (tokenizer, transformer blocks): the host-side
    planning stays eager, and state_dict keys do not change (Module.compile wraps the call only)."""
    parts = [getattr(encoder, 'tokenizer', None), *getattr(encoder, 'blocks', [])]
    parts = [p for p in parts if p is not None] or [encoder]
    for part in parts:
        part.compile(dynamic=dynamic)


class TrainModule(nn.Module):
    """Encoder + loss as one module, so DDP sees (and averages) the logit scale's gradient too."""

    def __init__(self, encoder: nn.Module, loss: PointTextImageLoss) -> None:
        super().__init__()
        self.encoder, self.loss = encoder, loss

    def forward(self, points, counts, text, image, image_valid) -> dict[str, torch.Tensor]:
        feats = self.encoder.encode_packed(points, counts)
        return self.loss(feats.float(), text, image, image_valid)


@dataclass
class StepResult:
    """Device tensors (reading them syncs with the GPU: the loop does so only when it logs)."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    grad_norm: torch.Tensor
    skipped: torch.Tensor  # bool: non-finite loss or gradient norm, update not applied


def autocast_for(device: torch.device, precision: str):
    if device.type == 'cuda' and precision == 'bf16':
        return torch.autocast('cuda', dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batch_to_device(batch: TrainBatch, device: torch.device) -> tuple:
    """(points, counts (host numpy), text, image, image_valid): what TrainModule.forward takes."""
    nb = device.type == 'cuda'
    points, text, image, valid = (t.to(device, non_blocking=nb) for t in batch.host_tensors())
    return points, batch.objects.counts, text, image, valid


def train_step(module: nn.Module, loss_module: PointTextImageLoss, optimizer: torch.optim.Optimizer,
               scheduler, tensors: tuple, grad_clip: float, device: torch.device,
               precision: str = 'bf16') -> StepResult:
    """One optimizer step. A non-finite loss or gradient norm skips the update on every rank together
    (the scheduler still advances: the lr stays a function of the step).

    With a fused optimizer (CUDA) the skip happens on the device (AdamW's found_inf, as GradScaler uses
    it), so a step never waits for the GPU and the host runs ahead into the next step.
    """
    optimizer.zero_grad(set_to_none=True)
    # BatchNorm running statistics move in the forward pass: keep a copy to undo a bad step's update
    stats = [b for name, b in module.named_buffers() if name.endswith(('running_mean', 'running_var'))]
    saved = [b.clone() for b in stats]
    with autocast_for(device, precision):
        terms = module(*tensors)
    loss = total_loss(terms)
    loss.backward()  # always: under DDP every rank must join the gradient all-reduce
    params = [p for g in optimizer.param_groups for p in g['params'] if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else float('inf'))
    bad = distributed.any_true(~(torch.isfinite(loss.detach()) & torch.isfinite(norm)))
    if optimizer.defaults.get('fused'):
        optimizer.found_inf = bad.float()
        optimizer.step()
        del optimizer.found_inf
        loss_module.logit_scale.clamp_()
    elif not bool(bad):
        optimizer.step()
        loss_module.logit_scale.clamp_()
    with torch.no_grad():
        for buf, old in zip(stats, saved):
            buf.copy_(torch.where(bad, old, buf))
    with warnings.catch_warnings():
        # a skipped first update makes torch warn that the schedule ran ahead of the optimizer: by design
        warnings.filterwarnings('ignore', message='Detected call of `lr_scheduler.step\\(\\)` before')
        scheduler.step()
    return StepResult(loss.detach(), {k: v.detach() for k, v in terms.items()}, norm.detach(), bad)
