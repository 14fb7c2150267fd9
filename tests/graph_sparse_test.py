"""The sparse graph conv (`graph_sparse`, `GraphConv(impl="sparse")`): the dense result and
its gradients on real and random graphs, the static plan, and its edge cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amstgcn_jax import graph, graph_sparse
from amstgcn_jax.layers import GraphConv


def _rand(seed, shape, scale=1.0):
    # numpy draws: jax.random would compile a sampler per shape
    return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _dense_and_sparse(adj_KVV, c_in, c_out, aggregate_first=None, x_shape=(2, 5),
                      form="loop"):
    """(dense layer, sparse layer, variables, x_VNTC) for one adjacency."""
    k, v, _ = adj_KVV.shape
    support = graph_sparse.support_of(adj_KVV)
    dense = GraphConv(c_out, k, aggregate_first=aggregate_first, layout="VNTC")
    sparse = GraphConv(c_out, k, aggregate_first=aggregate_first, layout="VNTC",
                       impl="sparse", support=support, sparse_form=form)
    x = _rand(1, (v, *x_shape, c_in))
    variables = dense.init(jax.random.key(0), x, adj_KVV)
    params = variables["params"]
    variables = {"params": {"kernel": _rand(2, params["kernel"].shape, 0.3),
                            "bias": _rand(3, params["bias"].shape, 0.3)}}
    return dense, sparse, variables, x


def _value_and_grads(layer, variables, x, adj_KVV, mask_KVV):
    """Loss and gradients w.r.t. params, x and an edge-importance mask (A ⊙ M, as the model)."""
    probe = _rand(9, jax.eval_shape(layer.apply, variables, x, adj_KVV).shape)

    def loss(params, x, mask):
        return jnp.sum(layer.apply({"params": params}, x, adj_KVV * mask) * probe)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(variables["params"], x, mask_KVV)


def _assert_same(dense, sparse, variables, x, adj_KVV):
    mask = 1.0 + 0.2 * _rand(7, adj_KVV.shape)
    got_y = jax.jit(sparse.apply)(variables, x, adj_KVV * mask)
    ref_y = jax.jit(dense.apply)(variables, x, adj_KVV * mask)
    np.testing.assert_allclose(got_y, ref_y, rtol=1e-5, atol=1e-5)
    got = _value_and_grads(sparse, variables, x, adj_KVV, mask)
    ref = _value_and_grads(dense, variables, x, adj_KVV, mask)
    for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        scale = float(jnp.max(jnp.abs(r))) + 1e-12
        np.testing.assert_allclose(np.asarray(g) / scale, np.asarray(r) / scale, atol=1e-5)


@pytest.mark.parametrize("form", graph_sparse.FORMS)
@pytest.mark.parametrize("layout,c_in,c_out", [
    ("ntu-rgb+d", 3, 8), ("ntu-rgb+d", 8, 8), ("ntu-rgb+d", 12, 4), ("openpose", 3, 8),
    ("openpose", 12, 4), ("coco", 8, 8)])
def test_sparse_matches_dense_on_skeleton_graphs(layout, c_in, c_out, form):
    """Values and gradients (params, input, edge-importance mask) equal the dense graph conv's
    on the spatial-strategy graphs, in both orders (aggregate first when Cin < Cout) and both
    forms of the row sums (CPU loops, accelerators' unrolled sums)."""
    adj = jnp.asarray(graph.build_adjacency(layout))
    _assert_same(*_dense_and_sparse(adj, c_in, c_out, form=form), adj)


@pytest.mark.parametrize("form", graph_sparse.FORMS)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("aggregate_first", [False, True])
def test_sparse_matches_dense_on_random_patterns(seed, aggregate_first, form):
    """Random supports, including a subset with no edges, a full subset, nodes with no
    in-edges or no out-edges, and subsets pruned to a few rows."""
    rs = np.random.default_rng(seed)
    k, v = 4, 9
    density = np.array([0.0, 0.9, 0.15, 0.4])[:, None, None]
    pattern = rs.random((k, v, v)) < density
    pattern[1] |= np.eye(v, dtype=bool)  # one subset with every node active
    adj = jnp.asarray(pattern * rs.uniform(0.2, 1.0, pattern.shape), jnp.float32)
    _assert_same(*_dense_and_sparse(adj, 5, 6, aggregate_first, x_shape=(3, 4), form=form),
                 adj)


def test_plan_prunes_sparse_subsets_and_groups_full_ones():
    """NTU's centrifugal subset reaches few joints: its rows are pruned, and the root and
    centripetal subsets share the one GEMM."""
    adj = graph.build_adjacency("ntu-rgb+d")
    support = graph_sparse.support_of(adj)
    assert len(support) == int((adj != 0).sum()) == 73
    transform_first = graph_sparse.plan_for(support, 3, 25, False)
    assert transform_first.full == (0, 1)
    (k, sources), = transform_first.pruned
    assert k == 2 and sources == tuple(np.nonzero((adj[2] != 0).any(1))[0])
    assert len(sources) <= graph_sparse.PRUNE_FRACTION * 25
    aggregate_first = graph_sparse.plan_for(support, 3, 25, True)
    (k, targets), = aggregate_first.pruned
    assert k == 2 and targets == tuple(np.nonzero((adj[2] != 0).any(0))[0])
    assert len(transform_first.mix.entries) == len(aggregate_first.mix.entries) == 73
    assert transform_first.mix.in_parts == ((25, 2), (len(sources), None))
    # The unrolled form keeps one plain part per full subset, pruning the same rows.
    unrolled = graph_sparse.plan_for(support, 3, 25, False, "unrolled")
    assert not unrolled.grouped and unrolled.pruned == transform_first.pruned
    assert unrolled.mix.in_parts == ((25, None), (25, None), (len(sources), None))
    with pytest.raises(ValueError, match="form must be one of"):
        graph_sparse.plan_for(support, 3, 25, False, "scan")


def test_empty_graph_gives_the_bias_and_bad_support_is_named():
    adj = jnp.zeros((2, 4, 4))
    layer = GraphConv(3, 2, layout="VNTC", impl="sparse", support=())
    x = _rand(0, (4, 1, 2, 5))
    variables = layer.init(jax.random.key(0), x, adj)
    variables = {"params": {**variables["params"], "bias": jnp.arange(6.0)}}
    np.testing.assert_array_equal(layer.apply(variables, x, adj), 0.0)  # colsum(A) = 0
    with pytest.raises(ValueError, match=r"support entry \(0, 4, 1\) outside"):
        GraphConv(3, 2, layout="VNTC", impl="sparse", support=((0, 4, 1),)).init(
            jax.random.key(0), x, adj)


@pytest.mark.parametrize("form", graph_sparse.FORMS)
def test_bfloat16_close_to_float32(form):
    adj = jnp.asarray(graph.build_adjacency("openpose"))
    dense, sparse, variables, x = _dense_and_sparse(adj, 8, 8, form=form)
    sparse16 = sparse.clone(dtype=jnp.bfloat16)
    ref = dense.apply(variables, x, adj)
    got = jax.jit(sparse16.apply)(variables, x, adj)
    assert got.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(got, np.float32), ref, rtol=0.05,
                               atol=0.02 * float(jnp.max(jnp.abs(ref))))


@pytest.mark.parametrize("form", graph_sparse.FORMS)
def test_mix_rows_is_linear_with_transposed_vjp(form):
    """The written-out VJP of `mix_rows` equals autodiff of the same map written densely."""
    adj = graph.build_adjacency("coco")
    plan = graph_sparse.plan_for(graph_sparse.support_of(adj), 3, 17, False, form).mix
    coef = _rand(1, (len(plan.entries),))
    parts = tuple(_rand(2 + p, (n, 6, 3) if g is None else (n, 6, g, 3))
                  for p, (n, g) in enumerate(plan.in_parts))

    def dense(coef, parts):
        y = jnp.zeros((17, 6, 3))
        for c, (out_a, (p, i, j)) in enumerate(plan.entries):
            row = parts[p][i] if j is None else parts[p][i, :, j]
            y = y.at[out_a[1]].add(coef[c] * row)
        return y

    probe = _rand(9, (17, 6, 3))
    got = jax.jit(jax.grad(lambda c, p: jnp.sum(graph_sparse.mix_rows(plan, c, p)[0] * probe),
                           argnums=(0, 1)))(coef, parts)
    ref = jax.jit(jax.grad(lambda c, p: jnp.sum(dense(c, p) * probe), argnums=(0, 1)))(
        coef, parts)
    np.testing.assert_allclose(jax.jit(graph_sparse.mix_rows, static_argnums=0)(
        plan, coef, parts)[0], jax.jit(dense)(coef, parts), rtol=1e-6, atol=1e-6)
    for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("first", [np.nan, np.inf, -np.inf, 1.0])
def test_rows_without_terms_are_zero_whatever_the_first_source_element(first):
    """The loop form fills its output from a zero computed from the first source element (so
    XLA cannot allocate the buffer before the sources exist); that zero must stay 0 when the
    element is not finite, and an empty batch must still work."""
    plan = graph_sparse.plan_for(((0, 0, 1), (0, 2, 1)), 1, 4, False, "loop").mix
    assert plan.in_parts == ((2, None),)  # the rows of nodes 0 and 2
    part = np.array(_rand(0, (2, 3, 2)))
    part[0, 0, 0] = first
    mix = jax.jit(graph_sparse.mix_rows, static_argnums=0)
    (y,) = mix(plan, jnp.ones(2), (jnp.asarray(part),))
    np.testing.assert_array_equal(y[np.array([0, 2, 3])], 0.0)  # only node 1 receives edges
    np.testing.assert_array_equal(y[1, 1:], part[0, 1:] + part[1, 1:])
    (empty,) = mix(plan, jnp.ones(2), (jnp.zeros((2, 0, 2)),))
    assert empty.shape == (4, 0, 2)


@pytest.mark.parametrize("form", graph_sparse.FORMS)
def test_data_parallel_sharding_gives_the_single_device_result(form):
    """With the batch axis of x_VNTC sharded over 4 devices (the trainer's data parallelism),
    the loops, row slices and the per-entry dot products (or the unrolled form's GEMMs over
    the sharded axis) still give the single-device values and gradients."""
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    adj = jnp.asarray(graph.build_adjacency("ntu-rgb+d"))
    _, sparse, variables, x = _dense_and_sparse(adj, 8, 8, x_shape=(4, 3), form=form)
    mask = 1.0 + 0.2 * _rand(7, adj.shape)
    ref = _value_and_grads(sparse, variables, x, adj, mask)
    mesh = Mesh(np.array(jax.devices()[:4]), ("data",))
    x_sharded = jax.device_put(x, NamedSharding(mesh, P(None, "data")))
    got = _value_and_grads(sparse, variables, x_sharded, adj, mask)
    assert got[1][1].sharding.spec == P(None, "data")  # the input gradient stays sharded
    for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)
