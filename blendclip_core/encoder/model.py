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
from blendclip_core.encoder.packing import Caps, DevicePlan, Plan, graph_caps, make_plan
from blendclip_core.encoder.runner import PackedRunner, PatchInputs, Staging
from blendclip_core.encoder.tokenizer import PatchEmbed
from blendclip_core.encoder.transformer import Block, LayerNorm, Linear, Sequences, run_blocks_fused

log = logging.getLogger(__name__)
MAX_GRAPHS = 64  # captured frame sizes kept per model


class PointEncoder(nn.Module, PackedRunner):
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
        self._staging = Staging()
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

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

    def enable_cuda_graphs(self, enabled: bool = True) -> None:
        """Replay captured CUDA graphs in inference (eval, no grad, CUDA): one capture per rounded
        frame size (see packing.graph_caps), kept until disabled."""
        self._graphs = {} if enabled else None
        self._graph_pool = None  # a fresh pool for the next capture (see _GraphRunner)

    # ------------------------------------------------------------------------------------- internals

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

    def _embed_plan(self, inputs: PatchInputs, dp: DevicePlan) -> torch.Tensor:
        dp.seqs.use_varlen = self.attention_varlen
        return self.embed_patches(inputs.patches, inputs.centres, inputs.order, inputs.cls_rows,
                                  inputs.pool_index, dp.seqs)

    def embed_patches(self, patches: torch.Tensor, centres: torch.Tensor, order: torch.Tensor,
                      cls_rows: torch.Tensor, pool_index: torch.Tensor, seqs: Sequences) -> torch.Tensor:
        """The network after grouping (see runner.PatchInputs): (n, embed_dim). Every size comes from
        the tensors' shapes, so torch.export traces it with symbolic sizes (blendclip_core.export)."""
        tokens = self.reduce_dim(self.tokenizer(patches))
        pos = self.pos_embed(centres)
        n = cls_rows.shape[0]
        x = torch.cat([self.cls_token[0].to(tokens.dtype).expand(n, -1), tokens])[order]
        pos = torch.cat([self.cls_pos[0].to(pos.dtype).expand(n, -1), pos])[order]
        if self._fused_inference(x):
            x = run_blocks_fused(self.blocks, self.norm, x, pos, seqs, self.gelu_epilogue)
        else:
            for blk in self.blocks:
                x = blk(x + pos, seqs)
            x = self.norm(x)
        feat = torch.cat([x[cls_rows], x[pool_index].amax(1)], -1)
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
