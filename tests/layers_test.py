"""GraphConv / TemporalConv / STGCNBlock: upstream semantics and behavioural properties."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amstgcn_jax import graph, graph_sparse
from amstgcn_jax.layers import (
    FFT_INFER_CHANNELS,
    BatchNorm,
    Conv1x1,
    Dropout,
    GraphConv,
    STGCNBlock,
    TemporalConv,
    bn_scale_init,
    dropout_bits,
    fft_length,
    from_ntvc,
    ntvc_ordered_bits,
    to_ntvc,
)


def _rand(key, shape, scale=1.0):
    return scale * jax.random.normal(jax.random.key(key), shape, jnp.float32)


def _randomize(variables, seed=0):
    leaves, tree = jax.tree.flatten(variables)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(tree, [0.5 * jax.random.normal(k, x.shape, x.dtype)
                                     for k, x in zip(keys, leaves)])


def _upstream_graph_conv(x_NTVC, kernel, bias, adj_KVV):
    """numpy float64 `ConvTemporalGraphical` in the upstream NCTV layout."""
    x = np.asarray(x_NTVC, np.float64).transpose(0, 3, 1, 2)  # NCTV
    w = np.asarray(kernel, np.float64).T  # (K*C, Cin)
    y = np.einsum("oc,nctv->notv", w, x) + np.asarray(bias, np.float64)[None, :, None, None]
    n, kc, t, v = y.shape
    k = adj_KVV.shape[0]
    y = y.reshape(n, k, kc // k, t, v)
    z = np.einsum("nkctv,kvw->nctw", y, np.asarray(adj_KVV, np.float64))
    return z.transpose(0, 2, 3, 1)


@pytest.mark.parametrize("c_in,c_out,aggregate_first,impl,layout", [
    (3, 8, None, "factored", "NTVC"), (3, 8, False, "factored", "NTVC"),
    (8, 8, True, "factored", "NTVC"), (8, 8, None, "factored", "NTVC"),
    (16, 8, True, "factored", "NTVC"), (3, 8, None, "kron", "NTVC"),
    (16, 8, None, "kron", "NTVC"), (3, 8, None, "factored", "VNTC"),
    (3, 8, False, "factored", "VNTC"), (8, 8, None, "factored", "VNTC"),
    (16, 8, None, "factored", "VNTC"), (16, 8, True, "factored", "VNTC"),
    (3, 8, None, "sparse", "VNTC"), (16, 8, None, "sparse", "VNTC"),
    (8, 8, True, "sparse", "VNTC")])
def test_graph_conv_matches_upstream_formula(c_in, c_out, aggregate_first, impl, layout):
    adj = graph.build_adjacency("ntu-rgb+d") * (1 + 0.1 * np.asarray(_rand(5, (3, 25, 25))))
    x = _rand(1, (2, 6, 25, c_in))
    support = graph_sparse.support_of(graph.build_adjacency("ntu-rgb+d"))
    layer = GraphConv(c_out, 3, aggregate_first=aggregate_first, impl=impl, layout=layout,
                      support=support if impl == "sparse" else None)
    variables = _randomize(layer.init(jax.random.key(0), from_ntvc(x, layout), adj))
    got = to_ntvc(jax.jit(layer.apply)(variables, from_ntvc(x, layout), adj), layout)
    ref = _upstream_graph_conv(x, variables["params"]["kernel"], variables["params"]["bias"], adj)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_graph_conv_rejects_kron_on_v_major_and_unknown_layouts():
    adj = jnp.asarray(graph.build_adjacency("coco"))
    x = jnp.zeros((17, 1, 4, 3))
    with pytest.raises(ValueError, match="kron.*NTVC"):
        GraphConv(4, 3, impl="kron", layout="VNTC").init(jax.random.key(0), x, adj)
    with pytest.raises(ValueError, match="unknown layout"):
        GraphConv(4, 3, layout="TVNC").init(jax.random.key(0), x, adj)
    with pytest.raises(ValueError, match="sparse.*VNTC.*support"):
        GraphConv(4, 3, impl="sparse", layout="VNTC").init(jax.random.key(0), x, adj)
    with pytest.raises(ValueError, match="sparse.*VNTC.*support"):
        GraphConv(4, 3, impl="sparse", support=graph_sparse.support_of(adj)).init(
            jax.random.key(0), x.transpose(1, 2, 0, 3), adj)


def test_graph_locality_zero_gradient_between_non_adjacent_joints():
    adj = jnp.asarray(graph.build_adjacency("openpose"))
    layer = GraphConv(4, 3)
    x = _rand(2, (1, 3, 18, 3))
    variables = _randomize(layer.init(jax.random.key(0), x, adj))

    def joint_out(x, w):
        return layer.apply(variables, x, adj)[0, :, w].sum()

    connected = np.asarray((adj != 0).any(0))  # [v, w]
    for w in range(18):
        g = np.abs(np.asarray(jax.grad(joint_out)(x, w))).sum((0, 1, 3))  # per source joint v
        assert (g[~connected[:, w]] == 0).all(), f"target {w} sees a non-adjacent joint"
        assert (g[connected[:, w]] > 0).all(), f"target {w} ignores a neighbour"


@pytest.mark.parametrize("impl", ["matmul", "conv", "fft"])
def test_temporal_receptive_field_is_nine_frames(impl):
    layer = TemporalConv(4, 9, 1, impl=impl)
    x = _rand(3, (1, 30, 2, 3))
    variables = _randomize(layer.init(jax.random.key(0), x))
    for t in (0, 3, 15, 29):
        g = jax.grad(lambda x, t=t: layer.apply(variables, x)[0, t].sum())(x)
        # The FFT form's gradient is exact only up to rounding: outside the receptive field it
        # is float32 noise (~1e-7 of the largest), not exactly zero.
        g = np.abs(np.asarray(g)).sum((0, 2, 3))
        frames = np.nonzero(g > 1e-5 * g.max())[0]
        assert frames.tolist() == list(range(max(0, t - 4), min(30, t + 5)))


def _numpy_temporal_conv(x_NTVC, kernel, bias, stride):
    x = np.pad(np.asarray(x_NTVC, np.float64), ((0, 0), (4, 4), (0, 0), (0, 0)))
    t_out = (x_NTVC.shape[1] - 1) // stride + 1
    w = np.asarray(kernel, np.float64)[:, 0]  # (9, Cin, Cout)
    y = np.stack([np.einsum("jnvc,jcd->nvd", x[:, stride * t: stride * t + 9].transpose(1, 0, 2, 3),
                            w) for t in range(t_out)], axis=1)
    return y + np.asarray(bias, np.float64)


@pytest.mark.parametrize("layout", ["NTVC", "VNTC"])
@pytest.mark.parametrize("impl", ["matmul", "conv", "fft"])
@pytest.mark.parametrize("t,stride", [(20, 1), (20, 2), (21, 2), (9, 2), (5, 1), (20, 3),
                                      (7, 3), (1, 2), (2, 3), (4, 1)])
def test_stride_alignment_symmetric_padding(impl, t, stride, layout):
    layer = TemporalConv(5, 9, stride, impl=impl, layout=layout)
    x = _rand(4, (2, t, 3, 4))
    variables = _randomize(layer.init(jax.random.key(0), from_ntvc(x, layout)))
    got = to_ntvc(jax.jit(layer.apply)(variables, from_ntvc(x, layout)), layout)
    assert got.shape == (2, (t - 1) // stride + 1, 3, 5)
    ref = _numpy_temporal_conv(x, variables["params"]["kernel"], variables["params"]["bias"],
                               stride)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("t,stride,kernel_size,layout", [
    (30, 1, 9, "NTVC"), (30, 1, 9, "VNTC"), (31, 2, 9, "VNTC"), (30, 2, 9, "NTVC"),
    (12, 3, 5, "VNTC"), (8, 1, 3, "NTVC"), (6, 2, 1, "VNTC"), (3, 2, 9, "NTVC")])
def test_fft_temporal_conv_gradients_match_the_matmul(t, stride, kernel_size, layout):
    """The frequency-domain conv is the same linear map: input and kernel gradients agree with
    the stacked-slices matmul's (and so with autodiff of the direct sum)."""
    x = from_ntvc(_rand(12, (2, t, 3, 6)), layout)
    layers = {impl: TemporalConv(5, kernel_size, stride, impl=impl, layout=layout)
              for impl in ("matmul", "fft")}
    variables = _randomize(layers["matmul"].init(jax.random.key(0), x), seed=5)
    probe = _rand(13, layers["matmul"].apply(variables, x).shape)

    def loss(impl, variables, x):
        return jnp.sum(layers[impl].apply(variables, x) * probe)

    ref = jax.jit(jax.grad(functools.partial(loss, "matmul"), argnums=(0, 1)))(variables, x)
    got = jax.jit(jax.grad(functools.partial(loss, "fft"), argnums=(0, 1)))(variables, x)
    for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5 * float(np.abs(r).max()))


def test_fft_length_is_the_next_5_smooth_integer():
    assert [fft_length(n) for n in (1, 7, 83, 152, 300, 304, 1001)] == [1, 8, 90, 160, 300,
                                                                         320, 1024]


def test_stride_two_output_frame_reads_frames_2t_minus_4_to_2t_plus_4():
    layer = TemporalConv(2, 9, 2, impl="matmul")
    x = _rand(6, (1, 40, 1, 2))
    variables = _randomize(layer.init(jax.random.key(0), x))
    g = jax.grad(lambda x: layer.apply(variables, x)[0, 10].sum())(x)
    assert np.nonzero(np.abs(np.asarray(g)).sum((0, 2, 3)))[0].tolist() == list(range(16, 25))


def test_temporal_conv_rejects_unknown_impl():
    with pytest.raises(ValueError, match="impl"):
        TemporalConv(2, impl="winograd").init(jax.random.key(0), jnp.zeros((1, 9, 1, 2)))


@pytest.mark.parametrize("c_in,c_out,stride,residual,expect", [
    (3, 8, 1, False, set()),
    (8, 8, 1, True, set()),
    (8, 16, 2, True, {"residual_conv", "residual_bn"}),
    (8, 8, 2, True, {"residual_conv", "residual_bn"}),
])
def test_block_residual_variants(c_in, c_out, stride, residual, expect):
    adj = jnp.asarray(graph.build_adjacency("coco"))
    block = STGCNBlock(c_out, 3, stride=stride, residual=residual)
    x = _rand(7, (2, 10, 17, c_in))
    variables = block.init(jax.random.key(0), x, adj)
    names = set(variables["params"]) - {"gcn", "tcn_bn0", "tcn_conv", "tcn_bn1"}
    assert names == expect
    y = block.apply(variables, x, adj)
    assert y.shape == (2, (10 - 1) // stride + 1, 17, c_out)
    assert (np.asarray(y) >= 0).all()
    if residual and not expect:  # identity residual: output - relu(branch) depends on x
        y2 = block.apply(variables, x + 1.0, adj)
        assert not np.allclose(y, y2)


def test_block_identity_residual_adds_input():
    adj = jnp.asarray(graph.build_adjacency("coco"))
    block = STGCNBlock(4, 3, residual=True)
    x = jnp.abs(_rand(8, (1, 6, 17, 4)))
    variables = block.init(jax.random.key(0), x, adj)
    # Zero the last BN's scale and shift: the branch vanishes and the block is relu(x) = x.
    params = jax.tree.map(lambda a: a, variables["params"])
    params["tcn_bn1"] = {"scale": jnp.zeros(4), "bias": jnp.zeros(4)}
    y = block.apply({"params": params, "batch_stats": variables["batch_stats"]}, x, adj)
    np.testing.assert_array_equal(y, x)


def test_block_dropout_only_in_training():
    adj = jnp.asarray(graph.build_adjacency("coco"))
    block = STGCNBlock(4, 3, dropout=0.5)
    x = _rand(9, (2, 6, 17, 4))
    variables = block.init(jax.random.key(0), x, adj)
    a = block.apply(variables, x, adj, train=False)
    b = block.apply(variables, x, adj, train=False)
    np.testing.assert_array_equal(a, b)
    c, _ = block.apply(variables, x, adj, train=True, mutable=["batch_stats"],
                       rngs={"dropout": jax.random.key(1)})
    d, _ = block.apply(variables, x, adj, train=True, mutable=["batch_stats"],
                       rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(c, d)


def test_bfloat16_compute_keeps_float32_params():
    adj = jnp.asarray(graph.build_adjacency("coco"))
    block = STGCNBlock(8, 3, stride=2, residual=True, dtype=jnp.bfloat16)
    x = _rand(10, (2, 8, 17, 4))
    variables = block.init(jax.random.key(0), x, adj)
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(variables))
    y, _ = block.apply(variables, x, adj, train=True, mutable=["batch_stats"])
    assert y.dtype == jnp.bfloat16 and np.isfinite(np.asarray(y, np.float32)).all()


@pytest.mark.parametrize("layout,stride", [("NTVC", 1), ("VNTC", 1), ("VNTC", 2)])
def test_auto_temporal_conv_is_fft_for_cpu_training_and_conv_for_inference(layout, stride):
    """On CPU, `impl="auto"` trains with the FFT form (4x fewer multiply-adds; XLA:CPU's conv
    weight gradient is slow) and infers with lax.conv (faster forward); both give the same
    numbers. bfloat16 training keeps the stacked-slices matmul (there is no bf16 FFT)."""
    layer = TemporalConv(6, 9, stride, layout=layout)
    x = from_ntvc(_rand(7, (2, 16, 3, 4)), layout)
    variables = _randomize(layer.init(jax.random.key(0), x))
    train_jaxpr = str(jax.make_jaxpr(lambda x: layer.apply(variables, x, True))(x))
    eval_jaxpr = str(jax.make_jaxpr(lambda x: layer.apply(variables, x, False))(x))
    assert "conv_general_dilated" not in train_jaxpr and "fft" in train_jaxpr
    assert "conv_general_dilated" in eval_jaxpr and "fft" not in eval_jaxpr
    np.testing.assert_allclose(layer.apply(variables, x, True), layer.apply(variables, x, False),
                               rtol=1e-5, atol=1e-5)
    bf16 = TemporalConv(6, 9, stride, layout=layout, dtype=jnp.bfloat16)
    bf16_jaxpr = str(jax.make_jaxpr(lambda x: bf16.apply(variables, x, True))(x))
    assert "fft" not in bf16_jaxpr and "conv_general_dilated" not in bf16_jaxpr


@pytest.mark.parametrize("c_in,features,stride,expect", [
    (256, 256, 1, "fft"), (256, 512, 1, "fft"), (128, 256, 1, "conv"), (256, 256, 2, "conv")])
def test_auto_temporal_conv_infers_wide_stride_1_blocks_with_ffts_on_cpu(c_in, features,
                                                                          stride, expect):
    """CPU inference: FFTs from `FFT_INFER_CHANNELS` channels in and out at stride 1, where
    they beat XLA's forward conv; lax.conv otherwise. The numbers agree with the conv."""
    assert FFT_INFER_CHANNELS == 256
    layer = TemporalConv(features, 9, stride, layout="VNTC")
    x = _rand(8, (3, 2, 12, c_in))
    variables = _randomize(layer.init(jax.random.key(0), x))
    jaxpr = str(jax.make_jaxpr(lambda x: layer.apply(variables, x, False))(x))
    assert ("fft" in jaxpr) == (expect == "fft")
    assert ("conv_general_dilated" in jaxpr) == (expect == "conv")
    conv = TemporalConv(features, 9, stride, impl="conv", layout="VNTC")
    ref = conv.apply(variables, x, False)  # sums of 2,304 products: tolerance scaled to them
    np.testing.assert_allclose(layer.apply(variables, x, False), ref, rtol=1e-5,
                               atol=1e-6 * float(np.abs(ref).max()))


@pytest.mark.parametrize("stride,c_in,attention", [
    (1, 4, ()), (2, 4, ()), (1, 6, ()),
    (1, 4, (("nonlocal", (("mode", "spatial"),)),)), (2, 4, (("se", ()),))])
def test_block_layouts_agree_in_values_and_gradients(stride, c_in, attention):
    """A block on V-major activations is the NTVC block transposed: same params, same output
    and gradients in training mode (BN batch statistics) and in inference."""
    adj = jnp.asarray(graph.build_adjacency("coco"))
    x = _rand(11, (2, 10, 17, c_in))
    blocks = {lay: STGCNBlock(4, 3, stride=stride, residual=True, attention_convt=attention,
                              layout=lay) for lay in ("NTVC", "VNTC")}
    variables = _randomize(blocks["NTVC"].init(jax.random.key(0), x, adj), seed=3)

    def loss(lay, variables, x):
        y, _ = blocks[lay].apply(variables, from_ntvc(x, lay), adj, train=True,
                                 mutable=["batch_stats"])
        return jnp.sum(jnp.sin(to_ntvc(y, lay)))

    ref = jax.value_and_grad(functools.partial(loss, "NTVC"), argnums=(0, 1))(variables, x)
    got = jax.value_and_grad(functools.partial(loss, "VNTC"), argnums=(0, 1))(variables, x)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-5)
    # float32 summation order differs, and biases followed by a BN have exactly-zero
    # gradients made of rounding noise: the tolerance is relative to the largest gradient.
    scale = max(float(np.abs(r).max()) for r in jax.tree.leaves(ref[1]))
    for g, r in zip(jax.tree.leaves(got[1]), jax.tree.leaves(ref[1])):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=2e-5 * scale)
    y_eval = to_ntvc(blocks["VNTC"].apply(variables, from_ntvc(x, "VNTC"), adj), "VNTC")
    np.testing.assert_allclose(y_eval, blocks["NTVC"].apply(variables, x, adj),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rate,bits", [(0.5, 1), (0.25, 2), (0.75, 2), (0.125, 3), (0.1, 16),
                                       (0.3, 16)])
def test_dropout_bits_per_element(rate, bits):
    assert dropout_bits(rate) == bits


@pytest.mark.parametrize("rate", [0.5, 0.25, 0.1, 0.3])
@pytest.mark.parametrize("shape", [(64, 40, 64), (16, 9, 33)])  # 33: last word partly used
def test_dropout_drops_at_rate_independently_and_rescales(rate, shape):
    layer = Dropout(rate)
    x = jnp.ones(shape, jnp.float32)
    y = np.asarray(layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(3)}))
    dropped = y == 0
    n = dropped.size
    sigma = np.sqrt(rate * (1 - rate) / n)
    assert abs(dropped.mean() - rate) < 5 * sigma
    np.testing.assert_allclose(y[~dropped], 1 / (1 - rate), rtol=1e-6)
    # Neighbours share a random word: their drops must still be independent, and every field
    # position within a word (channel c mod k) must drop at the rate.
    flat = dropped.reshape(-1, shape[-1])
    both = (flat[:, :-1] & flat[:, 1:]).mean()
    assert abs(both - rate ** 2) < 5 * np.sqrt(rate ** 2 * (1 - rate ** 2) / flat[:, 1:].size)
    per_channel = flat.mean(0)
    assert np.all(np.abs(per_channel - rate) < 6 * np.sqrt(rate * (1 - rate) / flat.shape[0]))


def test_dropout_determinism_and_identity_cases():
    x = _rand(12, (4, 8, 64))

    def rngs(k):
        return {"dropout": jax.random.key(k)}

    a = Dropout(0.5).apply({}, x, deterministic=False, rngs=rngs(1))
    np.testing.assert_array_equal(a, Dropout(0.5).apply({}, x, deterministic=False, rngs=rngs(1)))
    assert not np.array_equal(a, Dropout(0.5).apply({}, x, deterministic=False, rngs=rngs(2)))
    np.testing.assert_array_equal(Dropout(0.5).apply({}, x, deterministic=True), x)
    np.testing.assert_array_equal(Dropout(0.0).apply({}, x, deterministic=False), x)
    np.testing.assert_array_equal(
        Dropout(1.0).apply({}, x, deterministic=False, rngs=rngs(1)), np.zeros_like(x))
    with pytest.raises(ValueError, match="rate"):
        Dropout(1.5).apply({}, x, deterministic=False, rngs=rngs(1))
    h = Dropout(0.5).apply({}, x.astype(jnp.bfloat16), deterministic=False, rngs=rngs(1))
    assert h.dtype == jnp.bfloat16


@pytest.mark.parametrize("layout", ["VNTC", "NVTC", "NTVC"])
@pytest.mark.parametrize("key", ["threefry", "raw", "rbg"])
def test_ntvc_ordered_bits_are_the_ntvc_words_in_place(layout, key):
    """Each stored word is the one `jax.random.bits` draws at its NTVC position: computed in
    place for threefry keys (typed or raw uint32), drawn and transposed for others."""
    make = {"threefry": lambda: jax.random.key(3), "raw": lambda: jax.random.PRNGKey(3),
            "rbg": lambda: jax.random.key(3, impl="rbg")}[key]
    for shape_NTVC in [(3, 7, 5, 2), (1, 4, 25, 1)]:
        ref = jax.random.bits(make(), shape_NTVC, jnp.uint32)
        shape = from_ntvc(jnp.zeros(shape_NTVC), layout).shape
        words = jax.jit(ntvc_ordered_bits, static_argnums=(1, 2))(make(), shape, layout)
        np.testing.assert_array_equal(to_ntvc(words, layout), ref)


@pytest.mark.parametrize("layout", ["VNTC", "NVTC"])
@pytest.mark.parametrize("rate", [0.5, 0.3])  # one word per 32 / per 2 elements
def test_dropout_mask_is_the_same_in_every_layout(layout, rate):
    """With its `layout` the mask is drawn in NTVC order: the same key drops the same
    elements of x_NTVC whatever layout the activations are in (C = 40 leaves a word partly
    used)."""
    x_NTVC = _rand(13, (3, 7, 5, 40)) + 2.0  # no zeros before dropout
    rngs = {"dropout": jax.random.key(4)}
    ref = Dropout(rate, layout="NTVC").apply({}, x_NTVC, deterministic=False, rngs=rngs)
    np.testing.assert_array_equal(ref, Dropout(rate).apply({}, x_NTVC, deterministic=False,
                                                           rngs=rngs))
    y = Dropout(rate, layout=layout).apply({}, from_ntvc(x_NTVC, layout), deterministic=False,
                                           rngs=rngs)
    np.testing.assert_array_equal(to_ntvc(y, layout), ref)
    # without the layout the mask follows the stored order: a different drop pattern
    plain = Dropout(rate).apply({}, from_ntvc(x_NTVC, layout), deterministic=False, rngs=rngs)
    assert not np.array_equal(to_ntvc(plain, layout) == 0, np.asarray(ref) == 0)
    with jax.threefry_partitionable(False):  # the layouts agree whatever this flag says
        a = Dropout(rate, layout="NTVC").apply({}, x_NTVC, deterministic=False, rngs=rngs)
        b = Dropout(rate, layout=layout).apply({}, from_ntvc(x_NTVC, layout),
                                               deterministic=False, rngs=rngs)
    np.testing.assert_array_equal(to_ntvc(b, layout), a)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("custom_backward", [True, False])
@pytest.mark.parametrize("shape", [(6, 7, 5, 16), (4, 9, 75)])
def test_batch_norm_matches_flax(shape, custom_backward, relu):
    """`layers.BatchNorm` has flax's variables and gives its outputs, running statistics and
    gradients (through y and through the returned batch statistics), train and eval mode;
    `relu=True` is `nn.relu` after flax's BatchNorm."""
    rs = np.random.default_rng(0)
    c = shape[-1]
    x = jnp.asarray(rs.standard_normal(shape) * 3 + 2, jnp.float32)
    ref = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5,
                       param_dtype=jnp.float32, scale_init=bn_scale_init)
    ours = BatchNorm(custom_backward=custom_backward, relu=relu)
    act = nn.relu if relu else (lambda y: y)
    init_ref, init_ours = ref.init(jax.random.key(0), x), ours.init(jax.random.key(0), x)
    assert jax.tree.structure(init_ref) == jax.tree.structure(init_ours)
    for a, b in zip(jax.tree.leaves(init_ref), jax.tree.leaves(init_ours)):
        np.testing.assert_array_equal(a, b)
    variables = {"params": {"scale": _rand(1, (c,)), "bias": _rand(2, (c,))},
                 "batch_stats": {"mean": _rand(3, (c,)),
                                 "var": jnp.asarray(rs.uniform(0.5, 2.0, c), jnp.float32)}}
    probe = _rand(4, shape)

    def loss(module, params, x):
        y, state = module.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                                mutable=["batch_stats"])
        y = act(y) if module is ref else y
        stats = state["batch_stats"]
        return (jnp.sum(jnp.sin(y) * probe) + jnp.sum(0.3 * stats["mean"])
                + jnp.sum(stats["var"] ** 2)), (y, stats)

    (val_r, (y_r, st_r)), g_r = jax.value_and_grad(
        functools.partial(loss, ref), argnums=(0, 1), has_aux=True)(variables["params"], x)
    (val_o, (y_o, st_o)), g_o = jax.jit(jax.value_and_grad(
        functools.partial(loss, ours), argnums=(0, 1), has_aux=True))(variables["params"], x)
    np.testing.assert_allclose(y_o, y_r, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(val_o, val_r, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(st_o), jax.tree.leaves(st_r)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for a, b in zip(jax.tree.leaves(g_o), jax.tree.leaves(g_r)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(b))))
    # eval mode: flax's expression term for term
    np.testing.assert_array_equal(ours.clone(use_running_average=True).apply(variables, x),
                                  act(ref.clone(use_running_average=True).apply(variables, x)))


@pytest.mark.parametrize("stride,t", [(1, 7), (2, 7), (2, 8)])
def test_conv1x1_is_nn_conv_as_a_gemm(stride, t):
    """`Conv1x1` has `nn.Conv((1, 1), strides=(stride, 1))`'s variables (names, shapes, init
    values) and gives its outputs and gradients, odd T included (a strided 1x1 conv keeps frames
    0, s, 2s, ...)."""
    x = _rand(11, (3, t, 5, 6), 2.0)
    kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
    ref = nn.Conv(4, (1, 1), strides=(stride, 1), padding=((0, 0), (0, 0)),
                  kernel_init=kernel_init)
    ours = Conv1x1(4, stride, kernel_init=kernel_init)
    init_ref, init_ours = ref.init(jax.random.key(0), x), ours.init(jax.random.key(0), x)
    assert jax.tree.structure(init_ref) == jax.tree.structure(init_ours)
    for a, b in zip(jax.tree.leaves(init_ref), jax.tree.leaves(init_ours)):
        np.testing.assert_array_equal(a, b)
    variables = _randomize(init_ref)
    probe = _rand(12, ref.apply(variables, x).shape)

    def loss(module, variables, x):
        return jnp.sum(jnp.sin(module.apply(variables, x)) * probe)

    y_ref, y_ours = ref.apply(variables, x), jax.jit(ours.apply)(variables, x)
    assert y_ours.shape == y_ref.shape == (3, -(-t // stride), 5, 4)
    np.testing.assert_allclose(y_ours, y_ref, rtol=1e-5, atol=1e-5)
    g_ref = jax.grad(functools.partial(loss, ref), argnums=(0, 1))(variables, x)
    g_ours = jax.jit(jax.grad(functools.partial(loss, ours), argnums=(0, 1)))(variables, x)
    for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    bf16 = Conv1x1(4, dtype=jnp.bfloat16).apply(variables, x)
    assert bf16.dtype == jnp.bfloat16


def test_batch_norm_bfloat16_output_and_gradient_dtype():
    x = _rand(5, (8, 6, 32), 2.0).astype(jnp.bfloat16)
    ours, ref = BatchNorm(dtype=jnp.bfloat16, custom_backward=True), nn.BatchNorm(
        use_running_average=False, momentum=0.9, epsilon=1e-5, dtype=jnp.bfloat16,
        param_dtype=jnp.float32)
    variables = ref.init(jax.random.key(0), x)

    def grad_x(module):
        return jax.grad(lambda x: jnp.sum(module.apply(variables, x, mutable=["batch_stats"])[0]
                                          .astype(jnp.float32) ** 2))(x)

    y = ours.apply(variables, x, mutable=["batch_stats"])[0]
    assert y.dtype == jnp.bfloat16
    np.testing.assert_array_equal(y, ref.apply(variables, x, mutable=["batch_stats"])[0])
    got, want = grad_x(ours), grad_x(ref)
    assert got.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32),
                               rtol=0.02, atol=0.02)


def test_store_keeps_a_batch_sharded_array_where_it_is():
    """`layers.store` on an axis data parallelism does not shard (the blocks' T axis in
    `x_NTVC`) compiles without collectives; on the sharded batch axis the partitioner would
    all-gather the whole array, which is why the blocks never pass that axis."""
    import re

    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from amstgcn_jax import layers

    n = len(jax.devices())
    mesh = Mesh(np.array(jax.devices()), ("data",))
    batch = NamedSharding(mesh, PartitionSpec("data"))
    x = jax.device_put(jnp.arange(2 * n * 6 * 5 * 4, dtype=jnp.float32).reshape(2 * n, 6, 5, 4),
                       batch)

    def collectives(axis):
        fn = jax.jit(lambda x: jnp.maximum(layers.store(jnp.maximum(x, 0) * 2, axis), 0) + 1,
                     out_shardings=batch)
        np.testing.assert_array_equal(fn(x), np.maximum(np.asarray(x), 0) * 2 + 1)
        text = fn.lower(x).compile().as_text()
        return set(re.findall(r"all-gather|all-to-all|collective-permute|all-reduce", text))

    assert collectives(1) == set()
    if n > 1:
        assert "all-gather" in collectives(0)
