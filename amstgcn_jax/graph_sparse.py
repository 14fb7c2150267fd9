"""The graph conv over the adjacency's non-zeros only (`layers.GraphConv(impl="sparse")`).

ST-GCN's spatial-strategy adjacency is mostly zeros: 73 of the 3·25·25 entries on NTU, 52 of
3·18·18 on OpenPose, and `A ⊙ edge_importance` keeps that pattern whatever the learned mask
is. The dense graph conv multiplies the zeros too, and two of its GEMMs are shapes the CPU runs
badly: the aggregation `(W, K·V) @ (K·V, N·T·C)` and, in training, the adjacency gradient, a
(K·V, W) output summed over N·T·C = 153,600 products. Here the pattern (`support`, the (k, v, w)
entries that may be non-zero) is known at trace time, and:

- the aggregation is a fixed sum of a few rows per output row (`mix_rows`), a memory-bound
  pass, with a written-out VJP: the input gradient is the same kind of sum along the
  transposed pattern, and the adjacency gradient one dot product per non-zero;
- the 1×1 conv skips the (subset, node) rows that no edge reads: on NTU the centrifugal subset
  has out-edges from 5 of 25 joints (in-edges to 8), so 20 of its 25 row blocks of the
  `x @ W_k` products were multiplied only by zeros (`PRUNE_FRACTION`);
- the subsets that keep all rows share one GEMM, `x @ [W_0 | W_1]`: wider, so faster on the
  CPU than one GEMM per subset, and in training one weight-gradient and one input-gradient
  GEMM instead of two each.

The sums are the upstream `einsum('nkctv,kvw->nctw')` without the zero terms, in another
order: equal up to float rounding. Activations are V-major (`x_VNTC`, `layers.LAYOUTS`), where
a node's row `x[v]` is contiguous.

Deliberate choice: the row sums run as `fori_loop`s over the output rows (one loop per
"family" of rows with the same number and kind of terms), reading rows with dynamic slices
and writing them in place. Unrolled into one fused expression per row, the same sums ran up to
15% faster on the 64-channel NTU block, but XLA:CPU compiled each row into its own kernel:
2.5 s per block's forward+backward instead of 0.6 s (benchmarks/README.md, "Round 6").
Elsewhere (`default_form`) the sums are unrolled ("unrolled" in `FORMS`): each output part is
one stack of row sums, which XLA:GPU fuses into one kernel, where a loop would launch a
kernel per row. The full subsets then keep one GEMM each, and the coefficient gradient is one
(rows, ·) @ (·, rows) GEMM per pair of parts instead of a loop of dot products.
`custom_vjp` functions have no forward-mode derivative: `jax.jvp` through this path fails
(use `gcn_impl="factored"` for that).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from amstgcn_jax.matmul import matmul

# A subset's row blocks are computed for its active nodes only when they are at most this
# fraction of V: gathering 24 of 25 rows costs more than the 4% of the GEMM it saves.
PRUNE_FRACTION = 0.5
FORMS = ("loop", "unrolled")  # how the row sums run (`MixPlan.form`)


def default_form() -> str:
    """"loop" on XLA:CPU (the unrolled sums compile each row into its own kernel there),
    "unrolled" elsewhere (XLA:GPU fuses them into one kernel; a loop would launch one kernel
    per row and synchronise with the host on every trip)."""
    return "loop" if jax.default_backend() == "cpu" else "unrolled"


@dataclasses.dataclass(frozen=True)
class MixPlan:
    """A fixed linear map between two sets of rows: `out[o] = Σ_c coef[c] · in[i_c]`.

    Each side is a tuple of parts. A part `(n, None)` is an array `(n, P, D)` whose rows are
    `a[i]`; a part `(n, g)` is an array `(n, P, g, D)` whose rows are `a[i, :, j]` (g groups
    side by side, as one GEMM over g·D output columns writes them). `entries[c]` is
    `(out_address, in_address)`, an address being `(part, i, j)` (j None for plain parts).
    `form="unrolled"` needs plain parts only.
    """

    in_parts: tuple
    out_parts: tuple
    entries: tuple
    form: str = "loop"  # "loop" (fori_loops, for XLA:CPU) | "unrolled" (accelerators)

    @functools.cache  # noqa: B019 (frozen and hashable: the cache is keyed by value)
    def families(self, direction: str) -> tuple:
        """The rows written in `direction` ("forward": out from in; "backward": in from out)
        grouped by their terms' source parts: `((dst_part, src_parts), members)` with members
        `(dst_address, ((src_address, coef_index), ...))`, terms ordered by source part."""
        by_dst = {}
        for c, (out_address, in_address) in enumerate(self.entries):
            dst, src = ((out_address, in_address) if direction == "forward"
                        else (in_address, out_address))
            by_dst.setdefault(dst, []).append((src, c))
        families = {}
        for dst, terms in sorted(by_dst.items(), key=lambda item: _sort_key(item[0])):
            terms = tuple(sorted(terms, key=lambda term: (_sort_key(term[0]), term[1])))
            key = (dst[0], tuple(src[0] for src, _ in terms))
            families.setdefault(key, []).append((dst, terms))
        return tuple((key, tuple(members)) for key, members in families.items())


def _sort_key(address):
    p, i, j = address
    return (p, i, -1 if j is None else j)


def _row_at(part, i, j):
    """Row `(i, j)` of a part, `i`, `j` traced: `part[i]` or `part[i, :, j]`, (P, D)."""
    if part.ndim == 3:
        return lax.dynamic_index_in_dim(part, i, 0, keepdims=False)
    return lax.dynamic_slice(part, (i, 0, j, 0), (1, part.shape[1], 1, part.shape[3]))[0, :, 0]


def _put_row(part, row, i, j):
    if part.ndim == 3:
        return lax.dynamic_update_slice(part, row[None], (i, 0, 0))
    return lax.dynamic_update_slice(part, row[None, :, None], (i, 0, j, 0))


def _apply(families, dst_spec, coef, src, dtype):
    """The rows of `families` as arrays laid out as `dst_spec`; rows without terms are zero.
    Sums accumulate in at least float32."""
    acc = jnp.promote_types(dtype, jnp.float32)
    coef = jnp.asarray(coef).astype(acc)
    p_len, d_len = src[0].shape[1], src[0].shape[-1]
    # The loops write into zero-filled buffers. Filled from a constant, XLA:CPU's scheduler
    # materialises every such buffer at the start of the train step, and the backward's stay
    # allocated through the whole forward: 217 of the 1,821 MiB of NTU's batch-4 step
    # (benchmarks/README.md, "Round 10"). A zero computed from one source element (0 whether
    # or not that element is finite) can only be filled once the sources exist.
    first = src[0].reshape(-1)[:1]
    zero = jnp.sum(jnp.isnan(first).astype(dtype) * 0)  # (an empty batch gives 0 too)
    out = [jnp.full((n, p_len, d_len) if g is None else (n, p_len, g, d_len), zero, dtype)
           for n, g in dst_spec]
    for (dst_part, src_parts), members in families:
        dst_i = jnp.asarray(np.array([d[1] for d, _ in members], np.int32))
        dst_j = jnp.asarray(np.array([d[2] or 0 for d, _ in members], np.int32))
        src_i = jnp.asarray(np.array([[s[1] for s, _ in t] for _, t in members], np.int32))
        src_j = jnp.asarray(np.array([[s[2] or 0 for s, _ in t] for _, t in members], np.int32))
        src_c = jnp.asarray(np.array([[c for _, c in t] for _, t in members], np.int32))

        def body(m, part, src_parts=src_parts, dst_i=dst_i, dst_j=dst_j, src_i=src_i,
                 src_j=src_j, src_c=src_c):
            total = None
            for f, p in enumerate(src_parts):
                term = coef[src_c[m, f]] * _row_at(src[p], src_i[m, f], src_j[m, f]).astype(acc)
                total = term if total is None else total + term
            return _put_row(part, total.astype(dtype), dst_i[m], dst_j[m])

        out[dst_part] = lax.fori_loop(0, len(members), body, out[dst_part])
    return tuple(out)


def _apply_unrolled(families, dst_spec, coef, src, dtype):
    """`_apply` written out row by row with static slices: each output part is one stack of
    sums, which XLA:GPU fuses into a single kernel that reads every source row once."""
    acc = jnp.promote_types(dtype, jnp.float32)
    coef = jnp.asarray(coef).astype(acc)
    rows = {}
    for _, members in families:
        for dst, terms in members:
            total = None
            for (p, i, j), c in terms:
                row = src[p][i] if j is None else src[p][i, :, j]
                term = coef[c] * row.astype(acc)
                total = term if total is None else total + term
            rows[dst] = total.astype(dtype)
    zero = jnp.zeros((src[0].shape[1], src[0].shape[-1]), dtype)
    out = []
    for p, (n, g) in enumerate(dst_spec):
        if g is not None:
            raise ValueError("the unrolled row mix takes plain parts only")
        out.append(jnp.stack([rows.get((p, i, None), zero) for i in range(n)]))
    return tuple(out)


def _apply_plan(plan: MixPlan, direction: str, coef, src, dtype):
    dst_spec = plan.out_parts if direction == "forward" else plan.in_parts
    apply = _apply_unrolled if plan.form == "unrolled" else _apply
    return apply(plan.families(direction), dst_spec, coef, src, dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def mix_rows(plan: MixPlan, coef, parts):
    """`plan` applied to the rows of `parts` (a tuple laid out as `plan.in_parts`) with the
    coefficients `coef` (one per entry): a tuple laid out as `plan.out_parts`."""
    return _apply_plan(plan, "forward", coef, parts, parts[0].dtype)


def _mix_rows_fwd(plan, coef, parts):
    return mix_rows(plan, coef, parts), (coef, parts)


def _mix_rows_bwd(plan, residuals, d_out):
    coef, parts = residuals
    dtype = parts[0].dtype
    # Input gradient: the same kind of sum along the transposed pattern.
    d_parts = _apply_plan(plan, "backward", coef, d_out, dtype)
    acc = jnp.promote_types(dtype, jnp.float32)
    table = np.array([[o[0], o[1], o[2] or 0, i[0], i[1], i[2] or 0]
                      for o, i in plan.entries], np.int32)
    # Coefficient gradient, per pair of parts. Loop form: one dot product per entry, where the
    # dense form's skinny GEMM computes all K·V·W of them for the mask to zero most. Unrolled
    # form: one (rows_in, ·) @ (·, rows_out) GEMM, all row pairs at once: a memory-bound pass
    # for cuBLAS, where one reduction kernel per entry would be 73.
    d_coef = jnp.zeros((len(plan.entries),), acc)
    for p_out, p_in in sorted({(o[0], i[0]) for o, i in plan.entries}):
        rows = np.nonzero((table[:, 0] == p_out) & (table[:, 3] == p_in))[0]
        if plan.form == "unrolled":
            a, b = parts[p_in], d_out[p_out]
            gram = jnp.dot(a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1).T,
                           preferred_element_type=acc)
            d_coef = d_coef.at[rows].set(gram[table[rows, 4], table[rows, 1]])
            continue
        idx = jnp.asarray(np.concatenate([rows[:, None], table[rows][:, [1, 2, 4, 5]]], 1))

        def body(m, d_coef, idx=idx, p_out=p_out, p_in=p_in):
            a = _row_at(parts[p_in], idx[m, 3], idx[m, 4]).astype(acc)
            b = _row_at(d_out[p_out], idx[m, 1], idx[m, 2]).astype(acc)
            return d_coef.at[idx[m, 0]].set(jnp.sum(a * b))

        d_coef = lax.fori_loop(0, len(rows), body, d_coef)
    return d_coef.astype(jnp.asarray(coef).dtype), d_parts


mix_rows.defvjp(_mix_rows_fwd, _mix_rows_bwd)


@dataclasses.dataclass(frozen=True)
class SparseGraphPlan:
    """Static layout of the sparse graph conv for one support and direction.

    `full`: the subsets computed on all V rows, in one GEMM; `pruned`: `(k, nodes)` for the
    subsets computed on some rows only (their sources, or with `aggregate_first` their
    destinations); `mix`: the aggregation, whose coefficient c is `A[support[c]]`.
    """

    support: tuple
    full: tuple
    pruned: tuple
    mix: MixPlan
    grouped: bool = True  # the full subsets are one grouped part (one GEMM), else one each


@functools.lru_cache(maxsize=256)
def plan_for(support: tuple, num_subsets: int, num_nodes: int,
             aggregate_first: bool, form: str = "loop") -> SparseGraphPlan:
    """The plan for `support` ((k, v, w) triples: A[k, v, w] may be non-zero). `form="loop"`
    groups the full subsets into one part (one wider GEMM, faster on the CPU); "unrolled"
    keeps one plain part per subset, which its GEMM coefficient gradient needs."""
    if form not in FORMS:
        raise ValueError(f"sparse graph conv form must be one of {FORMS}, got {form!r}")
    k_n, v_n = num_subsets, num_nodes
    entries = sorted({tuple(int(i) for i in e) for e in support})
    for k, v, w in entries:
        if not (0 <= k < k_n and 0 <= v < v_n and 0 <= w < v_n):
            raise ValueError(f"graph support entry {(k, v, w)} outside (K, V, V) = "
                             f"{(k_n, v_n, v_n)}")
    side = 2 if aggregate_first else 1  # which node index the 1×1 conv's rows belong to
    active = [sorted({e[side] for e in entries if e[0] == k}) for k in range(k_n)]
    full = tuple(k for k in range(k_n) if len(active[k]) > PRUNE_FRACTION * v_n)
    pruned = tuple((k, tuple(active[k])) for k in range(k_n)
                   if active[k] and k not in full)
    group = form == "loop"
    if group:
        grouped = ((v_n, len(full)),) if full else ()
    else:
        grouped = ((v_n, None),) * len(full)
    plain = tuple((len(nodes), None) for _, nodes in pruned)
    pruned_part = {k: (len(grouped) + p, nodes) for p, (k, nodes) in enumerate(pruned)}

    def address(k, node):  # the (subset k, node) row on the GEMM side
        if k in full:
            return (0, node, full.index(k)) if group else (full.index(k), node, None)
        p, nodes = pruned_part[k]
        return (p, nodes.index(node), None)

    if aggregate_first:  # x rows (V) -> per-subset aggregated rows
        mix = MixPlan(((v_n, None),), grouped + plain,
                      tuple((address(k, w), (0, v, None)) for k, v, w in entries), form)
    else:  # per-subset transformed rows -> y rows (V)
        mix = MixPlan(grouped + plain, ((v_n, None),),
                      tuple(((0, w, None), address(k, v)) for k, v, w in entries), form)
    return SparseGraphPlan(tuple(entries), full, pruned, mix, group)


def support_of(adj_KVV) -> tuple:
    """The (k, v, w) triples where a concrete (numpy) adjacency is non-zero."""
    return tuple(tuple(int(i) for i in e) for e in np.argwhere(np.asarray(adj_KVV) != 0))


def _runs(nodes):
    """(position, first node, length) of each run of consecutive `nodes`."""
    runs, start = [], 0
    for i in range(1, len(nodes) + 1):
        if i == len(nodes) or nodes[i] != nodes[i - 1] + 1:
            runs.append((start, nodes[start], i - start))
            start = i
    return runs


def graph_conv_sparse_vntc(x_VNTC, adj_KVV, kernel, bias_WD, support: tuple,
                           aggregate_first: bool, form: str | None = None):
    """`GraphConv` on `x_VNTC` over the entries in `support` only; `adj_KVV` must be zero
    outside it (as `A ⊙ edge_importance` is where A is). `kernel (Cin, K·Cout)` is K-major as
    upstream; `bias_WD` is the upstream bias after the aggregation. `form`: see `FORMS`
    (None: `default_form()`)."""
    v, n, t, c_in = x_VNTC.shape
    k_n, c_out = adj_KVV.shape[0], bias_WD.shape[-1]
    plan = plan_for(support, k_n, v, aggregate_first, form or default_form())
    if not plan.support:  # an empty graph: only the bias reaches the output
        return jnp.broadcast_to(bias_WD[:, None, None], (v, n, t, c_out)).astype(x_VNTC.dtype)
    w_CKD = kernel.reshape(c_in, k_n, c_out)
    full = np.array(plan.full, dtype=np.int64)
    coef = jnp.asarray(adj_KVV)[tuple(np.array(plan.support, dtype=np.int64).T)]
    if aggregate_first:
        # xa[k, w] = Σ_v A[k, v, w] x[v] on the rows some edge reaches, then the 1×1 conv.
        parts = mix_rows(plan.mix, coef, (x_VNTC.reshape(v, n * t, c_in),))
        if plan.full and plan.grouped:
            # Column g·Cin + c of the grouped rows meets W[c, k_g, :].
            w = w_CKD[:, full].transpose(1, 0, 2).reshape(len(full) * c_in, c_out)
            y = matmul(parts[0].reshape(v * n * t, len(full) * c_in), w)
            y = y.reshape(v, n * t, c_out)
        elif plan.full:
            y = sum(matmul(parts[g].reshape(v * n * t, c_in), w_CKD[:, k])
                    for g, k in enumerate(plan.full)).reshape(v, n * t, c_out)
        else:
            y = jnp.zeros((v, n * t, c_out), x_VNTC.dtype)
        for part, (k, nodes) in zip(parts[len(parts) - len(plan.pruned):], plan.pruned):
            y_k = matmul(part, w_CKD[:, k])
            for pos, node, length in _runs(nodes):  # in-place adds of the rows it reaches
                rows = lax.slice_in_dim(y, node, node + length) + y_k[pos:pos + length]
                y = lax.dynamic_update_slice_in_dim(y, rows, node, axis=0)
        return y.reshape(v, n, t, c_out) + bias_WD[:, None, None]
    # h[k, v] = x[v] @ W_k on the rows some edge reads, then y[w] = Σ A[k, v, w] h[k, v].
    parts = []
    if plan.full and plan.grouped:
        w = w_CKD[:, full].reshape(c_in, len(full) * c_out)
        h = matmul(x_VNTC.reshape(v * n * t, c_in), w)
        parts.append(h.reshape(v, n * t, len(full), c_out))
    elif plan.full:
        parts.extend(matmul(x_VNTC.reshape(v * n * t, c_in), w_CKD[:, k]).reshape(
            v, n * t, c_out) for k in plan.full)
    for k, nodes in plan.pruned:
        rows = jnp.concatenate([x_VNTC[node:node + length]
                                for _, node, length in _runs(nodes)])
        parts.append(matmul(rows.reshape(len(nodes), n * t, c_in), w_CKD[:, k]))
    (y,) = mix_rows(plan.mix, coef, tuple(parts))
    return y.reshape(v, n, t, c_out) + bias_WD[:, None, None]
