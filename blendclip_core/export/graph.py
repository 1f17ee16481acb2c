"""The exported graph: the encoder's network after grouping, traced once with symbolic sizes.

What is exported is `PointEncoder.embed_patches` (tokenizer, transformer, pooling, projection) over
`PatchInputs` (blendclip_core.encoder.runner): eight tensors whose shapes carry every size (objects n,
patches P, token rows T, patches of the largest object K, attention length L). Grouping (FPS/kNN) and
the host plan stay outside as the pre-step the loader runs (docs/deploy.md says why).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.export import Dim

from blendclip_core.encoder import PointEncoder
from blendclip_core.encoder.packing import DevicePlan, make_plan
from blendclip_core.encoder.runner import PatchInputs, group_patches
from blendclip_core.encoder.transformer import Sequences

OPSET = 18
MAX_OBJECTS = 65536  # objects per call the exported graph accepts (a frame holds at most 2,048)
MAX_PATCHES = 1 << 22  # patches per call
SAMPLE_COUNTS = (3, 40, 300, 1000, 2500)  # the frame torch.export traces with (sizes >= 2 stay symbolic)


class ExportHead(nn.Module):
    """PatchInputs (as eight tensors) -> (n, embed_dim): the part of PointEncoder that is exported.
    Attention is the padded kind with a key mask (variable-length flash attention is a CUDA kernel
    the exporters do not take); the fused Triton passes step aside while tracing (their torch twins are
    exported, and the exporters' compilers fuse them again)."""

    def __init__(self, encoder: PointEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, patches: torch.Tensor, centres: torch.Tensor, order: torch.Tensor,
                cls_rows: torch.Tensor, pool_index: torch.Tensor, pad_index: torch.Tensor,
                pad_valid: torch.Tensor, pad_flat: torch.Tensor) -> torch.Tensor:
        seqs = Sequences(cu=None, max_len=pad_index.shape[1], pad_index=pad_index, pad_valid=pad_valid,
                         pad_flat=pad_flat, token_obj=None, use_varlen=False)
        return self.encoder.embed_patches(patches, centres, order, cls_rows, pool_index, seqs)


def sample_inputs(encoder: PointEncoder, device: torch.device | str = 'cpu') -> PatchInputs:
    """PatchInputs of a small fixed frame of random objects (the tracing example)."""
    rng = np.random.default_rng(0)
    counts = np.array(SAMPLE_COUNTS)
    points = torch.from_numpy(rng.normal(size=(int(counts.sum()), encoder.in_channels)).astype(np.float32))
    plan = make_plan(counts, encoder.config)
    dp = DevicePlan.from_buffer(torch.from_numpy(plan.int_buffer).to(device), plan)
    return group_patches(points.to(device), dp, encoder.config, 'torch')


def dynamic_shapes(encoder: PointEncoder) -> dict[str, dict[int, Dim]]:
    """Symbolic sizes of the eight inputs; their ranges are what the artefact accepts."""
    k_max = encoder.config.max_patches
    n = Dim('n', min=1, max=MAX_OBJECTS)
    p = Dim('P', min=1, max=MAX_PATCHES)
    t = Dim('T', min=2, max=MAX_OBJECTS + MAX_PATCHES)
    k = Dim('K', min=1, max=k_max)
    length = Dim('L', min=2, max=k_max + 1)
    return {'patches': {0: p}, 'centres': {0: p}, 'order': {0: t}, 'cls_rows': {0: n},
            'pool_index': {0: n, 1: k}, 'pad_index': {0: n, 1: length}, 'pad_valid': {0: n, 1: length},
            'pad_flat': {0: t}}


def shape_limits(encoder: PointEncoder) -> dict[str, list[int]]:
    """[min, max] of each symbolic size, for the manifest and the loader's checks."""
    return {'n': [1, MAX_OBJECTS], 'P': [1, MAX_PATCHES], 'K': [1, encoder.config.max_patches]}


def export_program(encoder: PointEncoder, device: torch.device | str = 'cpu') -> torch.export.ExportedProgram:
    """torch.export of ExportHead in float32 inference (no grad: the folded tokenizer path)."""
    head = ExportHead(encoder.to(device).eval()).eval()
    with torch.no_grad():
        return torch.export.export(head, sample_inputs(encoder, device).tensors(),
                                   dynamic_shapes=dynamic_shapes(encoder))


def compile_aoti(program: torch.export.ExportedProgram, path: Path, metadata: dict[str, str]) -> Path:
    """AOTInductor package (.pt2) for the program's device, with `metadata` readable at load."""
    out = torch._inductor.aoti_compile_and_package(
        program, package_path=str(path), inductor_configs={'aot_inductor.metadata': dict(metadata)})
    return Path(out)


def write_onnx(program: torch.export.ExportedProgram, encoder: PointEncoder, path: Path,
               metadata: dict[str, str], opset: int = OPSET) -> Path:
    """One self-contained .onnx file (weights inside) with `metadata` in its metadata_props."""
    onnx_program = torch.onnx.export(program, sample_inputs(encoder).tensors(), dynamo=True,
                                     opset_version=opset, input_names=list(PatchInputs.names()),
                                     output_names=['embeddings'], dynamic_shapes=dynamic_shapes(encoder),
                                     verbose=False)
    onnx_program.model.metadata_props.update(metadata)
    onnx_program.save(str(path), external_data=False)
    return path
