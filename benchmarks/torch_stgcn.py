"""PyTorch ST-GCN / AM-STGCN used as the baseline of the side-by-side benchmark.

Written from `../shared/parity/NOTES.md` §1 (the semantics of yysijie/st-gcn
`net/st_gcn.py` + `net/utils/tgcn.py` at commit 221c0e152054b8da593774c0d483e59befdb9061),
not copied from it. Module names reproduce the upstream state_dict keys exactly
(`A`, `data_bn.*`, `st_gcn_networks.{i}.gcn.conv.*`, `...tcn.{0,2,3}.*`,
`...residual.{0,1}.*`, `edge_importance.{i}`, `fcn.*`), so an upstream checkpoint loads with
`load_state_dict(strict=True)`. The formulation is the upstream one on purpose (NCTV layout,
1x1 conv to K*C, `einsum('nkctv,kvw->nctw')`, (9,1) Conv2d): the baseline is what a PyTorch
user of the reference code runs, not a hand-tuned variant.

The AM-STGCN non-local attention block mirrors `amstgcn_jax/attention.py` (the Flax module is
the specification; this file follows it) so the benchmark times the same architecture on both
sides. torch is an optional extra: nothing in `amstgcn_jax` imports this file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# (in, out, stride, residual) of the ten upstream blocks (NOTES.md §1 table).
BLOCK_SPECS = (
    (None, 64, 1, False),
    (64, 64, 1, True),
    (64, 64, 1, True),
    (64, 64, 1, True),
    (64, 128, 2, True),
    (128, 128, 1, True),
    (128, 128, 1, True),
    (128, 256, 2, True),
    (256, 256, 1, True),
    (256, 256, 1, True),
)
TEMPORAL_KERNEL = 9


class GraphConv(nn.Module):
    """`ConvTemporalGraphical`: 1x1 conv to K*out channels (K-major), then sum over k and v."""

    def __init__(self, in_channels: int, out_channels: int, num_subsets: int):
        super().__init__()
        self.num_subsets = num_subsets
        self.conv = nn.Conv2d(in_channels, out_channels * num_subsets, kernel_size=1)

    def forward(self, x_NCTV: torch.Tensor, adj_KVV: torch.Tensor) -> torch.Tensor:
        y = self.conv(x_NCTV)
        n, kc, t, v = y.shape
        y = y.view(n, self.num_subsets, kc // self.num_subsets, t, v)
        return torch.einsum("nkctv,kvw->nctw", y, adj_KVV).contiguous()


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block (Wang et al. 2018), as `amstgcn_jax.attention`.

    θ/φ/g are 1x1 convs (with bias) to `int(C * inner_ratio)` channels; φ and g are max-pooled
    (ceil mode, so no joint is dropped) by a `pool_size` window: (1, s) over the joints of each
    frame in "spatial" mode, (s, 1) over the frames of each joint in "temporal" mode, (s, s)
    over (T, V) in "spatiotemporal" mode. softmax(θ φᵀ) has no 1/sqrt(d) scaling. The output
    1x1 conv is followed by BatchNorm with scale and bias starting at zero (identity at init),
    then the residual add. Names (`theta`, `phi`, `g`, `out`, `bn`) are the keys
    `amstgcn_jax.convert` writes for `attn_conv{s,t}{j}`.
    """

    def __init__(self, channels: int, mode: str = "spatiotemporal", inner_ratio: float = 0.5,
                 pool_size: int = 2):
        super().__init__()
        if mode not in ("spatial", "temporal", "spatiotemporal"):
            raise ValueError(f"NonLocalBlock: unknown mode {mode!r}")
        inner = max(1, int(channels * inner_ratio))
        self.mode = mode
        s = pool_size
        self.window = {"spatial": (1, s), "temporal": (s, 1), "spatiotemporal": (s, s)}[mode]
        self.theta = nn.Conv2d(channels, inner, kernel_size=1)
        self.phi = nn.Conv2d(channels, inner, kernel_size=1)
        self.g = nn.Conv2d(channels, inner, kernel_size=1)
        self.out = nn.Conv2d(inner, channels, kernel_size=1)
        self.bn = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def _seq(self, z_NCTV):
        """(n, c, t, v) -> attention sequences (batch', positions, c)."""
        n, c, t, v = z_NCTV.shape
        if self.mode == "spatial":
            return z_NCTV.permute(0, 2, 3, 1).reshape(n * t, v, c)
        if self.mode == "temporal":
            return z_NCTV.permute(0, 3, 2, 1).reshape(n * v, t, c)
        return z_NCTV.flatten(2).transpose(1, 2)

    def forward(self, x_NCTV: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x_NCTV.shape
        q = self.theta(x_NCTV)
        k, g = self.phi(x_NCTV), self.g(x_NCTV)
        if self.window != (1, 1):
            k = F.max_pool2d(k, self.window, self.window, ceil_mode=True)
            g = F.max_pool2d(g, self.window, self.window, ceil_mode=True)
        y = F.scaled_dot_product_attention(self._seq(q), self._seq(k), self._seq(g), scale=1.0)
        inner = y.shape[-1]
        if self.mode == "spatial":
            y = y.view(n, t, v, inner).permute(0, 3, 1, 2)
        elif self.mode == "temporal":
            y = y.view(n, v, t, inner).permute(0, 3, 2, 1)
        else:
            y = y.transpose(1, 2).reshape(n, inner, t, v)
        return x_NCTV + self.bn(self.out(y))


class STGCNBlock(nn.Module):
    """`st_gcn` block: gcn -> BN -> ReLU -> conv(9,1) -> BN -> Dropout, + residual, ReLU.

    `attention` holds `(where, options)` pairs, where "convs" inserts a non-local block after
    the spatial graph conv (before tcn) and "convt" after the whole tcn (after its Dropout,
    before the residual add), as the paper's "ConvS + n" / "ConvT + n" and our Flax
    `STGCNBlock`. The default mode is per-frame ("spatial") after ConvS and over all T*V
    positions ("spatiotemporal") after ConvT; `options` may override mode / inner_ratio /
    pool_size.
    """

    def __init__(self, in_channels, out_channels, num_subsets, stride, residual, dropout,
                 attention: Sequence[tuple[str, dict]] = ()):
        super().__init__()
        pad = (TEMPORAL_KERNEL - 1) // 2
        self.gcn = GraphConv(in_channels, out_channels, num_subsets)
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, (TEMPORAL_KERNEL, 1), (stride, 1), (pad, 0)),
            nn.BatchNorm2d(out_channels),
            nn.Dropout(dropout, inplace=True),
        )
        if not residual:
            self.residual = None
            self.residual_kind = "none"
        elif in_channels == out_channels and stride == 1:
            self.residual = None
            self.residual_kind = "identity"
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=(stride, 1)),
                nn.BatchNorm2d(out_channels),
            )
            self.residual_kind = "conv"
        def make(where, options):
            options = dict(options)
            options.setdefault("mode", "spatial" if where == "convs" else "spatiotemporal")
            return NonLocalBlock(out_channels, **options)

        self.attn_convs = nn.ModuleList(make(w, o) for w, o in attention if w == "convs")
        self.attn_convt = nn.ModuleList(make(w, o) for w, o in attention if w == "convt")

    def forward(self, x_NCTV, adj_KVV):
        if self.residual_kind == "none":
            res = 0
        elif self.residual_kind == "identity":
            res = x_NCTV
        else:
            res = self.residual(x_NCTV)
        y = self.gcn(x_NCTV, adj_KVV)
        for blk in self.attn_convs:
            y = blk(y)
        y = self.tcn(y)
        for blk in self.attn_convt:
            y = blk(y)
        return F.relu(y + res)


class STGCN(nn.Module):
    """`net.st_gcn.Model` (10 blocks) with optional non-local blocks at chosen layers.

    `adj_KVV` is the graph buffer `A` (float32 (K, V, V)); take it from a checkpoint or from
    `amstgcn_jax.graph.build_adjacency`. `attention` maps the block index (0-based, as
    `st_gcn_networks`) to `(where, options)` pairs, e.g. `{3: [("convt", {})] * 3}` for the
    paper's "ST-GCN_3's ConvT + 3" (paper layer L is block L, see `amstgcn_jax.model`).
    """

    def __init__(self, adj_KVV, num_classes: int, in_channels: int = 3, dropout: float = 0.0,
                 edge_importance: bool = True,
                 attention: dict[int, Sequence[tuple[str, dict]]] | None = None):
        super().__init__()
        adj = torch.as_tensor(np.asarray(adj_KVV, dtype=np.float32))
        self.register_buffer("A", adj)
        k, v, _ = adj.shape
        attention = attention or {}
        self.data_bn = nn.BatchNorm1d(in_channels * v)
        blocks = []
        for i, (cin, cout, stride, residual) in enumerate(BLOCK_SPECS):
            blocks.append(STGCNBlock(
                in_channels if cin is None else cin, cout, k, stride, residual,
                0.0 if i == 0 else dropout, attention.get(i, ())))
        self.st_gcn_networks = nn.ModuleList(blocks)
        if edge_importance:
            self.edge_importance = nn.ParameterList(
                nn.Parameter(torch.ones(adj.shape)) for _ in blocks)
        else:
            self.edge_importance = None
        self.fcn = nn.Conv2d(256, num_classes, kernel_size=1)

    def features(self, x_NCTVM: torch.Tensor) -> torch.Tensor:
        """data_bn + blocks; returns the last block output (N*M, 256, T', V)."""
        n, c, t, v, m = x_NCTVM.shape
        x = x_NCTVM.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)  # channel index v*C + c
        x = self.data_bn(x)
        x = x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
        for i, block in enumerate(self.st_gcn_networks):
            adj = self.A if self.edge_importance is None else self.A * self.edge_importance[i]
            x = block(x, adj)
        return x

    def forward(self, x_NCTVM: torch.Tensor) -> torch.Tensor:
        n, m = x_NCTVM.shape[0], x_NCTVM.shape[-1]
        x = self.features(x_NCTVM)
        x = x.mean(dim=(2, 3)).view(n, m, -1).mean(dim=1)  # avg pool over (T', V), then over M
        return self.fcn(x[:, :, None, None]).flatten(1)


def load_numpy_state_dict(model: nn.Module, state: dict[str, np.ndarray], strict=True):
    """Loads a `{key: np.ndarray}` state_dict (e.g. from `amstgcn_jax.convert.flax_to_torch`)."""
    tensors = {k: torch.as_tensor(np.array(v)) for k, v in state.items()}
    own = model.state_dict()
    for key in own:
        if key.endswith("num_batches_tracked") and key not in tensors:
            tensors[key] = torch.zeros((), dtype=torch.int64)
    return model.load_state_dict(tensors, strict=strict)
