"""How fast could the pointbert-s train step be? The step's unavoidable parts, each timed alone.

The trainer benchmark (trainer_bench.py) times the whole step. This one times, on the same GPU and at
the same size (64 objects x 8,192 points, 512 patches of 32, bf16), the parts no implementation of the
method can skip, each in isolation with the best kernel torch ships for it:
- every matrix product of the forward and backward pass (cuBLAS, bf16, shapes from the encoder config);
- attention forward + backward of the 12 blocks: the variable-length flash kernel the encoder uses,
  and dense scaled_dot_product_attention with each backend (all objects the same length);
- training-mode BatchNorm + ReLU (forward + backward) of the tokenizer's two normalised layers
  (compiled by Inductor), on the million point rows of a batch;
- FPS + kNN grouping (the encoder's Triton kernels).
Their sum is a floor of the step time (everything else, i.e. LayerNorm, GELU, max-pools, residuals, the
loss, the optimizer and all host work, counted as free), and model FLOPs / floor is a ceiling of the MFU.

    python benchmarks/step_floor_bench.py --out benchmarks/results/step_floor.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'benchmarks'))

from trainer_bench import PEAK_BF16, forward_flops_per_object, peak_flops  # noqa: E402

from blendclip_core.encoder import create_model  # noqa: E402
from blendclip_core.encoder.config import EncoderConfig  # noqa: E402


def timed(fn, repeats: int = 20, warmup: int = 3) -> float:
    """Median milliseconds of fn() on the current CUDA stream."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def linear_shapes(cfg: EncoderConfig, batch: int, points: int) -> list[tuple[int, int, int, bool]]:
    """(rows M, in K, out N, input needs grad) of every Linear in the forward pass of one batch."""
    k = cfg.num_patches(points)
    patches, rows = batch * k, batch * k * cfg.group_size
    tokens = patches + batch
    w, hidden = cfg.width, int(cfg.width * cfg.mlp_ratio)
    shapes = [(rows, cfg.in_channels, cfg.tokenizer_hidden, False),
              (rows, cfg.tokenizer_hidden, cfg.tokenizer_local, True),
              (rows, cfg.tokenizer_local, cfg.tokenizer_hidden2, True),  # local half, per point
              (patches, cfg.tokenizer_local, cfg.tokenizer_hidden2, True),  # global half, per patch
              (rows, cfg.tokenizer_hidden2, cfg.encoder_dim, True),
              (patches, cfg.encoder_dim, w, True),
              (patches, 3, cfg.pos_hidden, False), (patches, cfg.pos_hidden, w, True)]
    for _ in range(cfg.depth):
        shapes += [(tokens, w, 3 * w, True), (tokens, w, w, True), (tokens, w, hidden, True),
                   (tokens, hidden, w, True)]
    return shapes + [(batch, 2 * w, cfg.embed_dim, True)]


def time_matmuls(shapes, dev) -> tuple[float, float]:
    """(ms, FLOPs) of forward Y = X W^T, backward dX = dY W and dW = dY^T X for every shape."""
    total_ms, flops = 0.0, 0.0
    for m, kk, n, needs_dx in shapes:
        x = torch.randn(m, kk, device=dev, dtype=torch.bfloat16)
        wt = torch.randn(n, kk, device=dev, dtype=torch.bfloat16)
        dy = torch.randn(m, n, device=dev, dtype=torch.bfloat16)

        def run(x=x, wt=wt, dy=dy, needs_dx=needs_dx):
            torch.mm(x, wt.t())
            torch.mm(dy.t(), x)
            if needs_dx:
                torch.mm(dy, wt)

        total_ms += timed(run)
        flops += 2.0 * m * kk * n * (3 if needs_dx else 2)
    return total_ms, flops


def time_attention(cfg: EncoderConfig, batch: int, points: int, dev) -> dict[str, float]:
    """ms of forward + backward attention for all blocks, per kernel."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    length = cfg.num_patches(points) + 1
    heads, d = cfg.num_heads, cfg.width // cfg.num_heads
    t = batch * length
    q, k, v = (torch.randn(t, heads, d, device=dev, dtype=torch.bfloat16, requires_grad=True)
               for _ in range(3))
    g = torch.randn(t, heads, d, device=dev, dtype=torch.bfloat16)
    cu = torch.arange(0, t + 1, length, device=dev, dtype=torch.int32)
    out: dict[str, float] = {}
    try:
        from torch.nn.attention.varlen import varlen_attn

        def varlen():
            for _ in range(cfg.depth):
                o = varlen_attn(q, k, v, cu, cu, length, length)
                torch.autograd.grad(o, (q, k, v), g)

        out['varlen_flash'] = timed(varlen, repeats=10)
    except (ImportError, RuntimeError) as e:
        print(f'varlen attention unavailable: {e}', file=sys.stderr)

    def dense(backend):
        def run():
            with sdpa_kernel([backend]):
                for _ in range(cfg.depth):
                    qd, kd, vd = (x.view(batch, length, heads, d).transpose(1, 2) for x in (q, k, v))
                    o = F.scaled_dot_product_attention(qd, kd, vd).transpose(1, 2).reshape(t, heads, d)
                    torch.autograd.grad(o, (q, k, v), g)
        return run

    for name, backend in (('dense_flash', SDPBackend.FLASH_ATTENTION),
                          ('dense_cudnn', SDPBackend.CUDNN_ATTENTION),
                          ('dense_efficient', SDPBackend.EFFICIENT_ATTENTION)):
        try:
            out[name] = timed(dense(backend), repeats=10)
        except RuntimeError as e:
            print(f'{name} unavailable: {str(e)[:200]}', file=sys.stderr)
    return out


def time_batchnorm(cfg: EncoderConfig, batch: int, points: int, dev) -> float:
    """ms of training-mode BatchNorm + ReLU forward and backward on the tokenizer's normalised layers."""
    rows = batch * cfg.num_patches(points) * cfg.group_size
    total = 0.0
    for width in (cfg.tokenizer_hidden, cfg.tokenizer_hidden2):
        bn = torch.nn.BatchNorm1d(width).to(dev)
        x = torch.randn(rows, width, device=dev, dtype=torch.bfloat16, requires_grad=True)
        g = torch.randn(rows, width, device=dev, dtype=torch.bfloat16)
        f = torch.compile(lambda t, bn=bn: F.relu(bn(t)), dynamic=False)

        def run(x=x, g=g, f=f):
            torch.autograd.grad(f(x), (x,), g)

        total += timed(run, repeats=10)
    return total


def time_grouping(cfg: EncoderConfig, batch: int, points: int, dev) -> float:
    from blendclip_core.encoder.grouping import farthest_point_sample, knn_group
    from blendclip_core.encoder.packing import make_plan

    counts = torch.full((batch,), points).numpy()
    dp = make_plan(counts, cfg).to_device(dev)
    pts = torch.randn(batch * points, cfg.in_channels, device=dev)

    def run():
        centres = farthest_point_sample(pts, dp.offsets, dp.k, dp.caps.k_max, dp.caps.n_max, cfg.fps_start)
        knn_group(pts, dp.offsets, centres, dp.k, cfg.group_size, dp.caps.n_max)

    return timed(run, repeats=5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--model', default='pointbert-s')
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--points', type=int, default=8192)
    p.add_argument('--out', default=str(ROOT / 'benchmarks' / 'results' / 'step_floor.json'))
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print('step_floor_bench: needs a CUDA GPU', file=sys.stderr)
        return 1
    dev = torch.device('cuda')
    cfg = create_model(args.model).config
    name = torch.cuda.get_device_name(dev)
    mm_ms, mm_flops = time_matmuls(linear_shapes(cfg, args.batch, args.points), dev)
    attn = time_attention(cfg, args.batch, args.points, dev)
    bn_ms = time_batchnorm(cfg, args.batch, args.points, dev)
    group_ms = time_grouping(cfg, args.batch, args.points, dev)
    model_flops = 3 * forward_flops_per_object(cfg, args.points, True) * args.batch
    peak = peak_flops(name) or PEAK_BF16['H100']
    best_attn = min(attn.values())
    floor_used = mm_ms + attn.get('varlen_flash', best_attn) + bn_ms + group_ms
    floor_best = mm_ms + best_attn + bn_ms + group_ms
    res = {
        'matmul_ms': mm_ms, 'matmul_tflops': mm_flops / mm_ms / 1e9,
        **{f'attention_{k}_ms': v for k, v in attn.items()},
        'batchnorm_train_ms': bn_ms, 'grouping_ms': group_ms,
        'floor_step_ms': floor_used, 'floor_step_ms_best_attention': floor_best,
        'mfu_ceiling': model_flops / (floor_used / 1e3) / peak,
        'mfu_ceiling_best_attention': model_flops / (floor_best / 1e3) / peak,
        'mfu_ceiling_without_grouping': model_flops / ((floor_best - group_ms) / 1e3) / peak,
        'step_ms_for_35pct_mfu': model_flops / (0.35 * peak) * 1e3,
    }
    doc = {'device': f'{name} x1', 'date': datetime.now(timezone.utc).strftime('%Y-%m-%d'), 'results': res,
           'config': {'model': args.model, 'batch': args.batch, 'points': args.points,
                      'train_gflop_per_step': model_flops / 1e9, 'torch': torch.__version__,
                      'peak_tflops': peak / 1e12}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1) + '\n')
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
