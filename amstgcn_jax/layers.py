"""ST-GCN building blocks (Flax Linen, channels-last `x_NTVC` with N = batch·persons).

Mirrors yysijie/st-gcn @ 221c0e152054b8da593774c0d483e59befdb9061:
`net/utils/tgcn.py` (`ConvTemporalGraphical` -> `GraphConv`) and `net/st_gcn.py` (`st_gcn`
-> `STGCNBlock`), semantics as pinned in ../shared/parity/NOTES.md §1.3-1.4.

Deliberate deviations, none of which changes the numbers beyond float32 round-off:
- 1×1 convolutions are `Dense`-style matmuls over the channel axis; kernels are stored `(I, O)`
  (PyTorch `(O, I, 1, 1)`), the temporal kernel `(9, 1, I, O)` (HWIO).
- `GraphConv` may aggregate over the graph *before* the channel mix when that is cheaper
  (`Cin < Cout`, ../shared/PERF.md §4.2 item 4). The upstream bias, which is added before the
  aggregation, then becomes `Σ_k b_k · colsum(A_k)`; the result is the same sum reordered.
  `impl="kron"` folds the graph and the 1×1 conv into one (V·Cin, V·Cout) matrix
  `Σ_k A_k ⊗ W_k` and does one GEMM per frame: more FLOPs (×2.4 at 64 channels) but no
  (K·Cout)-wide intermediate and no transposes, for memory-bound accelerators.
  `impl="sparse"` (V-major only, `graph_sparse`) sums over the adjacency's non-zeros alone
  (73 of 1,875 on NTU) and skips the 1×1-conv rows no edge reads: the CPU default for large
  blocks (`model.SPARSE_MIN_ROW_ELEMENTS`) and the GPU default beyond V·C =
  `model.KRON_MAX_WIDTH`.
- `TemporalConv(impl="matmul")` writes the (9, 1) conv as 9 stacked shifted slices and one matmul
  (XLA:CPU's conv weight gradient is slow, PERF.md §4.2 item 3); `impl="conv"` uses
  `lax.conv_general_dilated`; `impl="fft"` multiplies spectra along T (the convolution
  theorem: 4x fewer multiply-adds than the 9 taps). `"auto"` picks fft for float32 training on
  CPU (NTU T=300 batch 4 train step 3.40 -> 2.84 s against the matmul) and for CPU inference
  of stride-1 blocks of >= 256 channels, and conv elsewhere: XLA's forward conv beats the 9x
  im2col copy (3.80 vs 3.32 clips/s) and, on narrower blocks, the FFTs and their transposes
  (benchmarks/README.md). Same params.
- Activations may be V-major (`layout="VNTC"`, `x_VNTC` = (V, N·M, T, C)) instead of `x_NTVC`.
  The graph aggregation is then one plain GEMM `(K·W, V) @ (V, N·T·C)` with no transposes, and
  the temporal conv (impl "conv") runs along the minor spatial axis of an NHWC conv (H = N,
  W = T, kernel (1, 9)), which XLA:CPU executes 1.5-2x faster forward+backward than the (9, 1)
  kernel over NTVC (in isolation; 5% faster than the matmul in the whole step, where the FFT
  form is 16% faster, benchmarks/README.md). Same params, same numbers; `model.AMSTGCN` picks
  the layout.
- `BatchNorm` is flax's BatchNorm (same variables, statistics and values) with a written-out
  training backward, the CPU default; the block's first BatchNorm and its ReLU are one op.
- Initialisation follows the upstream trainer's `weights_init` (conv weights N(0, 0.02), biases
  0, BatchNorm scale N(1, 0.02), shift 0), not PyTorch's default init.
- The padding is always explicit and symmetric ((k−1)/2 on both sides): never `"SAME"`, which
  pads (3, 4) for stride 2 and shifts every frame.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from amstgcn_jax import graph_sparse
from amstgcn_jax.matmul import matmul

LAYOUTS = ("NTVC", "VNTC")  # ST-GCN's activation layouts; T is axis 1 resp. 2, C always last
# The T axis of every activation layout a layer here accepts: ST-GCN's, and NVTC, 2s-AGCN's on
# CPU (amstgcn_jax.agcn), where each sample's V axis leads its adaptive-graph GEMMs.
TIME_AXES = {"NTVC": 1, "VNTC": 2, "NVTC": 2}
BN_EPSILON = 1e-5  # PyTorch default
BN_MOMENTUM = 0.9  # = 1 - PyTorch momentum 0.1
conv_init = nn.initializers.normal(stddev=0.02)  # st-gcn processor/recognition.py weights_init
# From this many channels (in and out) a stride-1 temporal conv infers faster on CPU as FFTs
# than as lax.conv (measured on 2-vCPU Zen 4, XLA:CPU, NTU shapes; benchmarks/README.md).
FFT_INFER_CHANNELS = 256


def check_layout(layout: str, owner: str, choices=LAYOUTS) -> str:
    """`layout` if it is one of `choices` (default: ST-GCN's `LAYOUTS`), else a ValueError
    naming `owner`."""
    if layout not in choices:
        raise ValueError(f"{owner}: unknown layout {layout!r} ({' | '.join(choices)})")
    return layout


def time_axis(layout: str) -> int:
    """The T axis of activations in `layout` (`TIME_AXES`)."""
    return TIME_AXES[layout]


# axis permutations: x_NTVC -> layout (NVTC's swap is its own inverse)
_FROM_NTVC = {"NTVC": None, "VNTC": (2, 0, 1, 3), "NVTC": (0, 2, 1, 3)}
_TO_NTVC = {"NTVC": None, "VNTC": (1, 2, 0, 3), "NVTC": (0, 2, 1, 3)}


def to_ntvc(x, layout: str):
    """Activations in `layout` (any of `TIME_AXES`) as `x_NTVC`."""
    perm = _TO_NTVC[layout]
    return x if perm is None else x.transpose(perm)


def from_ntvc(x_NTVC, layout: str):
    """`x_NTVC` in `layout` (any of `TIME_AXES`)."""
    perm = _FROM_NTVC[layout]
    return x_NTVC if perm is None else x_NTVC.transpose(perm)


def bn_scale_init(key, shape, dtype=jnp.float32):
    """BatchNorm weight ~ N(1, 0.02), as upstream `weights_init`."""
    return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


# `bn_impl` names -> `BatchNorm.custom_backward`: which training backward the BatchNorms use.
BN_IMPLS = {"auto": None, "custom": True, "autodiff": False}


def _formulation(table: dict, name: str, field: str) -> bool | None:
    """`table[name]` for a formulation switch (True: on, False: off, None: on the CPU backend
    only), or a ValueError naming the field and its choices."""
    if name not in table:
        raise ValueError(f"{field} must be one of {sorted(table)}, got {name!r}")
    return table[name]


def bn_custom_backward(bn_impl: str) -> bool | None:
    """`BatchNorm.custom_backward` for a `bn_impl` name ("auto": the written-out backward on
    CPU only, resolved by `BatchNorm` when it runs; "custom": everywhere; "autodiff":
    nowhere)."""
    return _formulation(BN_IMPLS, bn_impl, "bn_impl")


# `block_output` names -> whether a block stores its output (`store`): "auto" on the CPU
# backend only, "stored" everywhere, "fused" nowhere (XLA decides what to recompute).
BLOCK_OUTPUTS = {"auto": None, "stored": True, "fused": False}


def stores_block_output(block_output: str) -> bool:
    """Whether a block with this `block_output` name stores its output (`BLOCK_OUTPUTS`)."""
    stored = _formulation(BLOCK_OUTPUTS, block_output, "block_output")
    return jax.default_backend() == "cpu" if stored is None else stored


def _identity_gather(x, axis: int):
    """x itself, as a gather of every slice along `axis` (x[arange] on that axis)."""
    return jnp.take(x, np.arange(x.shape[axis]), axis=axis, mode="clip",
                    indices_are_sorted=True, unique_indices=True)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def store(x, axis: int = 0):
    """The identity, written so that XLA:CPU computes `x` once into a buffer that its consumers
    read, instead of recomputing it inside each of them. `axis` must not be sharded (the
    partitioner would all-gather a gather's operand along it): blocks pass V in `x_VNTC`, T in
    `x_NTVC`.

    Why: XLA:CPU's instruction fusion copies an elementwise producer into every consumer when its
    other operands are broadcasts ("effectively unary"), so `relu(z)` is duplicated freely, and
    `z = y + residual` follows it into each copy. With identity residuals, every consumer of a
    block's output (the next graph conv's operand, its residual add, the BatchNorm statistics,
    the backward's ReLU masks) recomputed the chain of block outputs back to the last stride:
    up to four blocks' BatchNorm-apply of transposed conv outputs per element
    (benchmarks/README.md, "Round 15"). A gather is "expensive" in XLA:CPU's fusion cost model,
    so it is never duplicated: its fusion computes the chain once and writes the result. The
    backward passes the cotangent through unchanged (a gather's transpose would be a
    scatter-add). Values and gradients are exactly those of the identity.
    """
    return _identity_gather(x, axis)


store.defvjp(lambda x, axis: (_identity_gather(x, axis), None), lambda axis, _, g: (g,))


def store_block_output(x, axis: int, block_output: str):
    """`store(x, axis)` where `block_output` says a block stores its output
    (`stores_block_output`), else `x`: the end of ST-GCN blocks and 2s-AGCN units."""
    return store(x, axis) if stores_block_output(block_output) else x


def batch_norm(train: bool, name: str, dtype: Any = jnp.float32,
               scale_init: Callable = bn_scale_init, relu: bool = False,
               bn_impl: str = "auto") -> BatchNorm:
    """BatchNorm over the last axis with PyTorch's epsilon/momentum; params and stats in f32
    (then a ReLU if `relu`); `bn_impl` picks its training backward (`bn_custom_backward`)."""
    return BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                     dtype=dtype, scale_init=scale_init, relu=relu,
                     custom_backward=bn_custom_backward(bn_impl), name=name)


class BatchNorm(nn.Module):
    """`flax.linen.BatchNorm` over the last axis (float32 params and statistics, the fast
    variance E[x²] − E[x]²), with the same variables (`params/{scale,bias}`,
    `batch_stats/{mean,var}`) and values, and a written-out training backward (`_bn_train`).

    Why: autodiff of flax's `(x − mean) · (rsqrt(var + eps) · scale) + bias` differentiates
    the mean, E[x²] and the rsqrt separately. The written-out backward is the textbook one: two
    per-channel sums (of dy and dy·(x − mean)) and one dx pass, recomputing x − mean from x
    instead of keeping it. NTU train step on the 2-vCPU CPU, same process, interleaved:
    2.364 -> 2.311 s (benchmarks/README.md "Round 7"). On GPUs, where it is unmeasured, the
    default stays autodiff of the same expression (`custom_backward`).

    `relu=True` returns `relu(BN(x))`; with the written-out backward the ReLU's mask is then
    recomputed from x too, so the pre-activation never needs storing either (NTU step 2.342
    -> 2.328 s median, 2.333 -> 2.303 s best of 5, same process; a small gain).
    """

    use_running_average: bool = False
    momentum: float = BN_MOMENTUM
    epsilon: float = BN_EPSILON
    dtype: Any = jnp.float32
    scale_init: Callable = bn_scale_init
    custom_backward: bool | None = None  # None: on CPU only
    relu: bool = False

    @nn.compact
    def __call__(self, x):
        features = x.shape[-1]
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
        ra_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
        scale = self.param("scale", self.scale_init, (features,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
        out_dtype = jnp.result_type(x.dtype, jnp.float32) if self.dtype is None else (
            jnp.dtype(self.dtype))
        if self.use_running_average:
            # flax's expression, term for term (the parity fixtures are eval-mode features)
            mul = lax.rsqrt(ra_var.value + self.epsilon) * scale
            y = _normalize(x, ra_mean.value, mul, bias).astype(out_dtype)
            return nn.relu(y) if self.relu else y
        custom = self.custom_backward
        if custom is None:
            custom = jax.default_backend() == "cpu"
        if custom:
            y, mean, var = _bn_train(x, scale, bias, self.epsilon, out_dtype, self.relu)
        else:
            (y, mean, var), _ = _bn_train_fwd(x, scale, bias, self.epsilon, out_dtype, False)
            y = nn.relu(y) if self.relu else y
        if not self.is_initializing():
            m = self.momentum
            ra_mean.value = m * ra_mean.value + (1 - m) * mean
            ra_var.value = m * ra_var.value + (1 - m) * var
        return y


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _bn_train(x, scale, bias, epsilon: float, out_dtype, relu: bool):
    """Training-mode batch norm over all but the last axis (then a ReLU if `relu`): (y, batch
    mean, batch variance), statistics in float32 as flax computes them."""
    return _bn_train_fwd(x, scale, bias, epsilon, out_dtype, relu)[0]


def per_channel(v, x):
    """A (C,) vector shaped to broadcast against x (..., C)."""
    return v.reshape((1,) * (x.ndim - 1) + (-1,))


def _normalize(x, mean, mul, bias):
    """flax's `(x − mean) · mul + bias` in float32, with per-channel mean, mul and bias."""
    return ((x.astype(jnp.float32) - per_channel(mean, x)) * per_channel(mul, x)
            + per_channel(bias, x))


def _bn_stats(x):
    axes = tuple(range(x.ndim - 1))
    xf = x.astype(jnp.float32)
    mean = jnp.mean(xf, axes)
    var = jnp.maximum(0.0, jnp.mean(xf * xf, axes) - mean * mean)
    return mean, var


def _bn_train_fwd(x, scale, bias, epsilon, out_dtype, relu):
    mean, var = _bn_stats(x)
    rstd = lax.rsqrt(var + epsilon)
    y = _normalize(x, mean, rstd * scale, bias).astype(out_dtype)
    if relu:
        y = jnp.maximum(y, 0)
    return (y, mean, var), (x, mean, rstd, scale, bias)


def _bn_train_bwd(epsilon, out_dtype, relu, residuals, cotangents):
    del epsilon, out_dtype
    x, mean, rstd, scale, bias = residuals
    dy, d_mean, d_var = cotangents
    axes = tuple(range(x.ndim - 1))
    count = x.size // x.shape[-1]
    centred = x.astype(jnp.float32) - per_channel(mean, x)  # recomputed, never stored
    dy = dy.astype(jnp.float32)
    a = scale * rstd
    if relu:  # the ReLU's mask, from the recomputed pre-activation (jax.nn.relu: 0 at 0)
        pre = centred * per_channel(a, x) + per_channel(bias, x)
        dy = jnp.where(pre > 0, dy, 0.0)
    d_bias = jnp.sum(dy, axes)
    d_scale = jnp.sum(dy * centred, axes) * rstd
    # dx = scale·rstd·(dy − mean(dy) − x̂·mean(dy·x̂)) plus the paths through the returned
    # statistics (zero in a loss that only reads y): d_mean/n and d_var·2(x − mean)/n.
    c0 = d_mean / count - a * d_bias / count
    c1 = 2.0 * d_var / count - a * rstd * d_scale / count
    dx = per_channel(a, x) * dy + per_channel(c0, x) + per_channel(c1, x) * centred
    return dx.astype(x.dtype), d_scale, d_bias


_bn_train.defvjp(_bn_train_fwd, _bn_train_bwd)


def pointwise(features: int, name: str, dtype: Any = jnp.float32) -> nn.Dense:
    """A 1×1 convolution (== Dense over channels), kernel `(I, O)`."""
    return nn.Dense(features, kernel_init=conv_init, bias_init=nn.initializers.zeros,
                    dtype=dtype, param_dtype=jnp.float32, name=name)


def conv1x1_params(module: nn.Module, in_features: int, features: int,
                   kernel_init: Callable = nn.linear.default_kernel_init):
    """A 1×1 `nn.Conv`'s variables created in `module`: `kernel (1, 1, I, O)` and `bias (O)`,
    float32, with `nn.Conv`'s initialisers (checkpoints and converters see an `nn.Conv`)."""
    kernel = module.param("kernel", kernel_init, (1, 1, in_features, features), jnp.float32)
    bias = module.param("bias", nn.initializers.zeros, (features,), jnp.float32)
    return kernel, bias


class Conv1x1(nn.Module):
    """A 1×1 `nn.Conv` over `x_NTVC`: the same variables (`kernel (1, 1, I, O)`, `bias (O)`, the
    same initialisers), applied as a GEMM over channels; `stride` subsamples T first (a strided
    1×1 conv reads only those frames), T being axis `time_axis` (2 for `x_NVTC`).

    Why not `nn.Conv`: XLA:CPU runs a 1×1 conv's kernel gradient as a convolution, at ~2 GFLOP/s
    (110 ms per non-local block per NTU T=300 train step, benchmarks/README.md "Round 16").
    """

    features: int
    stride: int = 1
    kernel_init: Callable = nn.linear.default_kernel_init
    dtype: Any = jnp.float32
    time_axis: int = 1

    @nn.compact
    def __call__(self, x):
        c_in = x.shape[-1]
        kernel, bias = conv1x1_params(self, c_in, self.features, self.kernel_init)
        if self.stride > 1:
            x = lax.slice_in_dim(x, 0, None, stride=self.stride, axis=self.time_axis)
        y = matmul(x.astype(self.dtype), kernel.reshape(c_in, self.features).astype(self.dtype),
                   batch_major=True)
        return y + bias.astype(self.dtype).reshape((1,) * (y.ndim - 1) + (-1,))


class GraphConv(nn.Module):
    """`ConvTemporalGraphical`: 1×1 conv to K·C (K-major), then `Σ_k Σ_v y[v,k,c] · A[k,v,w]`.

    Params: `kernel (Cin, K·Cout)`, `bias (K·Cout)`; output channel `k·Cout + c` belongs to
    subset k, as in the upstream `view(n, K, C, t, v)`. Input and output are `x_NTVC`, or
    `x_VNTC` with `layout="VNTC"` (factored impl only).
    """

    features: int
    num_subsets: int
    aggregate_first: bool | None = None  # None: whichever side is cheaper
    # "factored" (the upstream order, maybe reordered) | "kron" | "sparse" (VNTC only)
    impl: str = "factored"
    layout: str = "NTVC"
    dtype: Any = jnp.float32
    # impl="sparse": the (k, v, w) entries where the adjacency may be non-zero
    # (`graph_sparse.support_of`); the adjacency must be zero everywhere else.
    support: tuple | None = None
    sparse_form: str | None = None  # impl="sparse": `graph_sparse.FORMS`, None = per backend

    @nn.compact
    def __call__(self, x, adj_KVV):
        k, c_out = self.num_subsets, self.features
        c_in = x.shape[-1]
        if adj_KVV.shape[0] != k:
            raise ValueError(f"GraphConv: adjacency has {adj_KVV.shape[0]} subsets, expected {k}")
        if self.impl not in ("factored", "kron", "sparse"):
            raise ValueError(f"GraphConv: unknown impl {self.impl!r} (factored | kron | sparse)")
        check_layout(self.layout, "GraphConv")
        if self.impl == "kron" and self.layout != "NTVC":
            raise ValueError("GraphConv: impl='kron' needs layout='NTVC' (it multiplies the "
                             "V·C-wide rows of each frame)")
        if self.impl == "sparse" and (self.layout != "VNTC" or self.support is None):
            raise ValueError("GraphConv: impl='sparse' needs layout='VNTC' (a node's row is "
                             "contiguous there) and the adjacency's `support`")
        kernel = self.param("kernel", conv_init, (c_in, k * c_out), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (k * c_out,), jnp.float32)
        x = x.astype(self.dtype)
        adj_KVV = adj_KVV.astype(self.dtype)
        kernel, bias = kernel.astype(self.dtype), bias.astype(self.dtype)
        first = self.aggregate_first if self.aggregate_first is not None else c_in < c_out
        # The upstream bias is added before the aggregation: Σ_k b_k · colsum(A_k) after it.
        bias_WD = jnp.einsum("kw,kd->wd", adj_KVV.sum(1), bias.reshape(k, c_out))
        if self.impl == "sparse":
            return graph_sparse.graph_conv_sparse_vntc(x, adj_KVV, kernel, bias_WD,
                                                       self.support, first, self.sparse_form)
        if self.layout == "VNTC":
            return _graph_conv_vntc(x, adj_KVV, kernel, bias, bias_WD, first)
        n, t, v, _ = x.shape
        if self.impl == "kron":
            # M[v, c, w, d] = Σ_k A[k, v, w] · W[c, k, d]: one (V·Cin) x (V·Cout) GEMM per frame.
            w_CKD = kernel.reshape(c_in, k, c_out)
            m_VCWD = jnp.einsum("kvw,ckd->vcwd", adj_KVV, w_CKD)
            # A 2-D GEMM plus a bias vector over its columns, the form cuBLAS can add in its
            # epilogue: added to the 4-D view, XLA:GPU wrote the broadcast bias out as a
            # full-size array for the GEMM to read (0.3-0.4 ms a block on an H100, sweep-2
            # profile in benchmarks/README.md "GPU tuning").
            y_MD = jnp.dot(x.reshape(n * t, v * c_in), m_VCWD.reshape(v * c_in, v * c_out))
            return (y_MD + bias_WD.reshape(1, v * c_out)).reshape(n, t, v, c_out)
        if not first:
            y = matmul(x, kernel, batch_major=True)
            y_NTVKC = (y + per_channel(bias, y)).reshape(n, t, v, k, c_out)
            return jnp.einsum("ntvkc,kvw->ntwc", y_NTVKC, adj_KVV)
        xa_NTWKC = jnp.einsum("ntvc,kvw->ntwkc", x, adj_KVV)
        w_KCD = kernel.reshape(c_in, k, c_out).transpose(1, 0, 2)
        y_NTWD = matmul(xa_NTWKC.reshape(n, t, v, k * c_in), w_KCD.reshape(k * c_in, c_out),
                        batch_major=True)
        return y_NTWD + bias_WD[None, None]


def _graph_conv_vntc(x_VNTC, adj_KVV, kernel, bias, bias_WD, aggregate_first: bool):
    """The factored graph conv on V-major activations, as plain 2-D GEMMs.

    With V outermost, `A_kᵀ @ x` is a (W, V) @ (V, N·T·C) product and the 1×1 conv a
    (V·N·T, C) @ (C, D) one, so neither needs a transpose; the K subsets are K GEMMs whose
    sum XLA fuses.
    """
    v, n, t, c_in = x_VNTC.shape
    k, c_out = adj_KVV.shape[0], bias_WD.shape[-1]
    w_CKD = kernel.reshape(c_in, k, c_out)
    if aggregate_first:
        # xa[k, w] = Σ_v A[k, v, w] x[v]: one (K·W, V) @ (V, N·T·Cin) GEMM.
        adj_KWV = adj_KVV.transpose(0, 2, 1).reshape(k * v, v)
        xa_KMC = jnp.dot(adj_KWV, x_VNTC.reshape(v, n * t * c_in)).reshape(k, v * n * t, c_in)
        y_MD = sum(matmul(xa_KMC[j], w_CKD[:, j]) for j in range(k))
        return y_MD.reshape(v, n, t, c_out) + bias_WD[:, None, None]
    # h[k, v] = x[v] @ W_k + b_k, then y[w] = Σ_{k,v} A[k, v, w] h[k, v]: (W, K·V) @ (K·V, ·).
    x_MC = x_VNTC.reshape(v * n * t, c_in)
    h_KMD = jnp.stack([matmul(x_MC, w_CKD[:, j]) for j in range(k)])
    h_KMD = h_KMD + bias.reshape(k, 1, c_out)
    adj_WKV = adj_KVV.transpose(2, 0, 1).reshape(v, k * v)
    y = jnp.dot(adj_WKV, h_KMD.reshape(k * v, n * t * c_out))
    return y.reshape(v, n, t, c_out)


def sharded_tcn_impl(tcn_impl: str, batch_shards: int, train: bool) -> str:
    """`TemporalConv.impl` for activations whose batch axis is split over `batch_shards`
    devices: unchanged on one; above, "auto" becomes the 9-tap matmul for CPU training
    (XLA:CPU's conv weight gradient is slow) and `lax.conv` elsewhere, never the FFT form,
    whose FFTs XLA's SPMD partitioner replicates by all-gathering the global batch (round 22:
    most of the 47 gathers of a 2-device NTU step). NTU T=300 train step on two host devices
    (one-off, round 23): FFT 7.28 s, matmul 6.43 s, lax.conv 18.5 s. Explicit impls stay."""
    if batch_shards < 1:
        raise ValueError(f"batch_shards must be >= 1, got {batch_shards}")
    if batch_shards == 1 or tcn_impl != "auto":
        return tcn_impl
    return "matmul" if train and jax.default_backend() == "cpu" else "conv"


class TemporalConv(nn.Module):
    """(kernel_size × 1) conv over time with explicit symmetric zero padding and a stride.

    Params `kernel (kernel_size, 1, Cin, Cout)` (HWIO), `bias (Cout)`; upstream `tcn.2`. Input
    and output are `x_NTVC`, or `x_VNTC` / `x_NVTC` with `layout="VNTC"` / `"NVTC"` (the
    formulations see only the T axis and the channels).
    """

    features: int
    kernel_size: int = 9
    stride: int = 1
    impl: str = "auto"  # "matmul" | "conv" | "fft" | "auto"
    dtype: Any = jnp.float32
    layout: str = "NTVC"
    kernel_init: Callable = conv_init

    @nn.compact
    def __call__(self, x, train: bool = True):
        ks, s = self.kernel_size, self.stride
        if ks % 2 != 1:
            raise ValueError(f"TemporalConv: kernel_size must be odd, got {ks}")
        check_layout(self.layout, "TemporalConv", TIME_AXES)
        c_in = x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (ks, 1, c_in, self.features),
                            jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        x = x.astype(self.dtype)
        kernel, bias = kernel.astype(self.dtype), bias.astype(self.dtype)
        impl = self.impl
        if impl == "auto":
            # CPU training: XLA:CPU's conv weight gradient is slow and the K-tap GEMMs are at
            # the CPU's GEMM ceiling, so the FFT form, with 4x fewer multiply-adds, is the
            # fastest (NTU step 3.40 -> 2.84 s); bf16 (no bf16 FFT) keeps the matmul.
            # CPU inference: XLA's forward conv beats the FFTs and their transposes except
            # on wide stride-1 blocks (NTU eval forward 0.82 -> 0.75 s with FFTs from 256
            # channels, benchmarks/README.md). Accelerators: lax.conv (cuDNN).
            cpu, full = jax.default_backend() == "cpu", jnp.finfo(self.dtype).bits >= 32
            if cpu and train:
                impl = "fft" if full else "matmul"
            elif cpu and full and s == 1 and min(c_in, self.features) >= FFT_INFER_CHANNELS:
                impl = "fft"
            else:
                impl = "conv"
        if impl not in _TCN_IMPLS:
            raise ValueError(f"TemporalConv: unknown impl {self.impl!r} "
                             f"({' | '.join(_TCN_IMPLS)} | auto)")
        y = _TCN_IMPLS[impl](x, kernel, s, time_axis=time_axis(self.layout))
        return y + per_channel(bias, y)


def _tcn_conv(x, kernel_K1IO, stride: int, time_axis: int = 1):
    """The (K, 1) temporal conv with symmetric padding as `lax.conv_general_dilated`.

    `time_axis=1` (NTVC): NHWC with H = T. `time_axis=2` (VNTC): NHWC with H = N, W = T and the
    kernel turned to (1, K).
    """
    pad = (kernel_K1IO.shape[0] - 1) // 2
    if time_axis == 1:
        return lax.conv_general_dilated(x, kernel_K1IO, (stride, 1), ((pad, pad), (0, 0)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if stride == 1:
        return _conv_along_w(x, kernel_K1IO, (pad, pad))
    return _tcn_conv_polyphase(x, kernel_K1IO, stride)


def _conv_along_w(x_VNTC, kernel_K1IO, padding: tuple[int, int]):
    """Stride-1 conv along T of `x_VNTC` as NHWC with H = N, W = T, kernel (1, K)."""
    return lax.conv_general_dilated(x_VNTC, kernel_K1IO.transpose(1, 0, 2, 3), (1, 1),
                                    ((0, 0), padding),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _stride_phases(kernel_size: int, stride: int, t: int) -> list[tuple[int, list, list]]:
    """`(r, taps, offsets)` for each phase `x[r::s]` of a length-t input that a tap reads.

    Output frame u, tap j reads frame s·u + j − pad = s·(u + a) + r with r = (j − pad) mod s
    and a = (j − pad) // s: phase r at offset a. Phases no tap reads, or empty ones (r >= t,
    which would only meet padding), are left out; phase 0 always holds the centre tap.
    """
    pad = (kernel_size - 1) // 2
    phases = []
    for r in range(min(stride, t)):
        taps = [j for j in range(kernel_size) if (j - pad) % stride == r]
        if taps:
            phases.append((r, taps, [(j - pad) // stride for j in taps]))
    return phases


def _tcn_conv_polyphase(x_VNTC, kernel_K1IO, stride: int):
    """The stride-s conv as a sum over the s phases `x[r::s]` (`_stride_phases`), each a
    stride-1 conv with the taps that read it.

    Same products, summed in another order. XLA:CPU computes a strided conv's input gradient
    as a dilated conv; these stride-1 convs' forward+backward run 1.35-1.6x faster (NTU
    stride-2 blocks, benchmarks/README.md). Negative padding crops.
    """
    t = x_VNTC.shape[2]
    t_out = (t - 1) // stride + 1
    y = None
    for r, taps, offsets in _stride_phases(kernel_K1IO.shape[0], stride, t):
        x_r = x_VNTC[:, :, r::stride]
        lo = -offsets[0]
        hi = t_out - x_r.shape[2] + len(taps) - 1 - lo
        y_r = _conv_along_w(x_r, kernel_K1IO[np.array(taps)], (lo, hi))
        y = y_r if y is None else y + y_r
    return y


def _tcn_matmul(x, kernel_K1IO, stride: int, time_axis: int = 1):
    """The same conv as K shifted (strided) slices stacked on channels and one matmul."""
    ks, _, c_in, c_out = kernel_K1IO.shape
    pad = (ks - 1) // 2
    t_out = (x.shape[time_axis] - 1) // stride + 1
    xp = jnp.pad(x, [(pad, pad) if a == time_axis else (0, 0) for a in range(x.ndim)])
    taps = [lax.slice_in_dim(xp, j, j + stride * (t_out - 1) + 1, stride=stride, axis=time_axis)
            for j in range(ks)]
    # Channel index j·Cin + c matches kernel.reshape(ks·Cin, Cout).
    return jnp.dot(jnp.concatenate(taps, axis=-1), kernel_K1IO.reshape(ks * c_in, c_out))


def fft_length(n: int) -> int:
    """The smallest 5-smooth integer (2^a 3^b 5^c) >= n: the FFT sizes DUCC runs fastest."""
    m = max(n, 1)
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def _tcn_fft(x, kernel_K1IO, stride: int, time_axis: int = 1):
    """The same conv as a product in the frequency domain along T (the convolution theorem).

    Every stride phase `x[r::s]` (`_stride_phases`) is zero-padded to L and
    transformed with a real FFT; per frequency f the output spectrum is one complex matrix
    product `Y_f = Σ_r X_{r,f} W_{r,f}` with `W_{r,f} = Σ_j w_j e^{2πi f a_j / L}` (tap j reads
    phase r at offset a_j); an inverse FFT and a crop give y. L >= T_out + max a and
    >= T_r − min a, so the circular wrap only ever reads the zero padding: the result is the
    linear conv, the same sums in another order, exact up to float32 rounding.

    Why: a K-tap conv costs K·Cin·Cout multiply-adds per output frame and row; this costs
    4·Cin·Cout·(L/2 + 1)/T (one complex product per frequency), 4.2x fewer for K = 9, T = 300,
    L = 320, plus O(C·L log L) for the FFTs. On XLA:CPU, fwd+bwd of one stride-1 NTU block
    (N·M = 8, V = 25) took 87 / 115 / 154 ms at 64 / 128 / 256 channels against 117 / 184 /
    315 ms for the matmul (benchmarks/tcn_formulations.py). There are no bf16 FFTs: bf16 inputs are
    transformed in float32 and the result cast back.
    """
    ks, _, c_in, c_out = kernel_K1IO.shape
    t = x.shape[time_axis]
    t_out = (t - 1) // stride + 1
    phases = _stride_phases(ks, stride, t)
    length = fft_length(max(max(t_out + offsets[-1], len(range(r, t, stride)) - offsets[0])
                            for r, _, offsets in phases))
    real = jnp.promote_types(x.dtype, jnp.float32)  # FFTs have no bf16: f32 (or f64)
    freq_F1 = np.arange(length // 2 + 1)[:, None]
    # (..., T, C) -> (rows, C, T): the FFT runs along the last axis.
    x_RCT = jnp.moveaxis(x, time_axis, -1).astype(real)
    lead = x_RCT.shape[:-2]
    x_RCT = x_RCT.reshape(-1, c_in, t)
    spectra, weights = [], []
    for r, taps, offsets in phases:
        x_RCF = jnp.fft.rfft(x_RCT[:, :, r::stride], n=length)
        spectra.append(x_RCF.transpose(2, 0, 1))  # F R C: the frequency is the batch axis
        # e^{2πi f a / L} as constants, the angle reduced exactly in integers and rounded once.
        phase_FJ = 2 * np.pi / length * ((freq_F1 * np.array([offsets])) % length)
        w_JD = kernel_K1IO[np.array(taps), 0].astype(real)
        w_JD = w_JD.reshape(len(taps), c_in * c_out)
        w_FD = [jnp.matmul(jnp.asarray(table(phase_FJ), real), w_JD,
                           precision=lax.Precision.HIGHEST) for table in (np.cos, np.sin)]
        weights.append(lax.complex(*w_FD).reshape(-1, c_in, c_out))
    x_FRC = jnp.concatenate(spectra, axis=-1)
    w_FCD = jnp.concatenate(weights, axis=1)
    y_FRD = jnp.einsum("frc,fcd->frd", x_FRC, w_FCD)
    y_RDT = jnp.fft.irfft(y_FRD.transpose(1, 2, 0), n=length)[..., :t_out]
    y = jnp.moveaxis(y_RDT.reshape(*lead, c_out, t_out), -1, time_axis)
    return y.astype(x.dtype)


_TCN_IMPLS = {"matmul": _tcn_matmul, "conv": _tcn_conv, "fft": _tcn_fft}


def dropout_bits(rate: float) -> int:
    """Random bits per element for a dropout `rate`: the fewest b <= 16 with rate·2^b an
    integer (so the drop probability is exactly `rate`), else 16 (within 2^-17 of it)."""
    for b in range(1, 17):
        if float(rate * 2 ** b).is_integer():
            return b
    return 16


def ntvc_ordered_bits(key, shape: tuple[int, ...], layout: str | None):
    """uint32 random words of `shape`, stored in `layout` (one of `TIME_AXES`; None: as is),
    each a function of the key and its position in NTVC order only.

    For threefry keys these are the words `jax.random.bits(key, ntvc_shape)` draws with
    partitionable threefry (JAX's default; word i = threefry2x32(key, (0, i)), halves
    xor-ed), computed in place in every layout, NTVC included, so the layouts agree whatever
    `jax_threefry_partitionable` says: each element's NTVC flat index comes from iotas, so
    there is no transpose and a sharded batch axis stays sharded. Drawing then transposing
    cost 4% of the NTU train step on a VNTC model (round 23). Other key types draw in NTVC
    order and transpose.
    """
    if layout is None:
        return jax.random.bits(key, shape, jnp.uint32)
    ntvc_axis = _FROM_NTVC[layout] or tuple(range(len(shape)))  # stored axis d: NTVC axis
    ntvc_shape = tuple(shape[i] for i in (_TO_NTVC[layout] or range(len(shape))))
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)  # a raw uint32 key of the default impl
    if str(jax.random.key_impl(key)) != "threefry2x32" or np.prod(shape) >= 2 ** 32:
        return from_ntvc(jax.random.bits(key, ntvc_shape, jnp.uint32), layout)
    from jax.extend.random import threefry2x32_p
    strides = np.cumprod((1,) + ntvc_shape[:0:-1])[::-1]  # row-major strides of ntvc_shape
    index = sum(lax.broadcasted_iota(jnp.uint32, shape, d) * jnp.uint32(strides[ntvc_axis[d]])
                for d in range(len(shape)) if shape[d] > 1)
    index = jnp.broadcast_to(jnp.asarray(index, jnp.uint32), shape)
    k1, k2 = jax.random.key_data(key)
    bits1, bits2 = threefry2x32_p.bind(k1, k2, jnp.zeros_like(index), index)
    return bits1 ^ bits2


def dropout_keep_mask(key, rate: float, shape: tuple[int, ...], layout: str | None = None):
    """Boolean keep mask, P(False) = `rate` per element, from `dropout_bits(rate)` bits each.

    `bernoulli` draws one 32-bit threefry word per element; at rate 0.5 one word serves 32
    elements here. The words have `shape`'s leading dims (so a sharded batch axis stays
    sharded) and are spread along the last axis: element c of a row reads field c mod k of
    word c // k, k = 32 // b. With a `layout` (one of `TIME_AXES`; `shape` is then in it) the
    words follow the NTVC order (`ntvc_ordered_bits`), so a key drops the same elements of the
    activations in every layout: a model's layout can follow the device count
    (`model.AMSTGCN.batch_shards`) without changing its training run.
    """
    b = dropout_bits(rate)
    per_word = 32 // b
    c = shape[-1]
    words = ntvc_ordered_bits(key, tuple(shape[:-1]) + (-(-c // per_word),), layout)
    shifts = (jnp.arange(per_word, dtype=jnp.uint32) * b).reshape((1,) * len(shape) + (-1,))
    fields = (words[..., None] >> shifts) & jnp.uint32(2 ** b - 1)
    fields = fields.reshape(tuple(shape[:-1]) + (-1,))[..., :c]
    return fields >= jnp.uint32(round(rate * 2 ** b))


class Dropout(nn.Module):
    """Inverted dropout (`torch.nn.Dropout`, `flax.linen.Dropout`): zero each element with
    probability `rate`, scale the rest by 1/(1 - rate); identity when `deterministic`.

    Deliberate difference from `nn.Dropout`: the mask spends `dropout_bits(rate)` random bits
    per element instead of 32 (`dropout_keep_mask`), which took threefry from ~5% of the XLA:CPU
    training step. Masks differ from `nn.Dropout`'s for the same key; the distribution does not
    (exactly `rate` when rate·2^16 is an integer, as for the configs' 0.5). With a `layout`
    (x's, one of `TIME_AXES`) the mask is the same for x_NTVC in every layout.
    """

    rate: float
    deterministic: bool | None = None
    rng_collection: str = "dropout"
    layout: str | None = None

    @nn.compact
    def __call__(self, x, deterministic: bool | None = None):
        deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
        if self.rate == 0.0 or deterministic:
            return x
        if not 0.0 < self.rate <= 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1], got {self.rate}")
        if self.rate == 1.0:
            return jnp.zeros_like(x)
        keep = dropout_keep_mask(self.make_rng(self.rng_collection), self.rate, x.shape,
                                 self.layout)
        return lax.select(keep, x / jnp.asarray(1.0 - self.rate, x.dtype), jnp.zeros_like(x))


def make_attention(kind: str, where: str, index: int, options: dict, dtype: Any,
                   batch_shards: int = 1) -> nn.Module:
    """An attention module from `amstgcn_jax.attention` (imported lazily), named `attn_{where}{j}`.
    `dtype` and `batch_shards` (the devices splitting the batch) reach modules that have them.

    The non-local block attends among the joints of each frame after ConvS ("spatial") and over
    all T×V positions after ConvT ("spatiotemporal") unless `options` sets `mode`.
    """
    from amstgcn_jax import attention  # lazy: plain ST-GCN never needs it

    classes = {"nonlocal": "NonLocalBlock", "cbam": "CBAM", "se": "SEBlock"}
    if kind not in classes:
        raise ValueError(f"unknown attention kind {kind!r}; known: {sorted(classes)}")
    cls = getattr(attention, classes[kind])
    options = dict(options)
    if kind == "nonlocal":
        options.setdefault("mode", "spatial" if where == "convs" else "spatiotemporal")
    fields = getattr(cls, "__dataclass_fields__", {})
    if "dtype" in fields:
        options.setdefault("dtype", dtype)
    if "batch_shards" in fields:
        options.setdefault("batch_shards", batch_shards)
    return cls(**options, name=f"attn_{where}{index}")


class STGCNBlock(nn.Module):
    """`st_gcn` block: gcn → [attn ConvS] → BN → ReLU → conv(9,1)/s → BN → Dropout → [attn ConvT]
    → + residual → ReLU.

    `residual=False` gives no residual (upstream block 0); otherwise identity when the shape is
    kept, else `residual_conv` (1×1, stride s) + `residual_bn`. Attention entries are
    `(kind, options)` pairs applied in order; ConvT attention sits on the output of the whole
    upstream `tcn` Sequential (after its Dropout), right before the residual add. Input and
    output are `x_NTVC`, or `x_VNTC` with `layout="VNTC"`; attention modules always see
    `x_NTVC` (transposed to it and back).
    """

    features: int
    num_subsets: int
    stride: int = 1
    residual: bool = True
    dropout: float = 0.0
    temporal_kernel: int = 9
    tcn_impl: str = "auto"
    gcn_impl: str = "factored"
    gcn_support: tuple | None = None  # the adjacency's non-zeros, for gcn_impl="sparse"
    bn_impl: str = "auto"  # the BatchNorms' training backward (`BN_IMPLS`)
    block_output: str = "auto"  # whether the output is stored (`BLOCK_OUTPUTS`, `store`)
    attention_convs: tuple = ()
    attention_convt: tuple = ()
    batch_shards: int = 1  # devices splitting the batch, for the attention blocks
    dtype: Any = jnp.float32
    layout: str = "NTVC"

    @nn.compact
    def __call__(self, x, adj_KVV, train: bool = False):
        s, dtype, layout = self.stride, self.dtype, check_layout(self.layout, "STGCNBlock")
        x = x.astype(dtype)
        if not self.residual:
            res = None
        elif x.shape[-1] == self.features and s == 1:
            res = x
        else:
            strided = lax.slice_in_dim(x, 0, None, stride=s, axis=time_axis(layout))
            res = pointwise(self.features, "residual_conv", dtype)(strided)
            res = batch_norm(train, "residual_bn", dtype, bn_impl=self.bn_impl)(res)

        y = GraphConv(self.features, self.num_subsets, impl=self.gcn_impl, layout=layout,
                      dtype=dtype, support=self.gcn_support, name="gcn")(x, adj_KVV)
        y = self._attend(y, "convs", self.attention_convs, train)
        y = batch_norm(train, "tcn_bn0", dtype, relu=True, bn_impl=self.bn_impl)(y)
        y = TemporalConv(self.features, self.temporal_kernel, s, self.tcn_impl, dtype,
                         layout, name="tcn_conv")(y, train)
        y = batch_norm(train, "tcn_bn1", dtype, bn_impl=self.bn_impl)(y)
        if self.dropout > 0:
            y = Dropout(self.dropout, deterministic=not train, layout=layout)(y)
        y = self._attend(y, "convt", self.attention_convt, train)
        if res is not None:
            y = y + res
        # stored along V or T, never the batch axis
        return store_block_output(nn.relu(y), 0 if layout == "VNTC" else time_axis(layout),
                                  self.block_output)

    def _attend(self, y, where: str, entries: tuple, train: bool):
        if not entries:
            return y
        y_NTVC = to_ntvc(y, self.layout)
        for j, (kind, options) in enumerate(entries):
            y_NTVC = make_attention(kind, where, j, dict(options), self.dtype,
                                    self.batch_shards)(y_NTVC, train)
        return from_ntvc(y_NTVC, self.layout)
