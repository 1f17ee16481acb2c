"""PointEncoder: PointBERT-style encoder from LiDAR object points to the CLIP embedding space.

Pipeline (method.md): FPS centres -> kNN patches of group_size points -> mini-PointNet tokens ->
+ positional MLP of the centres, CLS token -> transformer -> concat(CLS, max-pool of patch tokens)
-> linear projection to embed_dim. Every object gets k = clamp(floor(2N/32), 1, 512) patches; all
objects of a call run in one pass on packed tokens, so an object's embedding never depends on the
other objects in the batch (up to float rounding).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from blendclip_core.encoder.config import EncoderConfig
from blendclip_core.encoder.grouping import farthest_point_sample, knn_group
from blendclip_core.encoder.packing import Caps, DevicePlan, Plan, graph_caps, make_plan
from blendclip_core.encoder.tokenizer import PatchEmbed
from blendclip_core.encoder.transformer import Block, LayerNorm, Linear, run_blocks_fused
from blendclip_core.types import ObjectBatch

log = logging.getLogger(__name__)
MAX_GRAPHS = 64  # captured frame sizes kept per model


class PointEncoder(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.tokenizer = PatchEmbed(c.in_channels, c.tokenizer_hidden, c.tokenizer_local,
                                    c.tokenizer_hidden2, c.encoder_dim)
        self.reduce_dim = Linear(c.encoder_dim, c.width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.width))
        self.cls_pos = nn.Parameter(torch.randn(1, 1, c.width) * 0.02)
        self.pos_embed = nn.Sequential(Linear(3, c.pos_hidden), nn.GELU(), Linear(c.pos_hidden, c.width))
        rates = np.linspace(0.0, c.drop_path, c.depth) if c.depth > 1 else [c.drop_path]
        self.blocks = nn.ModuleList(Block(c.width, c.num_heads, c.mlp_ratio, float(r), c.ln_eps)
                                    for r in rates)
        self.norm = LayerNorm(c.width, eps=c.ln_eps)
        self.proj = Linear(2 * c.width, c.embed_dim, bias=False)
        self.grouping_backend = 'auto'  # 'torch' forces the pure-torch FPS/kNN
        self.attention_varlen = True  # False forces padded attention on CUDA too
        self.fuse_norms = True  # half-precision CUDA inference: residual adds fused into LayerNorm
        self.gelu_epilogue = True  # ... and fc1's bias + GELU in the product's epilogue (tanh GELU)
        self._graphs: dict | None = None
        self._graph_pool = None
        self._staging = _Staging()
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    @property
    def in_channels(self) -> int:
        return self.config.in_channels

    @property
    def device(self) -> torch.device:
        return self.proj.weight.device

    # ------------------------------------------------------------------------------------ public API

    def forward(self, points: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """points (B, Nmax, C) padded, lengths (B,) -> (B, embed_dim), not normalised; 0 for empty."""
        if points.ndim != 3 or points.shape[-1] != self.in_channels:
            raise ValueError(f'points must be (B, N, {self.in_channels}), got {tuple(points.shape)}')
        counts = lengths.detach().to('cpu', torch.int64).numpy().clip(0, points.shape[1])
        mask = torch.arange(points.shape[1], device=points.device)[None, :] < torch.from_numpy(counts).to(
            points.device)[:, None]
        return self.encode_packed(points[mask], counts)

    def encode(self, batch: ObjectBatch, device: torch.device | str | None = None) -> torch.Tensor:
        """Packed objects -> (B, embed_dim) float32 on the model's device; zero rows for empty objects."""
        if batch.points.shape[1] < self.in_channels:
            raise ValueError(f'model needs {self.in_channels} channels, batch has {batch.points.shape[1]}')
        device = torch.device(device) if device is not None else self.device
        pts = batch.points[:, :self.in_channels]
        if not np.isfinite(pts).all():  # cropping never yields these; other callers get a clear error
            rows = np.flatnonzero(~np.isfinite(pts).all(1))
            bad = np.unique(np.searchsorted(batch.offsets, rows, 'right') - 1)
            raise ValueError(f'non-finite points in objects {bad[:10].tolist()}')
        return self.encode_packed(self._staging.upload(pts, device), batch.counts)

    def enable_cuda_graphs(self, enabled: bool = True) -> None:
        """Replay captured CUDA graphs in inference (eval, no grad, CUDA): one capture per rounded
        frame size (see packing.graph_caps), kept until disabled."""
        self._graphs = {} if enabled else None
        self._graph_pool = None  # a fresh pool for the next capture (see _GraphRunner)

    # ------------------------------------------------------------------------------------- internals

    def encode_packed(self, points: torch.Tensor, counts: np.ndarray) -> torch.Tensor:
        """(T, C) packed points on the model's device + (B,) host-side point counts -> (B, embed_dim),
        with gradients when enabled (the trainer's path): no padding, and the counts stay on the host,
        so planning the patches never waits for the device. Zero rows for empty objects."""
        counts = np.asarray(counts, dtype=np.int64)
        out = torch.zeros(len(counts), self.embed_dim, device=points.device)
        nonempty = np.flatnonzero(counts > 0)
        if len(nonempty) == 0:
            return out
        counts = counts[nonempty]  # empty objects own no rows of `points`
        if counts.max() > self.config.max_points:
            points, counts = self._cap_points(points, counts)
        emb = self._run(points, counts).float()
        if len(nonempty) == len(out):
            return emb
        out[torch.from_numpy(nonempty).to(out.device)] = emb
        return out

    def _cap_points(self, points: torch.Tensor, counts: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """Objects over max_points -> FPS down-sampled to max_points (deterministic)."""
        cap = self.config.max_points
        offsets = np.concatenate([[0], np.cumsum(counts)])
        big = np.flatnonzero(counts > cap)
        rows = [torch.arange(offsets[i], offsets[i + 1]) for i in range(len(counts))]
        dev = points.device
        sub_rows = torch.cat([rows[i] for i in big]).to(dev)
        sub_off = torch.from_numpy(np.concatenate([[0], np.cumsum(counts[big])])).to(dev)
        k = torch.full((len(big),), cap, dtype=torch.long, device=dev)
        idx = farthest_point_sample(points[sub_rows], sub_off, k, cap, int(counts[big].max()),
                                    self.config.fps_start, self.grouping_backend)
        for j, i in enumerate(big):
            rows[i] = sub_rows[idx[j]].cpu()
        keep = torch.cat(rows).to(dev)
        return points[keep], np.minimum(counts, cap)

    def _run(self, points: torch.Tensor, counts: np.ndarray) -> torch.Tensor:
        use_graph = (self._graphs is not None and points.is_cuda and not self.training
                     and not torch.is_grad_enabled())
        if not use_graph:
            return self._run_eager(points, counts)
        k = np.clip((self.config.patch_ratio * counts) // self.config.group_size,
                    self.config.min_patches, self.config.max_patches)
        caps = graph_caps(counts, k)
        wkey = self._weights_key()
        if self._graphs and self._graphs.get('_weights') != wkey:
            self._graphs.clear()  # weights changed since capture: graphs hold casts of the old ones
            self._graph_pool = None
        self._graphs['_weights'] = wkey
        plan = make_plan(counts, self.config, caps)
        key = (caps, torch.is_autocast_enabled('cuda'), torch.get_autocast_dtype('cuda'), points.device)
        runner = self._graphs.get(key)
        if runner is None:
            try:
                runner = _GraphRunner(self, caps, plan, points)
            except RuntimeError as e:  # e.g. an op that cannot be captured: stay correct, run eagerly
                log.warning('CUDA graph capture failed (%s); running this size eagerly', e)
                runner = False
            self._graphs[key] = runner
            sizes = [k for k in self._graphs if k != '_weights']
            if len(sizes) > MAX_GRAPHS:  # a long-running node with ever new frame sizes: drop the oldest
                del self._graphs[sizes[0]]
        if runner is False:
            return self._run_eager(points, counts)
        return runner(points, plan)[:plan.n]

    def _fused_inference(self, x: torch.Tensor) -> bool:
        """Fused add+LayerNorm passes: half-precision CUDA inference only (fp32 and CPU keep the plain
        modules, whose results the exactness checks are about)."""
        return (self.fuse_norms and not self.training and not torch.is_grad_enabled() and x.is_cuda
                and x.dtype in (torch.float16, torch.bfloat16) and len(self.blocks) > 0)

    def _weights_key(self) -> tuple:
        """Changes whenever a parameter or buffer is modified or moved."""
        ts = self.__dict__.get('_tensor_list')
        if ts is None:
            ts = self.__dict__['_tensor_list'] = [*self.parameters(), *self.buffers()]
        return sum(t._version for t in ts), ts[0].data_ptr(), ts[-1].data_ptr()

    def _apply(self, fn, *args, **kwargs):
        self.__dict__.pop('_tensor_list', None)  # .to() / .cuda() may replace tensors
        return super()._apply(fn, *args, **kwargs)

    def _run_eager(self, points: torch.Tensor, counts: np.ndarray) -> torch.Tensor:
        plan = make_plan(counts, self.config)
        buf = self._staging.upload(plan.int_buffer, points.device, slot=1)
        return self._forward_plan(points, buf, plan)[:plan.n]

    def _forward_plan(self, points: torch.Tensor, plan_buf: torch.Tensor, plan: Plan) -> torch.Tensor:
        """Everything on the device for one plan: (caps.n, embed_dim). Reads sizes only from plan.caps
        and indices only from plan_buf, so a CUDA graph of it serves every plan with the same caps."""
        dp = DevicePlan.from_buffer(plan_buf, plan)
        c, caps = self.config, dp.caps
        centres = farthest_point_sample(points, dp.offsets, dp.k, caps.k_max, caps.n_max, c.fps_start,
                                        self.grouping_backend)
        groups = knn_group(points, dp.offsets, centres, dp.k, c.group_size, caps.n_max, self.grouping_backend)
        centre_rows = centres.view(-1)[dp.sel]  # (P,)
        group_rows = groups.view(-1, c.group_size)[dp.sel]  # (P, G)
        centre_xyz = points[centre_rows, :3]
        patches = points[group_rows]  # (P, G, C)
        rel = patches[..., :3] - centre_xyz[:, None, :]
        patches = torch.cat([rel, patches[..., 3:]], -1) if c.in_channels > 3 else rel
        tokens = self.reduce_dim(self.tokenizer(patches))
        pos = self.pos_embed(centre_xyz)
        n = caps.n
        x = torch.cat([self.cls_token[0].to(tokens.dtype).expand(n, -1), tokens])[dp.order]
        pos = torch.cat([self.cls_pos[0].to(pos.dtype).expand(n, -1), pos])[dp.order]
        dp.seqs.use_varlen = self.attention_varlen
        if self._fused_inference(x):
            x = run_blocks_fused(self.blocks, self.norm, x, pos, dp.seqs, self.gelu_epilogue)
        else:
            for blk in self.blocks:
                x = blk(x + pos, dp.seqs)
            x = self.norm(x)
        feat = torch.cat([x[dp.cls_rows], x[dp.pool_index].amax(1)], -1)
        return self.proj(feat)


class _GraphRunner:
    """One captured CUDA graph of _forward_plan for fixed Caps; inputs are copied into its buffers.
    Graphs of one model share a memory pool: they never run concurrently and outputs are cloned."""

    def __init__(self, model: PointEncoder, caps: Caps, plan: Plan, points: torch.Tensor) -> None:
        dev = points.device
        with torch.inference_mode(False):  # buffers updated in place later, in or out of inference mode
            self.points = torch.zeros((caps.points, points.shape[1]), dtype=points.dtype, device=dev)
            self.plan_buf = torch.zeros(plan.int_buffer.shape, dtype=torch.int64, device=dev)
        self.model = model
        self._load(points, plan)
        stream = torch.cuda.Stream(dev)
        stream.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(stream):
            for _ in range(2):  # compile Triton kernels, settle the allocator
                model._forward_plan(self.points, self.plan_buf, plan)
        torch.cuda.current_stream(dev).wait_stream(stream)
        if model._graph_pool is None:
            # a fresh pool whenever all graphs were dropped: capturing into a pool whose graphs are all
            # gone fails (the allocator keeps it, unused, until empty_cache), and a failed capture
            # leaves torch's CUDA RNG unusable for the rest of the process (seen on the H100)
            model._graph_pool = torch.cuda.graph_pool_handle()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=model._graph_pool):
            self.out = model._forward_plan(self.points, self.plan_buf, plan)
        log.info('captured an encoder CUDA graph for %s', caps)

    def _load(self, points: torch.Tensor, plan: Plan) -> None:
        self.points[:points.shape[0]].copy_(points, non_blocking=True)
        self.model._staging.upload(plan.int_buffer, self.plan_buf.device, slot=1, out=self.plan_buf)

    def __call__(self, points: torch.Tensor, plan: Plan) -> torch.Tensor:
        self._load(points, plan)
        self.graph.replay()
        return self.out.clone()


class _Staging:
    """Reused pinned host buffers for host-to-device copies (pinning per call costs more than the copy).
    A buffer is rewritten only after the copy that last read it has finished."""

    def __init__(self) -> None:
        self._host: dict[int, torch.Tensor] = {}
        self._done: dict[int, torch.cuda.Event] = {}

    def upload(self, array: np.ndarray, device: torch.device, slot: int = 0,
               out: torch.Tensor | None = None) -> torch.Tensor:
        """numpy array -> tensor on device (or copied into `out`, a device tensor of its size)."""
        src = torch.from_numpy(np.ascontiguousarray(array))
        device = out.device if out is not None else device
        if device.type != 'cuda':
            return out.copy_(src) if out is not None else src.to(device)
        nbytes = src.numel() * src.element_size()
        if slot in self._done:
            self._done[slot].synchronize()
        host = self._host.get(slot)
        if host is None or host.numel() < nbytes:
            with torch.inference_mode(False):  # rewritten in place later, in or out of inference mode
                host = torch.empty(max(nbytes, 1 << 20), dtype=torch.uint8).pin_memory()
            self._host[slot] = host
        view = host[:nbytes].view(src.dtype).view(src.shape)
        view.copy_(src)
        if out is None:
            out = view.to(device, non_blocking=True)
        else:
            out.copy_(view, non_blocking=True)
        self._done[slot] = torch.cuda.Event()
        self._done[slot].record()
        return out
