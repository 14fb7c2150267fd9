"""PyTorch 2s-AGCN (one stream) used as the baseline of the side-by-side benchmark
(`train_step_benchmark.py --backbone agcn`).

Written from `../shared/parity-agcn/NOTES.md` §1 (the semantics of lshiwjx/2s-AGCN
`model/agcn.py` at commit 953c14fc), not copied from it. Module names reproduce the upstream
state_dict keys (`data_bn.*`, `l{i}.gcn1.{PA,conv_a,conv_b,conv_d,down,bn}.*`,
`l{i}.tcn1.{conv,bn}.*`, `l{i}.residual.{conv,bn}.*`, `fc.*`), so the state_dict of
`amstgcn_jax.agcn_convert.flax_to_torch` (and an upstream checkpoint) loads with
`load_state_dict(strict=True)`. The formulation is the upstream one on purpose (NCTV layout, a
Python loop over the K subsets with two `matmul`s each, (9, 1) Conv2d): the baseline is what a
PyTorch user of the reference code runs. The one change is the one the parity fixtures were made
with: the graph `A` follows the input's device instead of `.cuda()`. torch is an optional extra:
nothing in `amstgcn_jax` imports this file.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

# (out channels, temporal stride, block residual) of upstream l1 ... l10 (NOTES.md §1 table).
BLOCKS = ((64, 1, False), (64, 1, True), (64, 1, True), (64, 1, True), (128, 2, True),
          (128, 1, True), (128, 1, True), (256, 2, True), (256, 1, True), (256, 1, True))
COFF_EMBEDDING = 4


def _identity(x):
    return x


def _zero(x):
    return 0


class UnitTCN(nn.Module):
    """`unit_tcn`: Conv2d((k, 1), padding ((k-1)//2, 0), stride (s, 1)) + BatchNorm2d, no ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 9,
                 stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, (kernel_size, 1),
                              padding=((kernel_size - 1) // 2, 0), stride=(stride, 1))
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x_NCTV):
        return self.bn(self.conv(x_NCTV))


class UnitGCN(nn.Module):
    """`unit_gcn`: `ReLU(BN(Σ_k conv_d[k](x · (A_k + PA_k + C_k))) + down(x))` with
    `C_k = softmax_v(conv_a[k](x)ᵀ conv_b[k](x) / (C_e·T))`."""

    def __init__(self, in_channels: int, out_channels: int, adj_KVV: np.ndarray):
        super().__init__()
        self.inter_c = out_channels // COFF_EMBEDDING
        k = adj_KVV.shape[0]
        self.PA = nn.Parameter(torch.full(adj_KVV.shape, 1e-6, dtype=torch.float32))
        self.A = torch.as_tensor(np.asarray(adj_KVV, np.float32))  # not a buffer, as upstream
        self.conv_a = nn.ModuleList(nn.Conv2d(in_channels, self.inter_c, 1) for _ in range(k))
        self.conv_b = nn.ModuleList(nn.Conv2d(in_channels, self.inter_c, 1) for _ in range(k))
        self.conv_d = nn.ModuleList(nn.Conv2d(in_channels, out_channels, 1) for _ in range(k))
        if in_channels != out_channels:
            self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1),
                                      nn.BatchNorm2d(out_channels))
        else:
            self.down = _identity
        self.bn = nn.BatchNorm2d(out_channels)
        self.soft = nn.Softmax(-2)

    def forward(self, x_NCTV):
        n, c, t, v = x_NCTV.size()
        graph_KVV = self.A.to(x_NCTV.device) + self.PA
        y = None
        for k in range(len(self.conv_d)):
            a = self.conv_a[k](x_NCTV).permute(0, 3, 1, 2).contiguous().view(
                n, v, self.inter_c * t)
            b = self.conv_b[k](x_NCTV).view(n, self.inter_c * t, v)
            attn = self.soft(torch.matmul(a, b) / a.size(-1)) + graph_KVV[k]
            z = self.conv_d[k](torch.matmul(x_NCTV.view(n, c * t, v), attn).view(n, c, t, v))
            y = z if y is None else y + z
        y = self.bn(y)
        y = y + self.down(x_NCTV)
        return torch.relu(y)


class TCNGCNUnit(nn.Module):
    """`TCN_GCN_unit`: `relu(tcn1(gcn1(x)) + residual(x))`."""

    def __init__(self, in_channels: int, out_channels: int, adj_KVV: np.ndarray,
                 stride: int = 1, residual: bool = True):
        super().__init__()
        self.gcn1 = UnitGCN(in_channels, out_channels, adj_KVV)
        self.tcn1 = UnitTCN(out_channels, out_channels, stride=stride)
        if not residual:
            self.residual = _zero
        elif in_channels == out_channels and stride == 1:
            self.residual = _identity
        else:
            self.residual = UnitTCN(in_channels, out_channels, kernel_size=1, stride=stride)

    def forward(self, x_NCTV):
        return torch.relu(self.tcn1(self.gcn1(x_NCTV)) + self.residual(x_NCTV))


class AGCN(nn.Module):
    """`Model`: data BN over M·V·C channels, l1 … l10, mean over (T, V) then persons, fc."""

    def __init__(self, adj_KVV: np.ndarray, num_classes: int = 60, num_person: int = 2,
                 in_channels: int = 3):
        super().__init__()
        v = adj_KVV.shape[-1]
        self.data_bn = nn.BatchNorm1d(num_person * in_channels * v)
        widths = [in_channels] + [w for w, _, _ in BLOCKS]
        for i, (width, stride, residual) in enumerate(BLOCKS):
            setattr(self, f"l{i + 1}", TCNGCNUnit(widths[i], width, adj_KVV, stride, residual))
        self.fc = nn.Linear(BLOCKS[-1][0], num_classes)

    def forward(self, x_NCTVM):
        n, c, t, v, m = x_NCTVM.size()
        x = x_NCTVM.permute(0, 4, 3, 1, 2).contiguous().view(n, m * v * c, t)
        x = self.data_bn(x)
        x = x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).contiguous().view(n * m, c, t, v)
        for i in range(len(BLOCKS)):
            x = getattr(self, f"l{i + 1}")(x)
        x = x.view(n, m, x.size(1), -1).mean(3).mean(1)
        return self.fc(x)
