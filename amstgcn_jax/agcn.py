"""2s-AGCN one-stream backbone (adaptive graph convolution), Flax Linen, channels-last.

Mirrors `model/agcn.py` of https://github.com/lshiwjx/2s-AGCN at commit 953c14fc (forward pass
unchanged since d8f5ad2) with `graph/tools.py`, `graph/ntu_rgb_d.py`, `graph/kinetics.py`.
Semantics (checked against ../shared/parity-agcn): data BN over M*V*C channels ordered (m, v, c);
A is a constant built here (never in checkpoints); the adaptive graph is `A_k + PA_k + C_k` with
`C_k = softmax_v(theta_k^T phi_k / (C_e * T))` (divisor C_e*T, not its square root; softmax over
the source-joint axis); each `conv_d` is applied AFTER the aggregation; the unit has its own BN,
`down` residual and ReLU; the temporal unit is conv9x1 + BN without ReLU; persons are averaged
after the (T, V) mean, absent persons included.

Deliberate deviations: `l1` takes `in_channels` inputs (upstream hard-codes 3, so other widths
crash there); an optional dropout before `fc` (default 0, upstream has none); `blocks` can shrink
the backbone (tests, CPU smoke runs); the paper's attention blocks (AM-STGCN, "Js-AGCN + our
attention") can be placed after the graph conv unit ("convs") or the temporal unit ("convt") of
any block, with the placement format and parameter names of `model.AMSTGCN`. Channels-last
einsums replace upstream's per-subset matmul loop (same sums, see NOTES §1.2 on fusion).

Execution formulations (same variables, same values up to float rounding), shared with the
ST-GCN blocks of `amstgcn_jax.layers`: the (9, 1) convs are `layers.TemporalConv` (FFTs when
training on CPU, where XLA's conv backward is slow), the 1x1 convs `layers.Conv1x1` (GEMMs),
the BatchNorms `layers.BatchNorm` (written-out training backward on CPU) and each unit's
`relu(y + residual)` output is stored on CPU (`layers.store`); `tcn_impl`, `bn_impl` and
`block_output` choose them as in `model.AMSTGCN`. NTU T=300, batch 4, fp32 train step on a
2-vCPU Zen 3: 5.2 s against 22.0 s with XLA's plain formulations (benchmarks/README.md,
"Round 16"). On CPU without attention blocks the blocks run on NVTC activations
(`activation_layout`), where the graph unit's products are batched GEMMs on the stored order
(`AdaptiveGraphConv`; benchmarks/README.md "Round 17", "Round 20").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from amstgcn_jax import graph, layers
from amstgcn_jax.layers import make_attention
from amstgcn_jax.matmul import matmul

# (out channels, temporal stride, block residual) of upstream l1 ... l10.
AGCN_BLOCKS = (
    (64, 1, False),
    (64, 1, True),
    (64, 1, True),
    (64, 1, True),
    (128, 2, True),
    (128, 1, True),
    (128, 1, True),
    (256, 2, True),
    (256, 1, True),
    (256, 1, True),
)
NUM_SUBSETS = 3  # spatial labelling: identity, inward, outward
EMBED_RATIO = 4  # upstream coff_embedding: C_e = out_channels // 4
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # PyTorch momentum 0.1


# ---------------------------------------------------------------- layers


def _conv_fan_out_init():
    # upstream conv_init: kaiming_normal_(mode='fan_out'), untruncated
    return nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class SubsetConv(nn.Module):
    """K parallel 1x1 convs, one per graph subset (upstream `ModuleList` of `Conv2d(in, out, 1)`).

    Params: `kernel[k] = weight_k[:, :, 0, 0].T` `(K, C_in, C_out)`, `bias` `(K, C_out)`.
    `reduce=True` applies conv k to input slice k and sums over k (upstream
    `y = Σ_k conv_d[k](z_k)`), as one matmul over (K, C). `per_subset=True` returns
    `([x @ kernel[k] for k], bias_KO)` for channels-last `x` of any layout, leaving the bias to
    the caller (the NVTC unit's θ and φ).
    """

    num_subsets: int
    features: int
    reduce: bool = False
    per_subset: bool = False
    kernel_init: Any = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        in_features = x.shape[-1]
        kernel_init = self.kernel_init or nn.initializers.variance_scaling(
            2.0, "fan_out", "normal", in_axis=-2, out_axis=-1, batch_axis=(0,)
        )
        shape = (self.num_subsets, in_features, self.features)
        kernel_KIO = self.param("kernel", kernel_init, shape)
        bias_KO = self.param("bias", nn.initializers.zeros, (self.num_subsets, self.features))
        kernel_KIO = kernel_KIO.astype(self.dtype)
        bias_KO = bias_KO.astype(self.dtype)
        x = x.astype(self.dtype)
        if self.per_subset:
            return ([matmul(x, kernel_KIO[k], batch_major=True) for k in range(self.num_subsets)],
                    bias_KO)
        # One 2-D GEMM over channels with the K kernels side by side. As einsums over the K axis
        # ("ntvc,kco->ntvko") XLA:CPU added transposes of the (rows, K, O) tensors in the
        # backward (NTU T=300 train step -3%, level, -3% in three A/Bs; benchmarks/README.md
        # "Round 18").
        k, c_in, c_out = kernel_KIO.shape
        if self.reduce:  # x_...KC -> x_...O
            y = matmul(x.reshape(*x.shape[:-2], k * c_in), kernel_KIO.reshape(k * c_in, c_out),
                       batch_major=True)
            return y + layers.per_channel(bias_KO.sum(0), y)
        y = matmul(x, jnp.moveaxis(kernel_KIO, 0, 1).reshape(c_in, k * c_out), batch_major=True)
        y = y + layers.per_channel(bias_KO.reshape(k * c_out), y)
        return y.reshape(*x.shape[:-1], k, c_out)


def _batch_norm(name, train, dtype, scale_init=nn.initializers.ones, bn_impl="auto"):
    # layers.BatchNorm: flax's BatchNorm (same variables and values) with the written-out
    # training backward on CPU (`bn_impl`, as in model.AMSTGCN)
    return layers.BatchNorm(
        use_running_average=not train,
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        dtype=dtype,
        scale_init=scale_init,
        custom_backward=layers.bn_custom_backward(bn_impl),
        name=name,
    )


class AdaptiveGraphConv(nn.Module):
    """Upstream `unit_gcn`: `ReLU(BN(Σ_k W_k(x (A_k + PA_k + C_k))) + down(x))`.

    Returns `(y, attn_NKVV)` where `attn[n, k, v, w]` is `C_k` (columns sum to 1 over v) and
    `y` is in the input's `layout`: `x_NTVC`, or `x_NVTC` (the CPU's, `AGCN.activation_layout`).
    On NVTC each sample's V axis leads its rows, so the products are GEMMs on the stored
    order: θ and φ per subset, their logits `(V, T·C_e) @ (T·C_e, V)` per sample and subset,
    the aggregation of all K subsets as one `(K·W, V) @ (V, T·C)` GEMM per sample, and conv_d
    as one GEMM over (K, C) after moving K next to the channels. On NTVC the einsums make XLA
    transpose θ, φ, x and the aggregated activations around them. NVTC is `AGCN`'s CPU layout
    (benchmarks/README.md "Round 17", "Round 20").
    """

    features: int
    num_subsets: int = NUM_SUBSETS
    bn_impl: str = "auto"
    block_output: str = "auto"
    layout: str = "NTVC"  # | "NVTC"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, adj_KVV, train: bool):
        if self.layout == "NTVC":
            _, num_frames, num_nodes, in_features = x.shape
        elif self.layout == "NVTC":
            _, num_nodes, num_frames, in_features = x.shape
        else:
            raise ValueError(f"AdaptiveGraphConv: layout must be 'NTVC' or 'NVTC', "
                             f"got {self.layout!r}")
        embed = self.features // EMBED_RATIO
        pa_KVV = self.param(
            "PA", nn.initializers.constant(1e-6), (self.num_subsets, num_nodes, num_nodes)
        )
        graph_KVV = jnp.asarray(adj_KVV, jnp.float32) + pa_KVV
        # conv_branch_init: N(0, sqrt(2 / (out * in * K))), applied after the aggregation
        d_std = math.sqrt(2.0 / (self.features * in_features * self.num_subsets))
        conv_d = dict(kernel_init=nn.initializers.normal(d_std), dtype=self.dtype, name="conv_d")
        # Mean over all C_e*T products (upstream divides by A1.size(-1) = C_e*T); float32 logits.
        scale = 1.0 / (embed * num_frames)

        if self.layout == "NTVC":
            theta_NTVKE = SubsetConv(self.num_subsets, embed, dtype=self.dtype,
                                     name="conv_a")(x)
            phi_NTVKE = SubsetConv(self.num_subsets, embed, dtype=self.dtype, name="conv_b")(x)
            logits_NKVV = jnp.einsum(
                "ntvke,ntwke->nkvw", theta_NTVKE, phi_NTVKE, preferred_element_type=jnp.float32
            ) * scale
            attn_NKVV = jax.nn.softmax(logits_NKVV, axis=-2)  # nn.Softmax(-2): source joints
            graph_NKVV = (attn_NKVV + graph_KVV[None]).astype(self.dtype)
            z_NTVKC = jnp.einsum("ntvc,nkvw->ntwkc", x.astype(self.dtype), graph_NKVV)
            y = SubsetConv(self.num_subsets, self.features, reduce=True, **conv_d)(z_NTVKC)
        else:
            n = x.shape[0]
            rows = dict(dimension_numbers=(((2,), (2,)), ((0,), (0,))),
                        preferred_element_type=jnp.float32)  # (n, V, F) x (n, V, F) -> (n, V, V)
            theta_K, theta_b = SubsetConv(self.num_subsets, embed, per_subset=True,
                                          dtype=self.dtype, name="conv_a")(x)
            phi_K, phi_b = SubsetConv(self.num_subsets, embed, per_subset=True,
                                      dtype=self.dtype, name="conv_b")(x)
            def rows_of(y_K, b_KE, k):  # subset k's (n, V, T*C_e) rows, bias added
                return (y_K[k] + layers.per_channel(b_KE[k], y_K[k])).reshape(n, num_nodes, -1)

            logits_NKVV = jnp.stack([
                lax.dot_general(rows_of(theta_K, theta_b, k), rows_of(phi_K, phi_b, k), **rows)
                for k in range(self.num_subsets)], axis=1) * scale
            attn_NKVV = jax.nn.softmax(logits_NKVV, axis=-2)  # nn.Softmax(-2): source joints
            graph_NKVV = (attn_NKVV + graph_KVV[None]).astype(self.dtype)
            # Upstream's order, aggregate then conv_d: z[n, k, w] = Σ_v graph[n, k, v, w] x[n, v]
            # for the K subsets in one (K·W, V) @ (V, T·C) GEMM per sample, then (K, C) moved
            # next to each other for conv_d's one (K·C)-deep GEMM. Per-subset conv_d products
            # before the aggregation (round 17's form) cost K GEMMs and a pass summing them:
            # NTU T=300 train step 3% and eval forward 4% slower (benchmarks/README.md
            # "Round 20").
            k_n = self.num_subsets
            g_NKWV = jnp.swapaxes(graph_NKVV, 2, 3).reshape(n, k_n * num_nodes, num_nodes)
            z = lax.dot_general(g_NKWV, x.astype(self.dtype).reshape(n, num_nodes, -1),
                                (((2,), (1,)), ((0,), (0,))))
            z_NWTKC = z.reshape(n, k_n, num_nodes, num_frames, in_features).transpose(
                0, 2, 3, 1, 4)
            y = SubsetConv(k_n, self.features, reduce=True, **conv_d)(z_NWTKC)
        y = _batch_norm("bn", train, self.dtype, nn.initializers.constant(1e-6), self.bn_impl)(y)
        if in_features != self.features:
            down = layers.Conv1x1(self.features, kernel_init=_conv_fan_out_init(),
                                  dtype=self.dtype, name="down_conv")(x)
            down = _batch_norm("down_bn", train, self.dtype, bn_impl=self.bn_impl)(down)
        else:
            down = x.astype(self.dtype)
        # stored along T (`layers.store`: -6% on the NTU T=300 CPU train step, "Round 16")
        return (layers.store_block_output(nn.relu(y + down), layers.time_axis(self.layout),
                                          self.block_output),
                attn_NKVV)


class AGCNBlock(nn.Module):
    """Upstream `TCN_GCN_unit`: `ReLU(tcn(gcn(x)) + residual(x))`, plus optional attention blocks.

    `attention_convs` / `attention_convt`: `(kind, options)` pairs applied in order after the
    graph conv unit (ConvS, on its ReLU output) / after the temporal unit (ConvT: conv + BN, right
    before the residual sum), placed and named (`attn_convs{j}`, `attn_convt{j}`) exactly as in
    `layers.STGCNBlock`. Activations are `x_NTVC`, or `x_NVTC` with `layout="NVTC"` (no
    attention blocks there).
    """

    features: int
    stride: int = 1
    residual: bool = True
    attention_convs: tuple = ()
    attention_convt: tuple = ()
    tcn_impl: str = "auto"  # `layers.TemporalConv.impl`
    bn_impl: str = "auto"  # `layers.BN_IMPLS`
    block_output: str = "auto"  # `layers.BLOCK_OUTPUTS`
    layout: str = "NTVC"  # | "NVTC" (`AdaptiveGraphConv`)
    batch_shards: int = 1  # devices splitting the batch, for the attention blocks
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, adj_KVV, train: bool):
        if self.layout != "NTVC" and (self.attention_convs or self.attention_convt):
            raise ValueError(f"AGCNBlock: attention blocks run on NTVC activations, got layout "
                             f"{self.layout!r}")
        in_features = x.shape[-1]
        t_axis = layers.time_axis(self.layout)
        gcn, attn_NKVV = AdaptiveGraphConv(
            self.features, bn_impl=self.bn_impl, block_output=self.block_output,
            layout=self.layout, dtype=self.dtype, name="gcn")(x, adj_KVV, train)
        y = gcn
        for j, (kind, options) in enumerate(self.attention_convs):
            y = make_attention(kind, "convs", j, dict(options), self.dtype,
                               self.batch_shards)(y, train)
        # upstream Conv2d((9, 1), padding (4, 0), stride (s, 1)): same variables as nn.Conv,
        # formulated per backend (on CPU training as FFTs)
        y = layers.TemporalConv(
            self.features, 9, self.stride, self.tcn_impl, self.dtype, layout=self.layout,
            kernel_init=_conv_fan_out_init(), name="tcn_conv")(y, train)
        y = _batch_norm("tcn_bn", train, self.dtype, bn_impl=self.bn_impl)(y)
        for j, (kind, options) in enumerate(self.attention_convt):
            y = make_attention(kind, "convt", j, dict(options), self.dtype,
                               self.batch_shards)(y, train)
        if not self.residual:
            res = 0.0
        elif in_features == self.features and self.stride == 1:
            res = x.astype(self.dtype)
        else:
            res = layers.Conv1x1(self.features, self.stride, kernel_init=_conv_fan_out_init(),
                                 dtype=self.dtype, time_axis=t_axis, name="residual_conv")(x)
            res = _batch_norm("residual_bn", train, self.dtype, bn_impl=self.bn_impl)(res)
        return (layers.store_block_output(nn.relu(y + res), t_axis, self.block_output),
                gcn, attn_NKVV)


# ---------------------------------------------------------------- model


def _attention_by_block(attention, layer_indexing: str, num_blocks: int):
    """Placements (the `model.AMSTGCN` format) -> per block `(ConvS list, ConvT list)`."""
    from amstgcn_jax.model import normalize_attention  # lazy: model.py imports this module lazily

    per_block = [([], []) for _ in range(num_blocks)]
    for kind, where, layer, count, options in normalize_attention(attention):
        if layer_indexing == "paper":
            if not 1 <= layer < num_blocks:
                raise ValueError(f"attention layer {layer}: paper layers are 1..{num_blocks - 1} "
                                 f"(layer L is block{{L}}; use layer_indexing='code' for 0)")
        elif layer_indexing == "code":
            if not 0 <= layer < num_blocks:
                raise ValueError(f"attention block index {layer} outside 0..{num_blocks - 1}")
        else:
            raise ValueError(f"layer_indexing must be 'paper' or 'code', got {layer_indexing!r}")
        per_block[layer][0 if where == "convs" else 1].extend([(kind, options)] * count)
    return [(tuple(s), tuple(t)) for s, t in per_block]


class AGCN(nn.Module):
    """2s-AGCN one stream (Js-AGCN on joints, Bs-AGCN on bones), optionally with attention.

    `apply(variables, x_NMTVC, train)` -> `(logits_NL, out)`; as in `model.AMSTGCN`, `out` holds
    `data_bn_out`, `block{i}` and `block{i}_gcn` (the graph-conv unit's output) as `[N*M, T, V, C]`,
    `block{i}_attn` (the data-dependent graphs C_k, `[N*M, K, V, V]`, columns summing to 1),
    `feature` (`[N, M, T', V, 256]`) and `pooled` (`[N, 256]`, the input of the classifier).
    Block i is upstream `l{i+1}`. `attention` takes the placements of `model.AMSTGCN`
    (`(kind, "convs"|"convt", layer, count[, options])`, layer L = `block{L}` with the default
    `layer_indexing="paper"`). `dtype` is the compute dtype; params, BN statistics, the
    attention logits/softmax and the logits stay float32.
    """

    num_classes: int = 60
    layout: Any = "ntu-rgb+d"
    in_channels: int = 3
    strategy: str = "agcn"  # "spatial" (upstream's labeling_mode) is accepted as a synonym
    data_bn: str = "MVC"
    dropout: float = 0.0
    attention: Any = ()
    layer_indexing: str = "paper"
    blocks: Sequence[tuple[int, int, bool]] = AGCN_BLOCKS  # (width, stride, residual)
    # Execution formulations, as in model.AMSTGCN (same values and variables; "auto" picks
    # per backend): the temporal convs, the BatchNorms' training backward, stored outputs, and
    # the blocks' activation layout: "NVTC" (`AdaptiveGraphConv`; "auto" on CPU without
    # attention blocks) or "NTVC" (elsewhere; the attention blocks' layout). `batch_shards`:
    # devices splitting the batch; above 1 "auto" temporal convs are never FFTs
    # (`layers.sharded_tcn_impl`): XLA's SPMD partitioner all-gathers the global batch around
    # them (44 gathers in a 2-device NTU step, none with conv). NVTC splits as it is.
    tcn_impl: str = "auto"
    bn_impl: str = "auto"
    block_output: str = "auto"
    activation_layout: str = "auto"
    batch_shards: int = 1
    dtype: Any = "float32"

    @nn.compact
    def __call__(self, x_NMTVC, train: bool = False):
        if self.strategy not in ("agcn", "spatial"):
            raise ValueError(
                f"AGCN uses the 2s-AGCN 'spatial' graph (graph strategy 'agcn'); got "
                f"strategy={self.strategy!r}"
            )
        if self.data_bn != "MVC":
            raise ValueError(f"AGCN normalises over M*V*C input channels: data_bn must be 'MVC', "
                             f"got {self.data_bn!r}")
        dtype = jnp.dtype(self.dtype)
        # graph/tools.py get_spatial_graph: a constant, never a parameter nor in checkpoints
        adj_KVV = graph.build_adjacency(graph.get_layout(self.layout), strategy="agcn")
        n, m, t, v, c = x_NMTVC.shape
        if v != adj_KVV.shape[-1] or c != self.in_channels:
            raise ValueError(
                f"AGCN input {x_NMTVC.shape} (N, M, T, V, C) does not match layout "
                f"{self.layout!r} (V={adj_KVV.shape[-1]}) and in_channels={self.in_channels}"
            )
        placements = _attention_by_block(self.attention, self.layer_indexing, len(self.blocks))
        tcn_impl = layers.sharded_tcn_impl(self.tcn_impl, self.batch_shards, train)
        layout = self.activation_layout
        if layout == "auto":
            # NVTC on CPU: NTU T=300 batch 4 eval forward 1.51 against 1.69 s (round 17), train
            # step 3-5% faster since round 20's aggregation (benchmarks/README.md "Round 20")
            attended = any(s or t for s, t in placements)
            cpu = jax.default_backend() == "cpu"
            layout = "NVTC" if cpu and not attended else "NTVC"
        if layout not in ("NTVC", "NVTC"):
            raise ValueError(f"AGCN: activation_layout must be 'auto', 'NTVC' or 'NVTC', got "
                             f"{self.activation_layout!r}")
        out = {}

        # BatchNorm1d over M*V*C channels indexed m*V*C + v*C + c (one set per person slot)
        x_NTF = jnp.transpose(x_NMTVC, (0, 2, 1, 3, 4)).reshape(n, t, m * v * c)
        x_NTF = _batch_norm("data_bn", train, jnp.float32, bn_impl=self.bn_impl)(
            x_NTF.astype(jnp.float32))
        x_NMTVC = jnp.transpose(x_NTF.reshape(n, t, m, v, c), (0, 2, 1, 3, 4))
        x_NTVC = x_NMTVC.reshape(n * m, t, v, c)
        out["data_bn_out"] = x_NTVC

        x = layers.from_ntvc(x_NTVC.astype(dtype), layout)
        for i, ((features, stride, residual), (att_s, att_t)) in enumerate(
            zip(self.blocks, placements)
        ):
            x, gcn, attn_NKVV = AGCNBlock(
                features,
                stride,
                residual,
                attention_convs=att_s,
                attention_convt=att_t,
                tcn_impl=tcn_impl,
                bn_impl=self.bn_impl,
                block_output=self.block_output,
                layout=layout,
                batch_shards=self.batch_shards,
                dtype=dtype,
                name=f"block{i}",
            )(x, adj_KVV, train)
            # the features in `out` are NTVC whatever the blocks ran on
            out[f"block{i}_gcn"] = layers.to_ntvc(gcn, layout)
            out[f"block{i}_attn"] = attn_NKVV
            out[f"block{i}"] = layers.to_ntvc(x, layout)

        x_NTVC = out[f"block{len(self.blocks) - 1}"]
        out["feature"] = x_NTVC.reshape(n, m, *x_NTVC.shape[1:])
        # mean over (T, V), then over the M person slots (absent persons included, as upstream)
        pooled_NC = jnp.mean(out["feature"].astype(jnp.float32), axis=(2, 3)).mean(axis=1)
        out["pooled"] = pooled_NC
        pooled_NC = nn.Dropout(self.dropout, deterministic=not train)(pooled_NC)
        fan_in = pooled_NC.shape[-1]
        logits_NL = nn.Dense(
            self.num_classes,
            kernel_init=nn.initializers.normal(math.sqrt(2.0 / self.num_classes)),
            bias_init=_torch_bias_init(fan_in),
            name="head",
        )(pooled_NC)
        return logits_NL.astype(jnp.float32), out


def _torch_bias_init(fan_in: int):
    """PyTorch's default Linear bias init U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (upstream keeps it)."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init
