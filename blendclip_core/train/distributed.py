"""torch.distributed glue: init from torchrun's environment and a feature gather that keeps gradients.

One process per device. torchrun sets RANK, LOCAL_RANK and WORLD_SIZE (and MASTER_ADDR/PORT); without
them everything here degrades to a single process, so the same code runs a CPU smoke test and a
multi-node job.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol

from blendclip_core.train.config import DDP_COMMS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device('cpu')
    backend: str = ''  # '' when not initialised (single process)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def rank_device(preference: str = 'auto', local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:<local_rank> when CUDA is there, else cpu; 'cpu', 'cuda', 'cuda:1' as given."""
    if preference == 'auto':
        preference = 'cuda' if torch.cuda.is_available() else 'cpu'
    if preference == 'cuda':
        return torch.device('cuda', local_rank)
    return torch.device(preference)


def init_distributed(device: str = 'auto') -> DistInfo:
    """Join the process group torchrun describes in the environment (nccl on CUDA, gloo on CPU)."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    dev = rank_device(device, local_rank)
    if dev.type == 'cuda':
        torch.cuda.set_device(dev)
    if world_size <= 1:
        return DistInfo(device=dev)
    backend = 'nccl' if dev.type == 'cuda' else 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, device_id=dev if dev.type == 'cuda' else None)
    log.info('rank %d/%d (local %d) on %s via %s', rank, world_size, local_rank, dev, backend)
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size, device=dev, backend=backend)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if _active():
        dist.barrier()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient for this rank's slice.

    Each rank computes the same global loss L from the gathered features, so the gradient reaching
    rank r's features is sum over ranks of dL_k/dx_r = world_size * dL/dx_r; DDP then divides the
    parameter gradients by world_size, leaving exactly dL/dtheta of the global batch (what one process
    with the whole batch computes). An all_reduce instead of reduce_scatter: gloo has no
    reduce_scatter, and features are small.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate x (equal first dim on every rank) over ranks in rank order, differentiably."""
    return _GatherWithGrad.apply(x) if _active() else x


@torch.no_grad()
def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate x over ranks (no gradient): text/image targets and masks."""
    if not _active():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def any_true(flag: torch.Tensor) -> torch.Tensor:
    """Device bool: flag on any rank. An async all-reduce, no host sync."""
    if not _active():
        return flag
    t = flag.to(torch.int32).reshape(1)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t[0].bool()


def all_true(flag: bool, device: torch.device) -> bool:
    """True only if flag is True on every rank (so all ranks skip a step together)."""
    if not _active():
        return flag
    t = torch.tensor([1 if flag else 0], device=device, dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def broadcast_object(obj):
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient is the sum of the ranks' gradients. Functional collectives, which
    torch.compile traces into its graph (torch.distributed.nn's all_reduce breaks the graph instead)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return funcol.wait_tensor(funcol.all_reduce(x, 'sum', dist.group.WORLD))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return funcol.wait_tensor(funcol.all_reduce(grad.contiguous(), 'sum', dist.group.WORLD))


class GlobalBatchNorm1d(torch.nn.BatchNorm1d):
    """BatchNorm1d whose training statistics cover the whole global batch, on any backend (gloo too).

    The tokenizer's BatchNorm otherwise normalises each rank's patches with that rank's statistics, so
    a W-rank step would differ from one process holding the same global batch. Sums of x and x^2 and the
    count are all-reduced with autograd (a functional collective), so gradients flow through the global
    mean and variance. Same parameters, buffers and state_dict keys as BatchNorm1d. torch.compile
    traces it into the surrounding graph, so the compiled trainer uses it on CUDA too; eager CUDA
    training uses torch's SyncBatchNorm (faster kernels unfused, same function).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        if x.ndim != 2:
            raise ValueError(f'GlobalBatchNorm1d expects (N, C) input, got {tuple(x.shape)}')
        xf = x.float()
        stats = torch.cat([xf.sum(0), (xf * xf).sum(0), xf.new_tensor([x.shape[0]])])
        if _active():
            stats = _AllReduceSum.apply(stats)
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp(min=0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * n / (n - 1).clamp(min=1)
                self.running_mean.mul_(1 - m).add_(m * mean.to(self.running_mean.dtype))
                self.running_var.mul_(1 - m).add_(m * unbiased.to(self.running_var.dtype))
        y = (xf - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            y = y * self.weight + self.bias
        return y.to(x.dtype)


def wrap_ddp(module: torch.nn.Module, device: torch.device, comm: str = 'fp32') -> torch.nn.Module:
    """DistributedDataParallel around the train module. comm='bf16' all-reduces gradients in bfloat16
    (half the bytes on the wire, torch's bf16_compress_hook; CUDA/NCCL only), 'fp32' as computed."""
    if comm not in DDP_COMMS:
        raise ValueError(f"ddp comm must be 'fp32' or 'bf16', got {comm!r}")
    # broadcast_buffers=False: BatchNorm statistics are global-batch ones (identical on every rank) or
    # deliberately per rank; re-broadcasting them at every forward would only add a point where ranks wait
    ddp = torch.nn.parallel.DistributedDataParallel(
        module, device_ids=[device.index] if device.type == 'cuda' else None, gradient_as_bucket_view=True,
        broadcast_buffers=False)
    if comm == 'bf16' and device.type == 'cuda':
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import bf16_compress_hook

        ddp.register_comm_hook(None, bf16_compress_hook)
    return ddp


def convert_batchnorm(module: torch.nn.Module, device: torch.device, torch_sync: bool = True
                      ) -> torch.nn.Module:
    """Replace BatchNorm1d layers by global-batch versions, in place: torch's SyncBatchNorm on CUDA
    when torch_sync, else GlobalBatchNorm1d (plain tensor ops, which torch.compile can trace)."""
    if device.type == 'cuda' and torch_sync:
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, torch.nn.BatchNorm1d) and not isinstance(child, GlobalBatchNorm1d):
            new = GlobalBatchNorm1d(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats)
            new.load_state_dict(child.state_dict())
            new.to(next(child.parameters(), torch.empty(0)).device)
            setattr(module, name, new)
        else:
            convert_batchnorm(child, device, torch_sync)
    return module
