"""ST-GCN / AM-STGCN (Flax Linen), the model zoo (`VARIANTS`) and `get_model`.

Backbone: yysijie/st-gcn @ 221c0e152054b8da593774c0d483e59befdb9061 `net/st_gcn.py` `Model`
(../shared/parity/NOTES.md §1): data BN → 10 `st_gcn` blocks, each on `A ⊙ edge_importance_i`
→ mean over (T, V) → mean over persons → 1×1 conv head. With no attention the forward pass is
exactly the upstream one and upstream checkpoints load through `amstgcn_jax.convert`.

AM-STGCN (../shared/paper/am-stgcn.txt) inserts attention blocks after the spatial graph conv
("convs", the paper's ConvS) and/or the temporal conv ("convt", ConvT) of chosen layers.
`attention` is data: a tuple of placements `(kind, where, layer, count)` or
`(kind, where, layer, count, options)`, e.g. `(("nonlocal", "convt", 3, 3),)` = the paper's
"ST-GCN_3's ConvT + 3". `kind` is "nonlocal" | "cbam" | "se" (`amstgcn_jax.attention`);
`options` go to that module (e.g. `{"inner_ratio": 0.5, "pool_size": 2}`, or `{"mode": ...}` to
override the non-local mode, which defaults to per-frame joint attention after ConvS and
attention over all T×V positions after ConvT, as the paper describes). Several placements may
name the same layer; their blocks run in the order given. Params: `block{i}/attn_convs{j}`,
`block{i}/attn_convt{j}`.

Layer numbering (`layer_indexing`): the paper counts 9 ST-GCN layers ("first three 64 channels,
middle three 128, last three 256", strides 2 at the 4th and 7th) while the code has 10 blocks,
of which block 0 (3→64, the only one without a residual) is the input layer. We read the paper's
layers as the code's blocks 1…9, so with `layer_indexing="paper"` (default) layer L ∈ 1…9 is
`block{L}` and ST-GCN_4/ST-GCN_7 land on the stride-2 blocks 4/7 exactly as the ST-GCN paper
states; `layer_indexing="code"` takes the 0-based block index (0…9, so block 0 is reachable).

Table 7 (CBAM, SENet) does not say where those modules went; our `stgcn_cbam` / `stgcn_se` put
them in the AM-STGCN slot (layer 3, after ConvT, ×3) for a like-for-like comparison.

`out` (second return value): "data_bn_out" (N·M, T, V, C), "block{i}" (N·M, T_i, V, C_i),
"feature" (N, M, T', V, 256), "pooled" (N, 256). Parameter names: `data_bn`, `block{i}` (same
index as upstream `st_gcn_networks`), `edge_importance{i}`, `head`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from amstgcn_jax import graph, graph_sparse
from amstgcn_jax.layers import (
    LAYOUTS,
    STGCNBlock,
    batch_norm,
    conv_init,
    from_ntvc,
    sharded_tcn_impl,
    to_ntvc,
)

# (out channels, temporal stride, residual) of upstream st_gcn_networks 0…9.
STGCN_BLOCKS = ((64, 1, False), (64, 1, True), (64, 1, True), (64, 1, True), (128, 2, True),
                (128, 1, True), (128, 1, True), (256, 2, True), (256, 1, True), (256, 1, True))
ATTENTION_KINDS = ("nonlocal", "cbam", "se")
_WHERE = {"convs": "convs", "convt": "convt"}


def normalize_attention(attention) -> tuple:
    """Placements as hashable `(kind, where, layer, count, options_items)` tuples."""
    if not attention:
        return ()
    if isinstance(attention, str):
        return normalize_attention(parse_placements(attention))
    result = []
    for p in attention:
        p = tuple(p)
        if len(p) not in (4, 5):
            raise ValueError(f"attention placement {p!r}: expected (kind, where, layer, count"
                             f"[, options])")
        kind, where, layer, count = str(p[0]).lower(), str(p[1]).lower(), int(p[2]), int(p[3])
        options = p[4] if len(p) == 5 else ()
        options = tuple(sorted((dict(options) if options else {}).items()))
        options = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in options)
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"attention placement {p!r}: kind must be one of {ATTENTION_KINDS}")
        if where not in _WHERE:
            raise ValueError(f"attention placement {p!r}: where must be 'convs' or 'convt'")
        if count < 1:
            raise ValueError(f"attention placement {p!r}: count must be >= 1")
        result.append((kind, where, layer, count, options))
    return tuple(result)


def parse_placements(name: str, kind: str = "nonlocal") -> tuple:
    """Placements from a name like "convs_l2x2_convt_l3x3" (layer numbers as in `attention`)."""
    placements, where, ok = [], None, True
    for token in name.split("_"):
        match = re.fullmatch(r"l(\d+)x(\d+)", token)
        if token in _WHERE:
            ok = ok and (where is None or placements[-1:] and placements[-1][1] == where)
            where = token
        elif match and where is not None:
            placements.append((kind, where, int(match[1]), int(match[2])))
        else:
            ok = False
    if not ok or not placements or placements[-1][1] != where:
        raise ValueError(f"cannot parse attention placements from {name!r}; expected e.g. "
                         f"'convt_l3x3' or 'convs_l2x1_convt_l2x2'")
    return tuple(placements)


def _variants() -> dict[str, dict]:
    v = {"stgcn": dict(attention=()),
         "am_stgcn": dict(attention=parse_placements("convt_l3x3"))}
    rows = (
        # Table 2: one block after ConvS of layer L.
        "convs_l1x1", "convs_l2x1", "convs_l3x1", "convs_l4x1", "convs_l9x1",
        # Table 3: several blocks after ConvS of one layer.
        "convs_l1x2", "convs_l2x2", "convs_l3x2", "convs_l1x3", "convs_l2x3", "convs_l3x3",
        "convs_l4x3",
        # Table 4: blocks after ConvS of two layers.
        "convs_l2x1_l3x1", "convs_l1x2_l2x2", "convs_l2x2_l3x2", "convs_l1x2_l3x2",
        # Table 5: blocks after ConvT of one layer.
        "convt_l2x2", "convt_l3x3", "convt_l5x3",
        # Table 6: ConvT and ConvS of several layers.
        "convt_l2x2_l3x3", "convs_l2x1_convt_l2x2", "convs_l2x2_convt_l3x3",
    )
    for name in rows:
        v[name] = dict(attention=parse_placements(name))
    # Table 7: CBAM / SENet in the AM-STGCN slot (our choice, see module docstring).
    v["stgcn_cbam"] = dict(attention=parse_placements("convt_l3x3", kind="cbam"))
    v["stgcn_se"] = dict(attention=parse_placements("convt_l3x3", kind="se"))
    return v


VARIANTS: dict[str, dict] = _variants()


@functools.lru_cache(maxsize=64)
def _adjacency(layout: graph.Layout, strategy: str, max_hop: int, dilation: int) -> np.ndarray:
    a = graph.build_adjacency(layout, strategy, max_hop, dilation)
    a.flags.writeable = False
    return a


class AMSTGCN(nn.Module):
    """ST-GCN with optional attention placements; `__call__(x_NMTVC, train)` → `(logits_NL, out)`.

    A plain ST-GCN is `AMSTGCN(attention=())`. `data_bn="VC"` is ST-GCN's BatchNorm1d over V·C
    (channel v·C + c, persons folded into the batch); `"MVC"` is 2s-AGCN/CTR-GCN's over M·V·C
    (channel m·V·C + v·C + c); `"none"` skips it. `dtype` is the compute dtype (e.g. "bfloat16");
    params and BatchNorm statistics stay float32 and the logits are float32. `tcn_impl` picks
    the temporal-conv formulation ("matmul" | "conv" | "fft" | "auto", see `layers.TemporalConv`),
    `gcn_impl` the graph conv's ("factored" | "kron" | "sparse" | "auto", or one per block; see
    `layers.GraphConv` and `gcn_impls_for`), `activation_layout` the blocks' activation layout
    ("NTVC" | "VNTC" | "auto" | "per_block", see `block_layouts_for`), `bn_impl` the
    BatchNorms' training backward ("auto" | "custom" | "autodiff", `layers.BN_IMPLS`; the
    backbone's, not the attention blocks'), `block_output` whether each block's output is
    stored once or left to XLA to recompute in its consumers ("auto": stored on CPU | "stored"
    | "fused", `layers.store`); `blocks` lists
    (out channels, stride, residual) per block (default: the upstream 10). None of these
    changes the params, the dropout masks or (beyond float rounding) the outputs.

    `batch_shards` is how many devices split the batch (the trainer passes its mesh size).
    Above 1, "auto" takes the formulations XLA's SPMD partitioner splits along the batch:
    NTVC activations (kron/factored graph convs), matmul (CPU training) or `lax.conv`
    temporal convs, and attention blocks over all sequences. Around the V-major graph convs,
    the FFT conv and attention blocks of some sequences it all-gathers the global batch and
    computes them whole on every device (`mesh_auto`; benchmarks/README.md, "Round 22",
    "Round 23").
    """

    num_classes: int = 60
    layout: Any = "ntu-rgb+d"
    strategy: str = "spatial"
    max_hop: int = 1
    dilation: int = 1
    in_channels: int = 3
    dropout: float = 0.0
    edge_importance: bool = True
    data_bn: str = "VC"
    attention: Any = ()
    layer_indexing: str = "paper"
    blocks: Sequence[tuple[int, int, bool]] = STGCN_BLOCKS
    temporal_kernel: int = 9
    tcn_impl: str = "auto"
    gcn_impl: Any = "auto"
    activation_layout: str = "auto"
    bn_impl: str = "auto"
    block_output: str = "auto"
    batch_shards: int = 1
    dtype: Any = "float32"

    def _block_attention(self) -> list[tuple[list, list]]:
        per_block = [([], []) for _ in self.blocks]
        n = len(self.blocks)
        for kind, where, layer, count, options in normalize_attention(self.attention):
            if self.layer_indexing == "paper":
                if not 1 <= layer < n:
                    raise ValueError(f"attention layer {layer}: paper layers are 1..{n - 1} "
                                     f"(layer L is block{{L}}; use layer_indexing='code' for 0)")
            elif self.layer_indexing == "code":
                if not 0 <= layer < n:
                    raise ValueError(f"attention block index {layer} outside 0..{n - 1}")
            else:
                raise ValueError(f"layer_indexing must be 'paper' or 'code', "
                                 f"got {self.layer_indexing!r}")
            slot = per_block[layer][0 if where == "convs" else 1]
            slot.extend([(kind, options)] * count)
        return per_block

    @nn.compact
    def __call__(self, x_NMTVC, train: bool = False):
        layout = graph.get_layout(self.layout)
        dtype = jnp.dtype(self.dtype)
        n, m, t, v, c = x_NMTVC.shape
        if v != layout.num_nodes or c != self.in_channels:
            raise ValueError(f"AMSTGCN: input (N, M, T, V, C) = {x_NMTVC.shape} does not match "
                             f"layout {layout.name!r} (V={layout.num_nodes}) and "
                             f"in_channels={self.in_channels}")
        adj_np = _adjacency(layout, self.strategy, self.max_hop, self.dilation)
        adj_KVV = jnp.asarray(adj_np)
        out = {}
        x = x_NMTVC.astype(jnp.float32)
        if self.data_bn == "VC":
            x = batch_norm(train, "data_bn", bn_impl=self.bn_impl)(x.reshape(n * m, t, v * c))
        elif self.data_bn == "MVC":
            x = x.transpose(0, 2, 1, 3, 4).reshape(n, t, m * v * c)
            x = batch_norm(train, "data_bn", bn_impl=self.bn_impl)(x)
            x = x.reshape(n, t, m, v, c).transpose(0, 2, 1, 3, 4)
        elif self.data_bn != "none":
            raise ValueError(f"data_bn must be 'VC', 'MVC' or 'none', got {self.data_bn!r}")
        x_NTVC = x.reshape(n * m, t, v, c)
        out["data_bn_out"] = x_NTVC

        row_elements, t_in, c_in = [], t, c
        for features, stride, _ in self.blocks:
            row_elements.append(n * m * t_in * min(c_in, features))  # the aggregated width
            t_in, c_in = (t_in - 1) // stride + 1, features
        activation_layout, tcn_impl = mesh_auto(self.activation_layout, self.tcn_impl,
                                                self.batch_shards, train)
        gcn_impls = gcn_impls_for(self.gcn_impl, self.blocks, v, activation_layout,
                                  row_elements)
        layouts = block_layouts_for(activation_layout, gcn_impls)
        # edge_importance multiplies A entrywise: A ⊙ M is zero wherever A is.
        support = graph_sparse.support_of(adj_np) if "sparse" in gcn_impls else None
        # Blocks run on x_VNTC = (V, N·M, T, C) in that layout; `out` keeps x_NTVC. Where the
        # layout changes between blocks, one transpose moves the activations.
        x = from_ntvc(x_NTVC, layouts[0])
        for i, ((features, stride, residual), (att_s, att_t)) in enumerate(
                zip(self.blocks, self._block_attention())):
            if i and layouts[i] != layouts[i - 1]:
                x = from_ntvc(out[f"block{i - 1}"], layouts[i])
            adj = adj_KVV
            if self.edge_importance:
                adj = adj * self.param(f"edge_importance{i}", nn.initializers.ones,
                                       adj_KVV.shape, jnp.float32)
            x = STGCNBlock(
                features, adj_KVV.shape[0], stride, residual,
                dropout=0.0 if i == 0 else self.dropout,  # upstream block 0 gets no dropout
                temporal_kernel=self.temporal_kernel, tcn_impl=tcn_impl,
                gcn_impl=gcn_impls[i],
                gcn_support=support if gcn_impls[i] == "sparse" else None,
                bn_impl=self.bn_impl, block_output=self.block_output,
                attention_convs=tuple(att_s),
                attention_convt=tuple(att_t), batch_shards=self.batch_shards,
                dtype=dtype, layout=layouts[i],
                name=f"block{i}")(x, adj, train)
            out[f"block{i}"] = to_ntvc(x, layouts[i])

        x_NTVC = out[f"block{len(self.blocks) - 1}"]
        _, t_out, _, c_out = x_NTVC.shape
        out["feature"] = x_NTVC.reshape(n, m, t_out, v, c_out)
        # Pool over (T, V) in the blocks' layout: no transpose on the way to the logits.
        spatial_axes = (0, 2) if layouts[-1] == "VNTC" else (1, 2)
        pooled = x.astype(jnp.float32).mean(spatial_axes).reshape(n, m, c_out).mean(1)
        out["pooled"] = pooled
        logits_NL = nn.Dense(self.num_classes, kernel_init=conv_init,
                             bias_init=nn.initializers.zeros, name="head")(pooled)
        return logits_NL, out


STGCN = AMSTGCN  # a plain ST-GCN is the attention-free configuration

# "auto" uses the Kronecker graph conv on GPUs up to this V·Cout: on NTU (V=25) the blocks of
# <= 128 channels, on Kinetics/OpenPose (V=18) all blocks. Measured on an H100
# (benchmarks/README.md, "GPU tuning"): it removes the pads and transposes XLA puts around the
# factored einsum, which cost more than the extra FLOPs up to there (Kinetics all-kron 5,319 vs
# 5,148 clips/s with 256-channel blocks factored); at V·C = 6,400 (NTU, 256 channels) the
# (V·C)^2 matrix makes it FLOP-bound and the factored form wins (NTU 1,714 vs all-kron 1,602),
# and the sparse form more (sweep 4: 1,830 vs 1,778 factored). Below it, sparse lost to kron
# (NTU sparse from 128 channels 1,504, everywhere 1,279), though measured with a V-major
# temporal conv that cuDNN ran 5-12 ms slower per step than the one used now; not re-measured.
KRON_MAX_WIDTH = 4608


# "auto" uses the sparse graph conv on CPU from this many elements per aggregated node row
# (N·M·T·min(Cin, Cout) of a block). NTU train step (batch 4, N·M = 8), dense -> sparse:
# 578 -> 519 ms at T = 64 (32,768 elements), 1,166 -> 1,056 ms at T = 128, 2.89 -> 2.56 s at
# T = 300. Below it the loops' per-row cost wins: configs/synthetic.py (16,384 elements per
# row) trained at 52 instead of 74 clips/s. NTU's 3-channel first block (7,200) stays dense,
# and small models also compile 3x faster dense (0.2 vs 0.6 s per block).
SPARSE_MIN_ROW_ELEMENTS = 2 ** 15


def mesh_auto(activation_layout: str, tcn_impl: str, batch_shards: int,
              train: bool = True) -> tuple[str, str]:
    """`(activation_layout, tcn_impl)` with "auto" resolved for a batch split over
    `batch_shards` devices: unchanged on one, else NTVC and `layers.sharded_tcn_impl`'s
    temporal conv (never the FFT form).

    Why: in a compiled 2-device NTU train step XLA's SPMD partitioner inserted 47 all-gathers
    with the CPU defaults (V-major graph convs, whose GEMM rows merge V above the sharded
    batch axis, and the FFT conv, whose FFTs it replicates), 9 with the GPU ones (the sparse
    256-channel blocks), and none with NTVC activations and a lax.conv or matmul temporal
    conv (benchmarks/README.md, "Round 22", "Round 23"). Each gather makes every device
    compute that op for the whole global batch.
    """
    tcn_impl = sharded_tcn_impl(tcn_impl, batch_shards, train)  # checks batch_shards
    if batch_shards > 1 and activation_layout == "auto":
        activation_layout = "NTVC"
    return activation_layout, tcn_impl


def gcn_impls_for(gcn_impl, blocks, num_nodes: int, activation_layout: str = "auto",
                  row_elements: Sequence[int] | None = None) -> tuple[str, ...]:
    """One `GraphConv` impl per block from `gcn_impl`: "factored", "kron", "sparse", a
    per-block tuple, or "auto":
    - on GPU kron where V·Cout <= KRON_MAX_WIDTH, else sparse (the adjacency's non-zeros
      only, `graph_sparse`, in its unrolled GPU form), on V-major activations in those blocks
      (`block_layouts_for`): NTU's 256-channel blocks, where the factored form pays for pads
      and transposes (NTU step 72.0 -> 70.0 ms, benchmarks/README.md "GPU tuning");
    - on CPU sparse where the block's aggregated rows (`row_elements`, N·M·T·min(Cin, Cout);
      None: large) reach SPARSE_MIN_ROW_ELEMENTS, else factored. The CPU is compute-bound:
      kron's extra FLOPs cost 5x there, and skipping the zeros made the NTU train step 7-10%
      faster (benchmarks/README.md, "Round 6");
    - on other backends factored.
    Sparse needs V-major activations and kron NTVC ones, so an explicit `activation_layout`
    restricts the choice: "NTVC" takes factored for sparse, "VNTC" sparse for kron."""
    if isinstance(gcn_impl, (tuple, list)):
        if len(gcn_impl) != len(blocks):
            raise ValueError(f"gcn_impl has {len(gcn_impl)} entries for {len(blocks)} blocks")
        return tuple(gcn_impl)
    if gcn_impl != "auto":
        return (gcn_impl,) * len(blocks)
    backend = jax.default_backend()
    if backend == "cpu":
        if row_elements is None:
            row_elements = (SPARSE_MIN_ROW_ELEMENTS,) * len(blocks)
        return tuple("sparse" if activation_layout != "NTVC" and size >= SPARSE_MIN_ROW_ELEMENTS
                     else "factored" for size in row_elements)
    if backend != "gpu":  # not measured elsewhere: the upstream order
        return ("factored",) * len(blocks)
    if activation_layout == "VNTC":  # kron needs NTVC
        return ("sparse",) * len(blocks)
    wide = "factored" if activation_layout == "NTVC" else "sparse"
    return tuple("kron" if num_nodes * features <= KRON_MAX_WIDTH else wide
                 for features, _, _ in blocks)


def block_layouts_for(activation_layout: str, gcn_impls) -> tuple[str, ...]:
    """Each block's activation layout; one transpose moves the activations where consecutive
    blocks differ.

    "auto": per block, NTVC for Kronecker blocks (they multiply V·C-wide rows), VNTC for sparse
    ones (a node's row is contiguous there), and for factored blocks VNTC on CPU, NTVC
    elsewhere. "per_block": the same with every factored block VNTC. "NTVC" / "VNTC": that
    layout in every block.

    On XLA:CPU, VNTC makes the graph aggregation a transpose-free GEMM and the temporal conv
    (in inference) a (1, 9) conv along the minor spatial axis, faster than the (9, 1) one
    (benchmarks/README.md, "CPU results"). On an H100, factored blocks were slower V-major
    (NTU 1,573 against 1,778 clips/s NTVC), sparse ones faster than the factored NTVC form
    at 256 channels ("GPU tuning", sweep 4).
    """
    if activation_layout in ("auto", "per_block"):
        v_major = activation_layout == "per_block" or jax.default_backend() == "cpu"
        factored = "VNTC" if v_major else "NTVC"
        return tuple({"kron": "NTVC", "sparse": "VNTC"}.get(impl, factored)
                     for impl in gcn_impls)
    if activation_layout not in LAYOUTS:
        raise ValueError(f"activation_layout must be one of {LAYOUTS}, 'auto' or 'per_block', "
                         f"got {activation_layout!r}")
    if activation_layout == "VNTC" and "kron" in gcn_impls:
        raise ValueError("activation_layout='VNTC' cannot run gcn_impl='kron' blocks; use "
                         "'NTVC', 'auto' or gcn_impl='factored'")
    if activation_layout == "NTVC" and "sparse" in gcn_impls:
        raise ValueError("activation_layout='NTVC' cannot run gcn_impl='sparse' blocks; use "
                         "'VNTC', 'auto' or gcn_impl='factored'")
    return (activation_layout,) * len(gcn_impls)


def _plain(value):
    """ConfigDict/list values → hashable tuples (Linen attributes must be hashable)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    return value


def get_model(**kwargs) -> nn.Module:
    """The model for `config.model`: `backbone` ("stgcn" | "agcn"), optional `variant` (a
    `VARIANTS` name or a placement name like "convs_l2x1_convt_l2x2"), and module fields.

    Explicit kwargs override the variant's. `backbone="agcn"` builds `amstgcn_jax.agcn.AGCN`
    with the same kwargs.
    """
    kwargs = {k: _plain(v) for k, v in kwargs.items()}
    backbone = kwargs.pop("backbone", "stgcn")
    variant = kwargs.pop("variant", None)
    config = {}
    if variant is not None:
        if variant in VARIANTS:
            config.update(VARIANTS[variant])
        else:
            config["attention"] = parse_placements(variant)
    config.update(kwargs)
    if "attention" in config:
        config["attention"] = normalize_attention(config["attention"])
    if backbone == "agcn":
        from amstgcn_jax.agcn import AGCN  # lazy: separate backbone module

        return AGCN(**config)
    if backbone != "stgcn":
        raise ValueError(f"unknown backbone {backbone!r} (stgcn | agcn)")
    return AMSTGCN(**config)


def count_params(params) -> int:
    """Number of trainable scalars (BatchNorm running statistics are not params)."""
    return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))
