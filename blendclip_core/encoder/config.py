"""Encoder architecture as data: a frozen dataclass read from model_configs/*.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EncoderConfig:
    """PointBERT-style point encoder (see ../shared/notes/method.md, 'Model')."""

    name: str = 'custom'
    in_channels: int = 3  # xyz first; extra channels (e.g. intensity) follow
    embed_dim: int = 512  # output width = the CLIP text/image space (512 for ViT-B-16, 384 for MiniLM)
    width: int = 384  # transformer width (PointBERT trans_dim)
    depth: int = 12  # transformer blocks
    num_heads: int = 6
    mlp_ratio: float = 4.0
    drop_path: float = 0.1  # stochastic depth at the last block, linear from 0 at the first
    group_size: int = 32  # points per patch (kNN)
    tokenizer_hidden: int = 128  # mini-PointNet first layer
    tokenizer_local: int = 256  # mini-PointNet per-point feature before the first max-pool
    tokenizer_hidden2: int = 512  # mini-PointNet second-stage hidden width
    encoder_dim: int = 256  # patch feature width before reduce_dim
    pos_hidden: int = 128  # positional MLP hidden width
    patch_ratio: float = 2.0  # patches k = floor(patch_ratio * N / group_size), clamped below
    min_patches: int = 1
    max_patches: int = 512
    max_points: int = 8192  # larger objects are FPS-down-sampled to this many points first
    fps_start: str = 'farthest'  # 'farthest' (from the centroid: order-invariant) or 'first' (index 0)
    ln_eps: float = 1e-5
    # The detector's box size as its own input: the last 3 of in_channels are the box l/w/h / 10 m on
    # every point (normalization.append_box_size; the pipeline and the trainer add them). Off: xyz (+ the
    # cloud's extra columns) only, as every checkpoint before it.
    box_size_input: bool = False

    def __post_init__(self) -> None:
        if self.width % self.num_heads:
            raise ValueError(f'width {self.width} not divisible by num_heads {self.num_heads}')
        if self.in_channels < 3:
            raise ValueError('in_channels must be >= 3 (xyz first)')
        if self.box_size_input and self.in_channels < 6:
            raise ValueError('box_size_input needs in_channels >= 6 (xyz + box l/w/h)')
        if self.fps_start not in ('farthest', 'first'):
            raise ValueError(f"fps_start must be 'farthest' or 'first', got {self.fps_start!r}")
        if not 1 <= self.min_patches <= self.max_patches:
            raise ValueError('need 1 <= min_patches <= max_patches')

    def num_patches(self, num_points: int) -> int:
        """Dynamic patch count for one object (0 for an empty object)."""
        if num_points <= 0:
            return 0
        k = int(self.patch_ratio * min(num_points, self.max_points) // self.group_size)
        return max(self.min_patches, min(self.max_patches, k))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], **overrides: Any) -> EncoderConfig:
        known = {f.name for f in fields(cls)}
        merged = {**d, **overrides}
        unknown = set(merged) - known
        if unknown:
            raise ValueError(f'unknown encoder config keys: {sorted(unknown)}')
        return cls(**merged)

    @classmethod
    def from_json(cls, path: str | Path, **overrides: Any) -> EncoderConfig:
        d = json.loads(Path(path).read_text())
        d = {k: v for k, v in d.items() if not k.startswith('_')}  # '_comment' keys
        d.setdefault('name', Path(path).stem)
        return cls.from_dict(d, **overrides)

    def replace(self, **overrides: Any) -> EncoderConfig:
        return replace(self, **overrides)
