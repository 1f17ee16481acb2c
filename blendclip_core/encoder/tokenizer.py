"""Mini-PointNet patch embedding (PointBERT's `Encoder`), channel-last on packed patches.

Patches come as (P, G, C): only real patches, so BatchNorm statistics never see padding and no
transposes are needed. Layer names mirror ULIP-2/PointBERT (first_conv.0/1/3, second_conv.0/1/3)
with Linear in place of 1x1 Conv1d. In eval mode BatchNorm is folded into the linear layer before it,
and the second stage's concat(global, local) is computed as two products (the global half once per
patch), which halves that layer's work and skips the concat.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from blendclip_core.encoder.fused import add_rows_relu_
from blendclip_core.encoder.transformer import Linear


def _fold(linear: nn.Linear, bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights of linear followed by eval-mode batch norm, as one affine map."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return linear.weight * scale[:, None], (linear.bias - bn.running_mean) * scale + bn.bias


def _autocast_dtype(x: torch.Tensor) -> torch.dtype:
    if x.is_cuda and torch.is_autocast_enabled('cuda'):
        return torch.get_autocast_dtype('cuda')
    return x.dtype


class PatchEmbed(nn.Module):
    def __init__(self, in_channels: int, hidden: int, local: int, hidden2: int, out_dim: int) -> None:
        super().__init__()
        self.local = local
        self.first_conv = nn.Sequential(nn.Linear(in_channels, hidden), nn.BatchNorm1d(hidden),
                                        nn.ReLU(inplace=True), Linear(hidden, local))
        self.second_conv = nn.Sequential(nn.Linear(2 * local, hidden2), nn.BatchNorm1d(hidden2),
                                         nn.ReLU(inplace=True), Linear(hidden2, out_dim))
        self._folded: tuple | None = None
        self._folded_key: tuple | None = None

    def _eval_weights(self, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """Folded weights (in the autocast dtype), recomputed only when a parameter or buffer changed.
        While torch.export traces (fake tensors: no data pointers to key a cache on) they are computed
        in the graph, from the weights it holds."""
        if torch.compiler.is_compiling():
            return self._folded_weights(dtype)
        tensors = (*self.first_conv[0].parameters(), *self.first_conv[1].parameters(),
                   self.first_conv[1].running_mean, self.first_conv[1].running_var,
                   *self.second_conv[0].parameters(), *self.second_conv[1].parameters(),
                   self.second_conv[1].running_mean, self.second_conv[1].running_var)
        key = (dtype, *((t.data_ptr(), t._version) for t in tensors))
        if key != self._folded_key:
            with torch.no_grad():
                self._folded = self._folded_weights(dtype)
            self._folded_key = key
        return self._folded

    def _folded_weights(self, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """(w1, b1, w2 global half, w2 local half, b2): BatchNorm folded into the layers before it."""
        w1, b1 = _fold(self.first_conv[0], self.first_conv[1])
        w2, b2 = _fold(self.second_conv[0], self.second_conv[1])
        parts = (w1, b1, w2[:, :self.local], w2[:, self.local:], b2)
        return tuple(t.to(dtype).contiguous() for t in parts)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """(P, G, C) points of each patch, xyz relative to its centre -> (P, out_dim)."""
        p, g, c = patches.shape
        x = patches.reshape(p * g, c)
        w2 = self.second_conv[0].weight
        if self.training or torch.is_grad_enabled():
            h = F.relu(self.first_conv[1](self.first_conv[0](x)))
            f = self.first_conv[3](h).view(p, g, -1)
            glob = f.amax(1)
            h2 = F.linear(f, w2[:, self.local:]) + F.linear(glob, w2[:, :self.local],
                                                             self.second_conv[0].bias)[:, None]
            h2 = F.relu(self.second_conv[1](h2.reshape(p * g, -1)))
        else:
            w1, b1, w2g, w2l, b2 = self._eval_weights(_autocast_dtype(patches))
            x = x.to(w1.dtype)
            f = self.first_conv[3](F.relu(F.linear(x, w1, b1))).view(p, g, -1)
            glob = f.amax(1)
            h2 = add_rows_relu_(F.linear(f, w2l), F.linear(glob, w2g, b2))
        out = self.second_conv[3](h2).view(p, g, -1)
        return out.amax(1)
