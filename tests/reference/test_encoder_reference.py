"""Our encoder is the reference PointBERT: its `PointTransformer` inside `ULIP2_WITH_OPENCLIP` with
random weights, saved as a ULIP-2/BlendCLIP training checkpoint, loaded through our loader."""

from __future__ import annotations

import argparse
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

from blendclip_core.checkpoint import load_checkpoint
from blendclip_core.encoder import get_config
from blendclip_core.normalization import normalize_objects
from blendclip_core.types import ObjectBatch

# ULIP's models/pointbert/PointTransformer_8192point.yaml (`model:`), which the reference's
# ULIP2_PointBERT reads; the snapshot leaves the yaml out, so its values are written here.
ULIP_POINTBERT = {'trans_dim': 384, 'depth': 12, 'drop_path_rate': 0.1, 'cls_dim': 40, 'num_heads': 6,
                  'group_size': 32, 'num_group': 512, 'encoder_dims': 256}
NPOINTS = 8192  # the reference's npoints and its collate's padded size (customized_collate_fn)
SIZES = (40, 57, 211, 1000, 8192)


def box_objects(rng: np.random.Generator, sizes: tuple[int, ...]) -> list[np.ndarray]:
    """LiDAR-like objects: points near the faces of boxes of different shapes."""
    objs = []
    for n in sizes:
        half = rng.uniform(0.3, 3.0, 3)
        pts = rng.uniform(-half, half, (n, 3))
        face = rng.integers(0, 3, n)
        pts[np.arange(n), face] = half[face] * rng.choice([-1.0, 1.0], n)
        objs.append((pts + rng.normal(0.0, 0.02, (n, 3))).astype(np.float32))
    return objs


def _randomise(model: nn.Module, seed: int) -> None:
    """Random norms, BatchNorm statistics and tokens on top of the random default initialisation."""
    g = torch.Generator().manual_seed(seed)

    def rand(t: torch.Tensor, scale: float, shift: float = 0.0) -> torch.Tensor:
        return shift + scale * torch.randn(t.shape, generator=g)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.LayerNorm, nn.BatchNorm1d)):
                m.weight.copy_(rand(m.weight, 0.2, 1.0))
                m.bias.copy_(rand(m.bias, 0.1))
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.copy_(rand(m.running_mean, 0.1))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
        model.point_encoder.cls_token.copy_(rand(model.point_encoder.cls_token, 0.02))


def _reference_model(reference: types.SimpleNamespace) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        config = types.SimpleNamespace(**ULIP_POINTBERT)
        pt = reference.point_encoder.PointTransformer(config, args=types.SimpleNamespace(evaluate_3d=True))
        model = reference.ULIP_models.ULIP2_WITH_OPENCLIP(point_encoder=pt, pc_feat_dims=768,
                                                          open_clip_model=None)
    _randomise(model, seed=1)
    return model.eval()


def _save_ulip_checkpoint(model: nn.Module, path: Path) -> Path:
    """As ULIP's main.py saves under DDP: 'module.'-prefixed keys, args as a Namespace; a released
    checkpoint also holds the frozen CLIP towers (one stand-in key here)."""
    state = {f'module.{k}': v.clone() for k, v in model.state_dict().items()}
    state['module.open_clip_model.visual.proj'] = torch.zeros(4, 4)
    torch.save({'epoch': 1, 'state_dict': state, 'best_acc': 0.0,
                'args': argparse.Namespace(model='ULIP2_PointBERT', npoints=NPOINTS)}, path)
    return path


def _reference_embed(model: nn.Module, batch: ObjectBatch) -> torch.Tensor:
    """The reference input: each object padded with +inf rows to npoints (its collate)."""
    padded = torch.full((len(batch), NPOINTS, 3), float('inf'))
    for i in range(len(batch)):
        padded[i, :batch.counts[i]] = torch.from_numpy(batch.object(i)[:, :3])
    with torch.no_grad():
        return model.encode_pc(padded)


def test_architecture_is_the_reference_yaml():
    c = get_config('pointbert-s')
    ours = {'trans_dim': c.width, 'depth': c.depth, 'drop_path_rate': c.drop_path, 'num_heads': c.num_heads,
            'group_size': c.group_size, 'num_group': c.max_patches, 'encoder_dims': c.encoder_dim}
    assert ours == {k: v for k, v in ULIP_POINTBERT.items() if k != 'cls_dim'}  # cls_dim: unused head
    assert (c.patch_ratio, c.min_patches, c.max_points) == (2.0, 1, NPOINTS)  # GroupDynamic k_i, npoints


def test_reference_checkpoint_through_our_loader_gives_the_same_embeddings(reference, rng, tmp_path):
    ref_model = _reference_model(reference)
    ours, card = load_checkpoint(_save_ulip_checkpoint(ref_model, tmp_path / 'blendclip_ulip2.pt'))
    assert card.embed_dim == 512 and ours.config.depth == 12
    batch = normalize_objects(ObjectBatch.from_list(box_objects(rng, SIZES)), 'unit_sphere', NPOINTS)
    assert tuple(batch.counts) == SIZES
    expected = _reference_embed(ref_model, batch)
    with torch.no_grad():
        got = ours.encode(batch, device='cpu')
    cos = torch.nn.functional.cosine_similarity(got, expected, dim=-1)
    assert cos.min() >= 0.99999, cos
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
