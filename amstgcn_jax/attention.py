"""Attention blocks on channels-last skeleton maps `x_NTVC`: non-local (AM-STGCN), CBAM, SE.

Every module is `__call__(x_NTVC, train) -> x_NTVC` (same shape, same dtype as the input; the
branch is computed in `dtype` with float32 parameters, softmax and BatchNorm statistics).

NonLocalBlock mirrors the embedded-Gaussian non-local block of Wang et al., "Non-local Neural
Networks" (CVPR 2018; facebookresearch/video-nonlocal-net, and its common PyTorch port
AlexHex7/Non-local_pytorch `lib/non_local_embedded_gaussian.py`), as AM-STGCN (Kong et al.,
../shared/paper/am-stgcn.txt §3.2) uses it: theta/phi/g 1x1 convs to `C * inner_ratio` channels,
softmax(theta phi^T) without 1/sqrt(d) scaling, attention-weighted g, a 1x1 output conv back to C
and a BatchNorm whose scale and bias start at zero, then the residual add. The block is therefore
exactly the identity at initialisation.

Choices where the paper is silent or ambiguous (all are attributes):
* `mode`: "spatial" = the positions are the V joints of each frame (the paper's placement after
  ConvS: "can only learn the correlation of all nodes in one frame"); "spatiotemporal" = all T*V
  positions of the clip (after ConvT: "the correlation of all nodes in all frames"); "temporal"
  (extra) = the T frames of each joint.
* Sub-sampling: the paper says "2x2 MaxPooling after theta, phi". In the original non-local block
  the pooling is on phi and g (the keys and values), which keeps one output per query position;
  that is the default `pool_on=("phi", "g")`. `pool_on=("theta", "phi", "g")` follows the paper's
  words literally: the queries are pooled too and the output is nearest-upsampled back to (T, V).
  phi and g must be pooled together (keys and values need the same positions). `pool_size` <= 1 or
  `pool_on=()` disables pooling. Pooling never mixes frames in spatial mode (window 1 x s over
  V) nor joints in temporal mode (s x 1 over T); spatiotemporal pools s x s over (T, V).
  Windows use "ceil" mode (padding with -inf) so no joint is dropped when V or T is odd (V=25,
  18); PyTorch's default MaxPool2d would floor and drop the last joint.
* Attention weights are sown as `intermediates/.../attention` only when the "intermediates"
  collection is mutable (Linen's `sow` semantics), with shape (N, T, V, V') in spatial mode,
  (N, V, T, T') in temporal mode and (N, T*V, T'*V') in spatiotemporal mode (' = after pooling).
  `attention_impl`: "reference" = two einsums around a float32 softmax (on XLA:CPU it ran 1.7x
  faster fwd+bwd than `jax.nn.dot_product_attention`'s XLA path at T=300, V=25, C=64);
  "chunked" = the same computation over blocks of query rows (rows of one sequence, or whole
  sequences when one fits) under `lax.map` with a written-out backward pass (`_attend_blocks`:
  it keeps each row's log-sum-exp and recomputes the weights block by block,
  FlashAttention-style), so the full (positions x keys) matrix is never stored: with
  `jax.checkpoint` around each block (its first form) it was already 2.0x faster fwd+bwd than
  "reference" on XLA:CPU for the spatiotemporal block at T=300, V=25 (8 sequences of 7,500
  queries x 1,950 keys: 0.95 vs 1.93 s), and memory falls from ~1 GB to `chunk_elements` per
  block; None (default) =
  "chunked" when the matrix has more than `chunk_elements` entries (default 2^21 on CPU,
  2^28 elsewhere), else "reference" -- except on a GPU with a bf16/fp16 compute dtype, where
  the temporal and spatio-temporal blocks default to "cudnn" (Ampere or newer; where jax
  still refuses it at trace time, the automatic choice falls back to "chunked"); "xla" / "cudnn" =
  `jax.nn.dot_product_attention` with that implementation ("cudnn" is flash attention on GPU:
  bf16/fp16 only, head dim a multiple of 8, never materialises the weights; odd sequence
  lengths, which jax's cuDNN path rejects when training, e.g. Kinetics' 2,700 x 675, are padded
  to even and the padding masked with per-sequence lengths). Sowing always uses the reference
  path. All paths agree to float rounding (tested on CPU; cuDNN on GPU).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from amstgcn_jax import layers
from amstgcn_jax.matmul import matmul

_MODES = ("spatial", "temporal", "spatiotemporal")
# Default `chunk_elements`: the most attention weights one block of the blocked path holds.
CPU_CHUNK_ELEMENTS = 2**21
ACCELERATOR_CHUNK_ELEMENTS = 2**28


def _attend_reference(q_BPC, k_BSC, v_BSC):
    """softmax(q k^T) v with float32 logits and softmax; returns (out_BPC, attn_BPS)."""
    logits_BPS = jnp.einsum("bpc,bsc->bps", q_BPC, k_BSC, preferred_element_type=jnp.float32)
    attn_BPS = jax.nn.softmax(logits_BPS, axis=-1)
    out_BPC = jnp.einsum("bps,bsc->bpc", attn_BPS.astype(v_BSC.dtype), v_BSC,
                         preferred_element_type=jnp.float32)
    return out_BPC.astype(v_BSC.dtype), attn_BPS


def _attend_chunked(q_BPC, k_BSC, v_BSC, max_elements: int, batch_shards: int = 1):
    """`_attend_reference`'s output over blocks of query rows, with a written-out backward pass.

    Each row's softmax still spans every key, so the result is the reference one up to
    rounding; only the stored/streamed intermediate shrinks to ~max_elements. The forward keeps
    each row's log-sum-exp; the backward recomputes the weights from it block by block and uses
    `rowsum(dY ∘ Y)` for the softmax correction, where autodiff through a rematerialised
    softmax recomputes the max and the sum and reduces `dP ∘ P` over every key (FlashAttention,
    Dao et al. 2022, §3.1).

    A block is `rows` query rows of one sequence when a whole sequence's weights exceed the
    budget, else `group` whole sequences. Why one sequence: its products are plain 2-D GEMMs.
    XLA:CPU ran the same (rows x keys x 32) products batched over the 8 sequences of an NTU
    block at 68-102 GFLOP/s, and as 2-D GEMMs at 122-180 (benchmarks/README.md, "Attention
    overhead").

    With the batch split over `batch_shards` > 1 devices every block holds `rows` rows of all
    sequences instead (`max_elements` per device): the loop then runs along the rows, and the
    sharded sequence axis stays a mapped axis of each block. Blocks of some sequences made
    XLA's SPMD partitioner all-gather the global batch in every iteration (30 gathers in a
    2-device AM-STGCN NTU step, round 23).
    """
    b, p, _ = q_BPC.shape
    s = max(1, k_BSC.shape[1])
    if batch_shards > 1:
        rows = max(1, max_elements * batch_shards // (b * s))
        return _attend_blocks(q_BPC, k_BSC, v_BSC, -(-p // -(-p // rows)), b)
    if max_elements >= p * s:  # whole sequences: `group` of them per block
        group = min(b, max_elements // (p * s))
        n_groups = -(-b // group)  # as few groups as fit, then of equal size (less padding)
        return _attend_blocks(q_BPC, k_BSC, v_BSC, p, -(-b // n_groups))
    n_blocks = -(-p // max(1, max_elements // s))
    return _attend_blocks(q_BPC, k_BSC, v_BSC, -(-p // n_blocks), 1)


def _mm(spec: str, a_GXY, b_GYZ):
    """A batched einsum over a leading group axis, as a 2-D one when the group is 1 (XLA:CPU
    ran a batch-1 dot up to 1.6x slower than the same 2-D GEMM)."""
    if a_GXY.shape[0] == 1:
        return jnp.einsum(spec, a_GXY[0], b_GYZ[0], preferred_element_type=jnp.float32)[None]
    return jnp.einsum("g" + spec.replace(",", ",g").replace("->", "->g"), a_GXY, b_GYZ,
                      preferred_element_type=jnp.float32)


def _group_of_block(n_blocks: int, groups: int):
    """The sequence group each block reads (blocks are group-major, as `_to_blocks` lays them
    out): a constant index vector."""
    return np.arange(n_blocks, dtype=np.int32) // (n_blocks // groups)


def _to_blocks(x_BPC, rows: int, group: int):
    """(B, P, ...) -> (blocks, group, rows, ...): `rows` positions of `group` sequences each,
    zero-padded along P to whole blocks and along B to whole groups."""
    b, p = x_BPC.shape[:2]
    per_seq, groups = -(-p // rows), -(-b // group)
    pads = [(0, groups * group - b), (0, per_seq * rows - p)] + [(0, 0)] * (x_BPC.ndim - 2)
    x = jnp.pad(x_BPC, pads).reshape(groups, group, per_seq, rows, *x_BPC.shape[2:])
    return jnp.swapaxes(x, 1, 2).reshape(groups * per_seq, group, rows, *x_BPC.shape[2:])


def _from_blocks(x_IGR, b: int, p: int, per_seq: int):
    """Inverse of `_to_blocks`, dropping the padding: (blocks, group, rows, ...) -> (B, P, ...)."""
    n, group, rows = x_IGR.shape[:3]
    x = x_IGR.reshape(n // per_seq, per_seq, group, rows, *x_IGR.shape[3:])
    x = jnp.swapaxes(x, 1, 2).reshape(-1, per_seq * rows, *x_IGR.shape[3:])
    return x[:b, :p]


def _block_forward(q_GRC, k_GSC, v_GSC):
    """One block of rows: (out_GRC in v's dtype, log-sum-exp of the float32 logits)."""
    logits_GRS = _mm("rc,sc->rs", q_GRC, k_GSC)
    m_GR = jnp.max(logits_GRS, axis=-1)
    e_GRS = jnp.exp(logits_GRS - m_GR[..., None])
    l_GR = jnp.sum(e_GRS, axis=-1)
    out_GRC = _mm("rs,sc->rc", e_GRS.astype(v_GSC.dtype), v_GSC) / l_GR[..., None]
    return out_GRC.astype(v_GSC.dtype), m_GR + jnp.log(l_GR)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _attend_blocks(q_BPC, k_BSC, v_BSC, rows: int, group: int):
    """softmax(q kᵀ) v, computed in blocks of `rows` query rows of `group` sequences."""
    return _attend_blocks_fwd(q_BPC, k_BSC, v_BSC, rows, group)[0]


def _attend_blocks_fwd(q_BPC, k_BSC, v_BSC, rows, group):
    b, p, _ = q_BPC.shape
    q_IGRC = _to_blocks(q_BPC, rows, group)
    # every block of a group reads all of its keys: one block of S rows per group
    k_HGSC, v_HGSC = (_to_blocks(x_BSC, x_BSC.shape[1], group) for x_BSC in (k_BSC, v_BSC))
    group_I = _group_of_block(q_IGRC.shape[0], k_HGSC.shape[0])

    def one(xs):
        q_GRC, h = xs
        return _block_forward(q_GRC, k_HGSC[h], v_HGSC[h])

    out_IGRC, lse_IGR = jax.lax.map(one, (q_IGRC, group_I))
    out_BPC = _from_blocks(out_IGRC, b, p, q_IGRC.shape[0] // k_HGSC.shape[0])
    return out_BPC, (q_IGRC, k_HGSC, v_HGSC, out_IGRC, lse_IGR)


def _attend_blocks_bwd(rows, group, residuals, d_out_BPC):
    q_IGRC, k_HGSC, v_HGSC, out_IGRC, lse_IGR = residuals
    b, p, _ = d_out_BPC.shape
    groups, _, s, c = k_HGSC.shape
    do_IGRC = _to_blocks(d_out_BPC, rows, group).astype(jnp.float32)  # padding: zero cotangent
    # Σ_s P·dP over the keys equals dY·Y per row (Y = P V): a (rows, C) product, computed once
    # here for all blocks (inside the loop XLA fused it into the (rows, keys) pass, per key).
    delta_IGR = jnp.sum(do_IGRC * out_IGRC.astype(jnp.float32), axis=-1)
    k32_HGSC, v32_HGSC = k_HGSC.astype(jnp.float32), v_HGSC.astype(jnp.float32)
    group_I = _group_of_block(q_IGRC.shape[0], groups)

    # The backward works on the transposed (keys, rows) weights. XLA:CPU's GEMMs (YNNPACK) read
    # a big row-major left operand as stored but repack a big right or transposed one: on a
    # 1,072-row NTU block the key and value gradients Pᵀ dY and dSᵀ q ran at 94-111 GFLOP/s
    # this way against 42-57 as (C, keys) products with the (rows, keys) weights on the right.
    # Only the query gradient pays the repacking now, (dSᵀ)ᵀ K (benchmarks/README.md, "Round 18").
    def block(carry, xs):
        dk_HGSC, dv_HGSC = carry
        q_GRC, lse_GR, do_GRC, delta_GR, h = xs
        attnT_GSR = jnp.exp(_mm("sc,rc->sr", k_HGSC[h], q_GRC) - lse_GR[:, None, :])
        dv_GSC = _mm("sr,rc->sc", attnT_GSR, do_GRC)
        d_attnT_GSR = _mm("sc,rc->sr", v32_HGSC[h], do_GRC)
        d_logitsT_GSR = attnT_GSR * (d_attnT_GSR - delta_GR[:, None, :])
        dq_GRC = _mm("sr,sc->rc", d_logitsT_GSR, k32_HGSC[h])
        dk_GSC = _mm("sr,rc->sc", d_logitsT_GSR, q_GRC.astype(jnp.float32))
        dk_HGSC = jax.lax.dynamic_update_index_in_dim(dk_HGSC, dk_HGSC[h] + dk_GSC, h, 0)
        dv_HGSC = jax.lax.dynamic_update_index_in_dim(dv_HGSC, dv_HGSC[h] + dv_GSC, h, 0)
        return (dk_HGSC, dv_HGSC), dq_GRC

    zeros = (jnp.zeros((groups, group, s, c), jnp.float32),) * 2
    (dk_HGSC, dv_HGSC), dq_IGRC = jax.lax.scan(
        block, zeros, (q_IGRC, lse_IGR, do_IGRC, delta_IGR, group_I))
    dq_BPC = _from_blocks(dq_IGRC, b, p, q_IGRC.shape[0] // groups)
    return (dq_BPC.astype(q_IGRC.dtype), dk_HGSC.reshape(-1, s, c)[:b].astype(k_HGSC.dtype),
            dv_HGSC.reshape(-1, s, c)[:b].astype(v_HGSC.dtype))


_attend_blocks.defvjp(_attend_blocks_fwd, _attend_blocks_bwd)


def max_pool_first(x_NTVC, wt: int, wv: int):
    """Non-overlapping (wt, wv) max pooling over (T, V) in ceil mode (-inf padding, no position
    dropped), written as a running max over the wt·wv strided slices.

    Same values as `nn.max_pool`; the gradient goes to the first maximum of each window in
    row-major order, as XLA's select-and-scatter and PyTorch's MaxPool2d do. The backward is
    elementwise instead of a select-and-scatter (1.6 ms per call on an H100 at NTU shapes).
    """
    _, t, v, _ = x_NTVC.shape
    x_NTVC = jnp.pad(x_NTVC, ((0, 0), (0, -t % wt), (0, -v % wv), (0, 0)),
                     constant_values=-jnp.inf)
    best = None
    for i in range(wt):
        for j in range(wv):
            tap = x_NTVC[:, i::wt, j::wv, :]
            best = tap if best is None else jnp.where(tap > best, tap, best)  # ties: keep first
    return best


def _attend_fused(q_BPC, k_BSC, v_BSC, implementation: str, pad_to_even: bool | None = None):
    """`jax.nn.dot_product_attention` (one head, no 1/sqrt(d) scale) on (B, P, C) sequences.

    `pad_to_even` (default: for cuDNN) pads odd lengths and masks the padding.
    """
    b, p, _ = q_BPC.shape
    s = k_BSC.shape[1]
    lengths = {}
    if pad_to_even is None:
        pad_to_even = implementation == "cudnn"
    if pad_to_even and (p % 2 or s % 2):
        # jax's cuDNN check refuses odd lengths for training; pad to even and mask the pad
        # (cuDNN's padding mask: padded keys get no weight, padded queries are dropped below).
        q_BPC = jnp.pad(q_BPC, ((0, 0), (0, p % 2), (0, 0)))
        k_BSC = jnp.pad(k_BSC, ((0, 0), (0, s % 2), (0, 0)))
        v_BSC = jnp.pad(v_BSC, ((0, 0), (0, s % 2), (0, 0)))
        lengths = {"query_seq_lengths": jnp.full((b,), p, jnp.int32),
                   "key_value_seq_lengths": jnp.full((b,), s, jnp.int32)}
    y_BP1C = jax.nn.dot_product_attention(
        q_BPC[:, :, None, :], k_BSC[:, :, None, :], v_BSC[:, :, None, :], scale=1.0,
        implementation=implementation, **lengths)
    return y_BP1C[:, :p, 0, :]


def _auto_impl(mode: str, dtype, head_dim: int) -> str | None:
    """"cudnn" where flash attention applies (an Ampere or newer GPU, half precision, long
    sequences), else None."""
    if mode == "spatial" or jax.default_backend() != "gpu":
        return None  # per-frame V x V attention: tiny sequences, the einsums are cheaper
    if jnp.dtype(dtype) not in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
        return None
    if not (head_dim % 8 == 0 and head_dim <= 128) or _compute_capability() < (8, 0):
        return None
    return "cudnn"


def _compute_capability() -> tuple[int, ...]:
    """The first device's CUDA compute capability, (0,) when it has none (not CUDA)."""
    try:
        return tuple(int(p) for p in str(jax.devices()[0].compute_capability).split("."))
    except (AttributeError, ValueError):
        return (0,)


class _ConvParams(nn.Module):
    """The parameters of a 1x1 `nn.Conv` (same names, shapes and initialisers), unapplied."""

    features: int

    @nn.compact
    def __call__(self, in_features: int):
        return layers.conv1x1_params(self, in_features, self.features)


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block, identity at init. See the module docstring."""

    mode: str = "spatiotemporal"
    inner_ratio: float = 0.5
    pool_on: tuple[str, ...] = ("phi", "g")
    pool_size: int = 2
    attention_impl: str | None = None  # None (auto) | "reference" | "chunked" | "xla" | "cudnn"
    chunk_elements: int | None = None  # None: CPU_CHUNK_ELEMENTS / ACCELERATOR_CHUNK_ELEMENTS
    batch_shards: int = 1  # devices splitting the batch (`_attend_chunked`); models set it
    dtype: Any = jnp.float32

    def _window(self) -> tuple[int, int]:
        s = self.pool_size
        return {"spatial": (1, s), "temporal": (s, 1), "spatiotemporal": (s, s)}[self.mode]

    def _pool(self, x_NTVC):
        return max_pool_first(x_NTVC, *self._window())

    def _flatten(self, x_NTVC):
        """Groups positions into attention sequences: (batch', positions, C)."""
        n, t, v, c = x_NTVC.shape
        if self.mode == "spatial":
            return x_NTVC.reshape(n * t, v, c)
        if self.mode == "temporal":
            return x_NTVC.transpose(0, 2, 1, 3).reshape(n * v, t, c)
        return x_NTVC.reshape(n, t * v, c)

    def _unflatten(self, y_BPC, n, t, v):
        c = y_BPC.shape[-1]
        if self.mode == "spatial":
            return y_BPC.reshape(n, t, v, c)
        if self.mode == "temporal":
            return y_BPC.reshape(n, v, t, c).transpose(0, 2, 1, 3)
        return y_BPC.reshape(n, t, v, c)

    def _attention_grid(self, attn_BPS, n, t, v):
        if self.mode == "spatial":
            return attn_BPS.reshape(n, t, v, -1)
        if self.mode == "temporal":
            return attn_BPS.reshape(n, v, t, -1)
        return attn_BPS.reshape(n, t * v, -1)

    @nn.compact
    def __call__(self, x_NTVC, train: bool):
        if self.mode not in _MODES:
            raise ValueError(f"NonLocalBlock.mode must be one of {_MODES}, got {self.mode!r}")
        pool_on = set(self.pool_on)
        if not pool_on <= {"theta", "phi", "g"}:
            raise ValueError(f"pool_on entries must be 'theta', 'phi' or 'g', got {self.pool_on}")
        if ("phi" in pool_on) != ("g" in pool_on) or ("theta" in pool_on and "phi" not in pool_on):
            raise ValueError("pool_on must pool 'phi' and 'g' together (keys and values share "
                             f"positions), and 'theta' only with them; got {self.pool_on}")
        pooling = self.pool_size > 1 and bool(pool_on)

        n, t, v, c = x_NTVC.shape
        inner = max(1, int(c * self.inner_ratio))
        h_NTVC = x_NTVC.astype(self.dtype)

        # theta, phi and g are one GEMM over the concatenated kernels (parameters stay three
        # `nn.Conv`-shaped entries); phi and g are pooled together.
        kernels, biases = zip(*(_ConvParams(inner, name=name)(c)
                                for name in ("theta", "phi", "g")))
        kernel = jnp.concatenate(kernels, -1).reshape(c, 3 * inner).astype(self.dtype)
        bias = jnp.concatenate(biases).astype(self.dtype)
        qkv_NTVC = matmul(h_NTVC, kernel, batch_major=True)
        qkv_NTVC = qkv_NTVC + layers.per_channel(bias, qkv_NTVC)
        theta, phi_g = qkv_NTVC[..., :inner], qkv_NTVC[..., inner:]
        if pooling:
            phi_g = self._pool(phi_g)
            if "theta" in pool_on:
                theta = self._pool(theta)
        phi, g = phi_g[..., :inner], phi_g[..., inner:]
        tq, vq = theta.shape[1:3]
        q_BPC, k_BSC, v_BSC = self._flatten(theta), self._flatten(phi), self._flatten(g)

        if self.attention_impl not in (None, "reference", "chunked", "xla", "cudnn"):
            raise ValueError(f"unknown attention_impl {self.attention_impl!r}")
        impl = self.attention_impl or _auto_impl(self.mode, self.dtype, inner)
        fallback = self.attention_impl is None and impl is not None  # auto-chosen cuDNN
        fused = impl in ("xla", "cudnn")
        budget = self.chunk_elements or (CPU_CHUNK_ELEMENTS if jax.default_backend() == "cpu"
                                         else ACCELERATOR_CHUNK_ELEMENTS)
        chunked = impl == "chunked" or (  # the budget is per device
            impl is None
            and q_BPC.shape[0] * q_BPC.shape[1] * k_BSC.shape[1] > budget * self.batch_shards)
        if self.is_mutable_collection("intermediates") or not (fused or chunked):
            y_BPC, attn_BPS = _attend_reference(q_BPC, k_BSC, v_BSC)
            self.sow("intermediates", "attention", self._attention_grid(attn_BPS, n, tq, vq))
        elif chunked:
            y_BPC = _attend_chunked(q_BPC, k_BSC, v_BSC, budget, self.batch_shards)
        else:
            try:
                y_BPC = _attend_fused(q_BPC, k_BSC, v_BSC, impl)
            except (NotImplementedError, RuntimeError):
                # jax refuses cuDNN attention for this GPU/cuDNN/shape at trace time (raised
                # here, also under grad): an automatic choice falls back to the blocked path.
                if not fallback:
                    raise
                y_BPC = _attend_chunked(q_BPC, k_BSC, v_BSC, budget, self.batch_shards)
        y_NTVC = self._unflatten(y_BPC, n, tq, vq)
        if (tq, vq) != (t, v):  # queries were pooled: nearest-upsample back to every position
            wt, wv = self._window()
            y_NTVC = jnp.repeat(jnp.repeat(y_NTVC, wt, axis=1), wv, axis=2)[:, :t, :v]

        w_NTVC = layers.Conv1x1(c, dtype=self.dtype, name="out_conv")(y_NTVC)
        # layers.BatchNorm: flax's BatchNorm with a written-out training backward on CPU
        w_NTVC = layers.batch_norm(train, "out_bn", self.dtype,
                                   scale_init=nn.initializers.zeros)(w_NTVC)
        return x_NTVC + w_NTVC.astype(x_NTVC.dtype)


class SEBlock(nn.Module):
    """Squeeze-and-excitation (Hu et al., CVPR 2018; hujie-frank/SENet): mean over (T, V), a
    C -> C/r -> C MLP (ReLU, sigmoid, biases as in the original Caffe InnerProduct layers), and a
    per-channel rescale. Not the identity at init (it scales by about sigmoid(.) ~ 0.5), as in the
    original; `train` is accepted for a uniform signature."""

    reduction: int = 16
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_NTVC, train: bool):
        c = x_NTVC.shape[-1]
        h_NTVC = x_NTVC.astype(self.dtype)
        s_NC = jnp.mean(h_NTVC.astype(jnp.float32), axis=(1, 2)).astype(self.dtype)
        s_NC = nn.relu(nn.Dense(max(1, c // self.reduction), dtype=self.dtype, name="fc1")(s_NC))
        s_NC = nn.sigmoid(nn.Dense(c, dtype=self.dtype, name="fc2")(s_NC))
        return (h_NTVC * s_NC[:, None, None, :]).astype(x_NTVC.dtype)


class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al., ECCV 2018; Jongchan/attention-module
    `MODELS/cbam.py`): channel attention = sigmoid(MLP(avgpool) + MLP(maxpool)) over (T, V) with a
    shared C -> C/r -> C MLP, then spatial attention = sigmoid(BN(conv([mean_c, max_c]))) with a
    `kernel_size` conv (no bias, 'same' zero padding) + BatchNorm as in the reference.

    On skeleton maps the spatial map is (T, V): the default 7x7 kernel treats it like an image,
    as plugging the reference CBAM into ST-GCN does (it mixes joints by index, not by the
    graph); `kernel_size=(7, 1)` restricts it to time. Not the identity at init.
    """

    reduction: int = 16
    kernel_size: int | tuple[int, int] = 7
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_NTVC, train: bool):
        c = x_NTVC.shape[-1]
        h_NTVC = x_NTVC.astype(self.dtype)
        fc1 = nn.Dense(max(1, c // self.reduction), dtype=self.dtype, name="channel_fc1")
        fc2 = nn.Dense(c, dtype=self.dtype, name="channel_fc2")
        avg_NC = jnp.mean(h_NTVC.astype(jnp.float32), axis=(1, 2)).astype(self.dtype)
        max_NC = jnp.max(h_NTVC, axis=(1, 2))
        gate_NC = nn.sigmoid(fc2(nn.relu(fc1(avg_NC))) + fc2(nn.relu(fc1(max_NC))))
        h_NTVC = h_NTVC * gate_NC[:, None, None, :]

        kt, kv = (self.kernel_size,) * 2 if isinstance(self.kernel_size, int) else self.kernel_size
        pooled_NTV2 = jnp.stack(
            [jnp.mean(h_NTVC.astype(jnp.float32), axis=-1).astype(self.dtype),
             jnp.max(h_NTVC, axis=-1)], axis=-1)
        s_NTV1 = nn.Conv(1, (kt, kv), padding=((kt // 2, (kt - 1) // 2), (kv // 2, (kv - 1) // 2)),
                         use_bias=False, dtype=self.dtype, name="spatial_conv")(pooled_NTV2)
        # Reference BN: PyTorch momentum 0.01 -> Flax momentum 0.99.
        s_NTV1 = nn.BatchNorm(use_running_average=not train, momentum=0.99, epsilon=1e-5,
                              dtype=self.dtype, name="spatial_bn")(s_NTV1)
        return (h_NTVC * nn.sigmoid(s_NTV1)).astype(x_NTVC.dtype)


def make_attention(kind: str, **kwargs) -> nn.Module:
    """`kind` in {"nonlocal", "cbam", "se"}; keyword arguments go to the module constructor."""
    classes = {"nonlocal": NonLocalBlock, "cbam": CBAM, "se": SEBlock}
    if kind not in classes:
        raise ValueError(f"unknown attention kind {kind!r}; known: {sorted(classes)}")
    return classes[kind](**kwargs)
