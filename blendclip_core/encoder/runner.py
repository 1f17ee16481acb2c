"""The host side of an encoder call and the grouping pre-step, shared by the eager model and exported ones.

An encoder call is two parts of different kinds:
- host and data-dependent: input checks, zero rows for empty objects, FPS down-sampling of objects
  over max_points, the host plan (`packing.make_plan`: every size and index from the point counts)
  and grouping (FPS/kNN: a loop of k_max steps, k_max read from the data). None of it is a fixed graph;
- the network after grouping (`PatchInputs` -> (n, embed_dim)): tokenizer, transformer, pooling and
  projection, whose sizes all come from its input tensors' shapes, so torch.export traces it once with
  symbolic sizes.
`PackedRunner` holds the first part; a subclass supplies the second (`_embed_plan`): PointEncoder with
its modules, blendclip_core.export's ExportedEncoder with an AOTInductor or ONNX Runtime program.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from blendclip_core.encoder.config import EncoderConfig
from blendclip_core.encoder.grouping import farthest_point_sample, knn_group
from blendclip_core.encoder.packing import DevicePlan, Plan, make_plan
from blendclip_core.types import ObjectBatch


@dataclass
class PatchInputs:
    """What the network after grouping reads (the exported graph's inputs, in this order).
    n objects, P patches, T = n + P token rows, K patches of the largest object, L = K + 1."""

    patches: torch.Tensor  # (P, G, C) float: points of each patch, xyz relative to its centre
    centres: torch.Tensor  # (P, 3) float: centre xyz of each patch
    order: torch.Tensor  # (T,) int64: row of cat([cls tokens (n), patch tokens (P)]) for each token row
    cls_rows: torch.Tensor  # (n,) int64: token row of each object's CLS token
    pool_index: torch.Tensor  # (n, K) int64: token rows of each object's patches (repeats where unused)
    pad_index: torch.Tensor  # (n, L) int64: token row of each padded attention position
    pad_valid: torch.Tensor  # (n, L) bool: real positions (the attention key mask)
    pad_flat: torch.Tensor  # (T,) int64: flat positions of the real entries of (n, L), row-major

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, name) for name in self.names())


def group_patches(points: torch.Tensor, dp: DevicePlan, config: EncoderConfig,
                  backend: str = 'auto') -> PatchInputs:
    """The grouping pre-step on packed points: FPS centres, kNN patches, centred patch points."""
    c, caps = config, dp.caps
    centres = farthest_point_sample(points, dp.offsets, dp.k, caps.k_max, caps.n_max, c.fps_start, backend)
    groups = knn_group(points, dp.offsets, centres, dp.k, c.group_size, caps.n_max, backend)
    centre_rows = centres.view(-1)[dp.sel]  # (P,)
    group_rows = groups.view(-1, c.group_size)[dp.sel]  # (P, G)
    centre_xyz = points[centre_rows, :3]
    patches = points[group_rows]  # (P, G, C)
    rel = patches[..., :3] - centre_xyz[:, None, :]
    patches = torch.cat([rel, patches[..., 3:]], -1) if c.in_channels > 3 else rel
    s = dp.seqs
    return PatchInputs(patches, centre_xyz, dp.order, dp.cls_rows, dp.pool_index, s.pad_index, s.pad_valid,
                       s.pad_flat)


class PackedRunner:
    """ObjectBatch -> (B, embed_dim) around a network supplied by `_embed_plan`. Subclasses set
    `config`, `grouping_backend` ('auto' | 'torch' | 'triton') and `_staging`, and define `device`."""

    config: EncoderConfig
    grouping_backend: str
    device: torch.device

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    @property
    def in_channels(self) -> int:
        return self.config.in_channels

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
        return self._run_eager(points, counts)

    def _run_eager(self, points: torch.Tensor, counts: np.ndarray) -> torch.Tensor:
        plan = make_plan(counts, self.config)
        buf = self._staging.upload(plan.int_buffer, points.device, slot=1)
        return self._forward_plan(points, buf, plan)[:plan.n]

    def _forward_plan(self, points: torch.Tensor, plan_buf: torch.Tensor, plan: Plan) -> torch.Tensor:
        """Everything on the device for one plan: (caps.n, embed_dim). Reads sizes only from plan.caps
        and indices only from plan_buf, so a CUDA graph of it serves every plan with the same caps."""
        dp = DevicePlan.from_buffer(plan_buf, plan)
        return self._embed_plan(group_patches(points, dp, self.config, self.grouping_backend), dp)

    def _embed_plan(self, inputs: PatchInputs, dp: DevicePlan) -> torch.Tensor:
        """The network after grouping: PatchInputs -> (n, embed_dim)."""
        raise NotImplementedError


class Staging:
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
