"""Training throughput (objects/s) and model FLOP utilisation of the BlendCLIP train step.

    python benchmarks/trainer_bench.py --variant eager --json out/1gpu_eager.json          # one GPU
    torchrun --nproc_per_node 2 benchmarks/trainer_bench.py --variant compile --json ...   # two GPUs
    python benchmarks/trainer_bench.py --merge out/*.json --out benchmarks/results/trainer.json

What is timed is the trainer's own step (blendclip_core.train.step.train_step): packed points of
`--batch` objects x `--points` points per GPU -> encoder (FPS, kNN, mini-PointNet, transformer) in bf16
autocast -> features gathered across ranks with gradients -> point-text + point-image InfoNCE ->
backward (DDP all-reduce) -> grad clipping -> fused AdamW. Batches are pre-built on the GPU (a few,
rotated), so the number is the step's, not the data loader's. Only torch/numpy and blendclip_core.

MFU = (train FLOPs per object x objects/s per GPU) / dense bf16 peak (989.4 TFLOP/s for H100/H200 SXM).
Train FLOPs = 3 x forward matmul FLOPs (backward = 2 x forward), counted analytically from the encoder
config: `flops_as_executed` follows our tokenizer (second conv split into a per-point and a per-patch
product), `flops_pointbert` the original PointBERT formulation (concat then one conv), larger by
~2.1 GFLOP per 8k-point object; MFU is reported on the smaller (executed) count. FPS/kNN and
element-wise work count as zero FLOPs (they cost time, not matrix FLOPs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blendclip_core.encoder import create_model  # noqa: E402
from blendclip_core.train import distributed  # noqa: E402
from blendclip_core.train.config import DDP_COMMS  # noqa: E402
from blendclip_core.train.losses import PointTextImageLoss  # noqa: E402
from blendclip_core.train.optim import build_optimizer, build_scheduler  # noqa: E402
from blendclip_core.train.step import TrainModule, compile_encoder, train_step  # noqa: E402
from blendclip_core.train.toy_data import SHAPES, sample_object  # noqa: E402

PEAK_BF16 = {'H100': 989.4e12, 'H200': 989.4e12}  # dense, SXM datasheet


def forward_flops_per_object(cfg, n_points: int, split_second_conv: bool = True) -> float:
    """Matrix FLOPs (2 x MACs) of one object's forward pass."""
    n = min(n_points, cfg.max_points)
    k = cfg.num_patches(n)
    g, c = cfg.group_size, cfg.in_channels
    rows = k * g  # point rows in the tokenizer
    macs = rows * (c * cfg.tokenizer_hidden + cfg.tokenizer_hidden * cfg.tokenizer_local)
    if split_second_conv:  # local half per point, global half once per patch
        macs += (rows + k) * cfg.tokenizer_local * cfg.tokenizer_hidden2
    else:
        macs += rows * 2 * cfg.tokenizer_local * cfg.tokenizer_hidden2
    macs += rows * cfg.tokenizer_hidden2 * cfg.encoder_dim
    macs += k * cfg.encoder_dim * cfg.width  # reduce_dim
    macs += k * (3 * cfg.pos_hidden + cfg.pos_hidden * cfg.width)  # positional MLP
    seq, w = k + 1, cfg.width
    hidden = int(w * cfg.mlp_ratio)
    per_block = seq * w * (3 * w + w + 2 * hidden) + 2 * seq * seq * w  # qkv, proj, mlp; QK^T and AV
    macs += cfg.depth * per_block
    macs += 2 * w * cfg.embed_dim  # projection
    return 2.0 * macs


def peak_flops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def make_batches(n_batches: int, batch: int, n_points: int, dim: int, seed: int, device: torch.device):
    """Generated dense objects (toy shapes), packed, with unit text/image targets; 20 % images missing."""
    rng = np.random.default_rng(seed)
    shapes = list(SHAPES)
    out = []
    for _ in range(n_batches):
        pts = [sample_object(shapes[i % len(shapes)], rng, n_points, 'synthetic', 0.005)
               for i in range(batch)]
        counts = np.full(batch, n_points, np.int64)
        text = F.normalize(torch.from_numpy(rng.normal(size=(batch, dim)).astype(np.float32)), dim=1)
        image = F.normalize(text + 0.3 * torch.randn(batch, dim), dim=1)
        valid = torch.from_numpy(rng.random(batch) > 0.2)
        out.append((torch.from_numpy(np.concatenate(pts)).to(device), counts, text.to(device),
                    image.to(device), valid.to(device)))
    return out


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_grouping(encoder, batches, device, repeats: int) -> float:
    """Median ms of FPS + kNN alone (no grad) for one batch: the share a loader-side grouping would move."""
    from blendclip_core.encoder.grouping import farthest_point_sample, knn_group
    from blendclip_core.encoder.packing import make_plan

    cfg = encoder.config
    pts, counts = batches[0][0], batches[0][1]
    dp = make_plan(counts, cfg).to_device(device)
    times = []
    for i in range(repeats + 3):
        sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            centres = farthest_point_sample(pts, dp.offsets, dp.k, dp.caps.k_max, dp.caps.n_max,
                                            cfg.fps_start)
            knn_group(pts, dp.offsets, centres, dp.k, cfg.group_size, dp.caps.n_max)
        sync(device)
        if i >= 3:
            times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def run(args) -> dict:
    info = distributed.init_distributed(args.device)
    dev = info.device
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    encoder = create_model(args.model, **({'drop_path': 0.0} if args.no_drop_path else {}))
    if info.distributed and args.bn in ('sync', 'global'):
        distributed.convert_batchnorm(encoder, dev, torch_sync=args.bn == 'sync')
    encoder.to(dev)
    loss = PointTextImageLoss().to(dev)
    module = TrainModule(encoder, loss)
    if args.variant == 'compile':
        if args.no_ddp_optimizer:
            torch._dynamo.config.optimize_ddp = False
        compile_encoder(encoder, dynamic=False)
    opt = build_optimizer(module, 1e-4, 0.1, (0.9, 0.98), fused=dev.type == 'cuda')
    sched = build_scheduler(opt, 10**6, 0, 1e-4, 1e-5)
    step_module = module
    if info.distributed:
        step_module = distributed.wrap_ddp(module, dev, args.comm)
    batches = make_batches(3, args.batch, args.points, encoder.embed_dim, 100 + info.rank, dev)
    t0 = time.perf_counter()
    for i in range(args.warmup):
        train_step(step_module, loss, opt, sched, batches[i % 3], 1.0, dev, 'bf16')
    sync(dev)
    warmup_s = time.perf_counter() - t0
    if dev.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    distributed.barrier()
    sync(dev)
    t_all = time.perf_counter()
    for i in range(args.steps):
        t = time.perf_counter()
        res = train_step(step_module, loss, opt, sched, batches[i % 3], 1.0, dev, 'bf16')
        sync(dev)
        times.append(time.perf_counter() - t)
    total = time.perf_counter() - t_all
    # as the trainer runs: no wait per step, so host work of the next step overlaps the GPU's
    t_async = time.perf_counter()
    for i in range(args.steps):
        train_step(step_module, loss, opt, sched, batches[i % 3], 1.0, dev, 'bf16')
    sync(dev)
    step_async_s = (time.perf_counter() - t_async) / args.steps
    if args.profile:  # every rank steps (DDP collectives), only the main one reports
        profile_steps(step_module, loss, opt, sched, batches, dev, args.profile,
                      args.json if info.is_main else None, info.is_main)
    grouping_ms = time_grouping(encoder, batches, dev, 5) if info.is_main else None
    step_s = statistics.median(times)
    cfg = encoder.config
    f_exec = 3 * forward_flops_per_object(cfg, args.points, True)
    f_def = 3 * forward_flops_per_object(cfg, args.points, False)
    obj_per_gpu = args.batch / step_s
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'CPU ({platform.machine()})'
    peak = peak_flops(name)
    out = {
        'variant': args.variant + ('' if args.bn == 'sync' or info.world_size == 1 else f'_{args.bn}bn')
        + ('_bf16comm' if args.comm == 'bf16' and info.world_size > 1 else '')
        + ('_noddpopt' if args.no_ddp_optimizer and info.world_size > 1 else ''),
        'batchnorm': args.bn if info.world_size > 1 else 'single', 'model': args.model,
        'world_size': info.world_size, 'device': name,
        'batch_per_gpu': args.batch, 'points': args.points,
        'patches_per_object': cfg.num_patches(args.points),
        'step_ms_median': 1e3 * step_s, 'step_ms_min': 1e3 * min(times), 'step_ms_max': 1e3 * max(times),
        'objects_per_s_per_gpu': obj_per_gpu, 'objects_per_s_total': obj_per_gpu * info.world_size,
        'objects_per_s_total_wall': args.batch * info.world_size * args.steps / total,
        'step_ms_async': 1e3 * step_async_s,
        'objects_per_s_total_async': args.batch * info.world_size / step_async_s,
        'mfu_async': f_exec * args.batch / step_async_s / peak if peak else None,
        'train_gflop_per_object_executed': f_exec / 1e9, 'train_gflop_per_object_pointbert': f_def / 1e9,
        'achieved_tflops_per_gpu': f_exec * obj_per_gpu / 1e12,
        'mfu': f_exec * obj_per_gpu / peak if peak else None,
        'mfu_pointbert_flops': f_def * obj_per_gpu / peak if peak else None,
        'grouping_ms_per_batch': grouping_ms, 'warmup_s': warmup_s, 'last_loss': float(res.loss),
        'peak_memory_gib': torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == 'cuda' else None,
        'torch': torch.__version__, 'varlen_attention': _has_varlen(),
    }
    distributed.cleanup()
    return out


def profile_steps(step_module, loss, opt, sched, batches, dev, n: int, json_path: str | None,
                  report: bool = True) -> None:
    """Kernel table of n steps (self device time) and the device-busy share of their wall time."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == 'cuda' else [])
    sync(dev)
    t0 = time.perf_counter()
    with profile(activities=acts) as prof:
        for i in range(n):
            train_step(step_module, loss, opt, sched, batches[i % 3], 1.0, dev, 'bf16')
        sync(dev)
    wall = time.perf_counter() - t0
    key = 'self_device_time_total' if dev.type == 'cuda' else 'self_cpu_time_total'
    table = prof.key_averages().table(sort_by=key, row_limit=40, max_name_column_width=70)
    events = prof.key_averages()
    busy = sum(getattr(e, 'self_device_time_total', 0) for e in events) / 1e6
    summary = (f'profile: {n} steps, wall {wall * 1e3:.1f} ms, '
               f'device busy {busy * 1e3:.1f} ms ({busy / wall:.0%})')
    if report:
        print(table + '\n' + summary)
    if json_path:
        Path(json_path).with_suffix('.profile.txt').write_text(table + '\n' + summary + '\n')


def _has_varlen() -> bool:
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
        return True
    except ImportError:
        return False


def _throughput(r: dict) -> float:
    """Objects/s as the trainer runs (no wait per step) where measured, else with a wait per step."""
    return r.get('objects_per_s_total_async') or r['objects_per_s_total']


def _mfu(r: dict) -> float | None:
    return r.get('mfu_async') or r['mfu']


def median_runs(runs: list[dict]) -> list[dict]:
    """One run per (machine, GPUs, variant): the median by throughput (the lower one of an even count),
    with every repeat's throughput listed, so that repeats of a noisy setting are not cherry-picked."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r.get('machine'), r['world_size'], r['variant']), []).append(r)
    out = []
    for group in groups.values():
        ranked = sorted(group, key=_throughput)
        pick = dict(ranked[(len(ranked) - 1) // 2])
        if len(group) > 1:
            pick['repeats_objects_per_s_total'] = [_throughput(r) for r in ranked]
        out.append(pick)
    return out


def merge(paths: list[str], out: str, earlier: str | None = None, headline_2gpu: str | None = None
          ) -> dict:
    """Combine per-run JSONs into benchmarks/results/trainer.json (best variant per setting).

    1-GPU figures come from runs tagged 'h100'; 2-GPU scaling compares runs of one 'h200x2' machine
    (the 1-GPU run there used one of its two GPUs), variant with variant. Repeats of a setting count by
    their median (median_runs)."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    medians = median_runs(runs)
    one = [r for r in medians if r['world_size'] == 1 and r.get('machine') == 'h100']
    two_m = [r for r in medians if r.get('machine') == 'h200x2']
    res, chosen = {}, {}
    if one:
        best1 = max(one, key=_throughput)
        chosen['1gpu'] = best1['variant']
        res.update(train_objects_per_s_1gpu=_throughput(best1), mfu_1gpu=_mfu(best1),
                   step_ms_1gpu=best1.get('step_ms_async', best1['step_ms_median']),
                   train_objects_per_s_1gpu_waiting_each_step=best1['objects_per_s_total'],
                   mfu_1gpu_waiting_each_step=best1['mfu'],
                   grouping_ms_per_batch_1gpu=best1['grouping_ms_per_batch'])
        for r in one:
            res[f'train_objects_per_s_1gpu_{r["variant"]}'] = _throughput(r)
            res[f'mfu_1gpu_{r["variant"]}'] = _mfu(r)
    single = {r['variant']: r for r in two_m if r['world_size'] == 1}
    double = [r for r in two_m if r['world_size'] == 2]
    pairs = [(d, single[d['variant'].split('_')[0]]) for d in double if d['variant'].split('_')[0] in single]
    if pairs:
        for d, s1 in pairs:
            res[f'scaling_2gpu_{d["variant"]}'] = _throughput(d) / _throughput(s1)
            res[f'train_objects_per_s_2gpu_{d["variant"]}'] = _throughput(d)
        for v, s1 in single.items():
            res[f'train_objects_per_s_1gpu_h200_{v}'] = _throughput(s1)
        if headline_2gpu:  # the setting the trainer runs by default, named by whoever merges
            d, s1 = next(p for p in pairs if p[0]['variant'] == headline_2gpu)
        else:  # the fastest 2-GPU setting, as a user picks
            d, s1 = max(pairs, key=lambda p: _throughput(p[0]))
        chosen['2gpu'] = d['variant']
        res.update(train_objects_per_s_2gpu=_throughput(d), scaling_2gpu=_throughput(d) / _throughput(s1),
                   best_scaling_2gpu=max(_throughput(a) / _throughput(b) for a, b in pairs),
                   mfu_2gpu_per_gpu=_mfu(d))
    devices = sorted({f'{r["machine"]}: {r["device"]} x{r["world_size"]}' for r in runs})
    doc = {'device': '; '.join(devices), 'date': datetime.now(timezone.utc).strftime('%Y-%m-%d'),
           'results': res, 'variants_chosen': chosen,
           'repeats': {f"{r['machine']} x{r['world_size']} {r['variant']}": r['repeats_objects_per_s_total']
                       for r in medians if 'repeats_objects_per_s_total' in r},
           'runs': runs,
           'notes': 'bf16 autocast; throughput as the trainer runs (no wait per step; *_waiting_each_step: '
                    'with a synchronisation after every step); MFU = executed matrix FLOPs x objects/s per '
                    'GPU / 989.4 TFLOP/s'}
    if earlier:
        doc['earlier'] = json.loads(Path(earlier).read_text())
    Path(out).write_text(json.dumps(doc, indent=1) + '\n')
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--model', default='pointbert-s')
    p.add_argument('--batch', type=int, default=64, help='objects per GPU')
    p.add_argument('--points', type=int, default=8192)
    p.add_argument('--steps', type=int, default=20)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--variant', choices=['eager', 'compile'], default='eager')
    p.add_argument('--no-drop-path', action='store_true')
    p.add_argument('--bn', choices=['sync', 'global', 'local'], default='sync',
                   help="BatchNorm statistics over all ranks (sync: torch's SyncBatchNorm, the trainer's "
                        'default; global: GlobalBatchNorm1d, traceable by torch.compile) or per rank')
    p.add_argument('--comm', choices=DDP_COMMS, default='fp32',
                   help='gradient all-reduce precision under DDP (bf16: torch bf16_compress_hook)')
    p.add_argument('--no-ddp-optimizer', action='store_true',
                   help="compile without dynamo's DDPOptimizer (graphs not split at gradient buckets)")
    p.add_argument('--profile', type=int, default=0, help='also profile this many steps (kernel table)')
    p.add_argument('--device', default='cuda', help="'cpu' only to check the script (tiny sizes)")
    p.add_argument('--machine', default='', help='tag stored with the run (h100, h200x2)')
    p.add_argument('--json', help='write this run to a JSON file (main rank)')
    p.add_argument('--merge', nargs='+', help='merge run JSONs into --out')
    p.add_argument('--headline-2gpu', help='merge: the 2-GPU variant for the result keys (default: fastest)')
    p.add_argument('--earlier', help='a previous trainer.json to keep, whole, under "earlier"')
    p.add_argument('--out', default=str(ROOT / 'benchmarks' / 'results' / 'trainer.json'))
    args = p.parse_args(argv)
    if args.no_ddp_optimizer and args.variant != 'compile':  # else the run would be labelled _noddpopt
        p.error('--no-ddp-optimizer only applies to --variant compile')
    if args.merge:
        doc = merge(args.merge, args.out, args.earlier, args.headline_2gpu)
        print(json.dumps(doc['results'], indent=1))
        return 0
    if args.device != 'cpu' and not torch.cuda.is_available():
        print('trainer_bench: needs a CUDA GPU (the CPU path is covered by tests/train)', file=sys.stderr)
        return 1
    os.environ.setdefault('NCCL_NVLS_ENABLE', '0')
    result = run(args)
    result['machine'] = args.machine
    result['host'] = platform.node()
    if int(os.environ.get('RANK', '0')) == 0:
        print(json.dumps(result, indent=1))
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
