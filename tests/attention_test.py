"""Tests for amstgcn_jax.attention: non-local (AM-STGCN), CBAM and SE blocks on x_NTVC maps."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amstgcn_jax import attention

N, T, V, C = 2, 8, 5, 16


def _x(seed=0, shape=(N, T, V, C), dtype=jnp.float32):
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32).astype(dtype)


def _randomise(variables, seed=1):
    """Replaces every leaf by random values (positive running variances) so no branch is zero."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(variables)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    out = []
    for (path, leaf), k in zip(leaves, keys):
        r = jax.random.normal(k, leaf.shape, leaf.dtype) * 0.5
        if "var" in jax.tree_util.keystr(path):
            r = jnp.abs(r) + 0.5
        out.append(r)
    return jax.tree_util.tree_unflatten(treedef, out)


def _init(module, x):
    return module.init(jax.random.key(0), x, train=False)


MODES = ["spatial", "temporal", "spatiotemporal"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pool_on", [("phi", "g"), (), ("theta", "phi", "g")])
def test_nonlocal_is_exactly_identity_at_init(mode, pool_on):
    block = attention.NonLocalBlock(mode=mode, pool_on=pool_on)
    x = _x()
    variables = _init(block, x)
    for train in (False, True):
        apply = jax.jit(functools.partial(block.apply, train=train, mutable=["batch_stats"]))
        y, _ = apply(variables, x)
        assert y.shape == x.shape and y.dtype == x.dtype
        np.testing.assert_array_equal(np.asarray(y), np.asarray(x))
    assert set(variables["params"]) == {"theta", "phi", "g", "out_conv", "out_bn"}
    assert variables["params"]["theta"]["kernel"].shape == (1, 1, C, C // 2)
    assert variables["params"]["out_conv"]["kernel"].shape == (1, 1, C // 2, C)
    np.testing.assert_array_equal(variables["params"]["out_bn"]["scale"], 0.0)


def _numpy_nonlocal(params, stats, x, mode, pool_window, pool_theta=False):
    """Straightforward float64 numpy version of the same math (ceil-mode pooling)."""
    x = np.asarray(x, np.float64)
    n, t, v, c = x.shape

    def conv(name, h):
        p = params[name]
        return h @ np.asarray(p["kernel"], np.float64)[0, 0] + np.asarray(p["bias"], np.float64)

    def pool(h):
        wt, wv = pool_window
        tp, vp = -(-h.shape[1] // wt), -(-h.shape[2] // wv)
        out = np.full((h.shape[0], tp, vp, h.shape[3]), -np.inf)
        for i in range(tp):
            for j in range(vp):
                out[:, i, j] = h[:, i * wt:(i + 1) * wt, j * wv:(j + 1) * wv].max(axis=(1, 2))
        return out

    theta, phi, g = conv("theta", x), conv("phi", x), conv("g", x)
    if pool_window != (1, 1):
        phi, g = pool(phi), pool(g)
        if pool_theta:
            theta = pool(theta)
    tq, vq = theta.shape[1:3]
    y = np.zeros(theta.shape)
    attn_all = []
    for b in range(n):
        if mode == "spatiotemporal":
            groups = [(slice(None), slice(None))]
        elif mode == "spatial":
            groups = [(i, slice(None)) for i in range(tq)]
        else:
            groups = [(slice(None), j) for j in range(vq)]
        for gi in groups:
            kgi = gi if mode == "spatiotemporal" else (
                (gi[0], slice(None)) if mode == "spatial" else (slice(None), gi[1]))
            q = theta[b][gi].reshape(-1, theta.shape[-1])
            k = phi[b][kgi].reshape(-1, phi.shape[-1])
            vv = g[b][kgi].reshape(-1, g.shape[-1])
            logits = q @ k.T
            a = np.exp(logits - logits.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            attn_all.append(a)
            y[b][gi] = (a @ vv).reshape(y[b][gi].shape)
    if (tq, vq) != (t, v):
        y = np.repeat(np.repeat(y, pool_window[0], 1), pool_window[1], 2)[:, :t, :v]
    w = conv("out_conv", y)
    bn, st = params["out_bn"], stats["out_bn"]
    w = (w - np.asarray(st["mean"], np.float64)) / np.sqrt(np.asarray(st["var"], np.float64) + 1e-5)
    w = w * np.asarray(bn["scale"], np.float64) + np.asarray(bn["bias"], np.float64)
    return x + w, attn_all


@pytest.mark.parametrize("mode,pool_on,window", [
    ("spatiotemporal", ("phi", "g"), (2, 2)),
    ("spatiotemporal", (), (1, 1)),
    ("spatiotemporal", ("theta", "phi", "g"), (2, 2)),
    ("spatial", ("phi", "g"), (1, 2)),
    ("temporal", ("phi", "g"), (2, 1)),
])
def test_nonlocal_matches_numpy(mode, pool_on, window):
    block = attention.NonLocalBlock(mode=mode, pool_on=pool_on)
    x = _x(shape=(N, 7, V, C))  # odd T and V exercise the ceil-mode pooling
    variables = _randomise(_init(block, x))
    y, state = block.apply(variables, x, train=False, mutable=["intermediates"])
    ref, attn = _numpy_nonlocal(variables["params"], variables["batch_stats"], x, mode, window,
                                pool_theta="theta" in pool_on)
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-5, atol=1e-5)
    sown = np.asarray(state["intermediates"]["attention"][0])
    np.testing.assert_allclose(sown.reshape(-1, sown.shape[-1]), np.concatenate(attn),
                               rtol=1e-5, atol=1e-6)


def test_nonlocal_train_step_has_no_convolution_op():
    """The 1x1 convs (theta/phi/g and out_conv) are GEMMs over channels in the forward and in
    both gradients: XLA:CPU ran out_conv's kernel gradient as a convolution at ~2 GFLOP/s."""
    block = attention.NonLocalBlock()
    x = _x()
    variables = _randomise(_init(block, x))

    def loss(params, x):
        y, _ = block.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                           train=True, mutable=["batch_stats"])
        return jnp.sum(y ** 2)

    hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(variables["params"], x).as_text()
    assert "convolution" not in hlo and "dot_general" in hlo


def test_sown_attention_shapes_and_rows_sum_to_one():
    x = _x(shape=(N, 8, 5, C))
    expected = {"spatial": (N, 8, 5, 3), "temporal": (N, 5, 8, 4),
                "spatiotemporal": (N, 40, 4 * 3)}
    for mode, shape in expected.items():
        block = attention.NonLocalBlock(mode=mode)
        variables = _init(block, x)
        _, state = block.apply(variables, x, train=False, mutable=["intermediates"])
        (attn,) = state["intermediates"]["attention"]
        assert attn.shape == shape and attn.dtype == jnp.float32, mode
        np.testing.assert_allclose(np.asarray(attn).sum(-1), 1.0, rtol=1e-6)
        # Without a mutable "intermediates" collection nothing is sown.
        _, state = block.apply(variables, x, train=True, mutable=["batch_stats"])
        assert "intermediates" not in state


@pytest.mark.parametrize("impl", [None, "xla", "reference", "chunked"])
def test_fused_and_reference_paths_agree(impl):
    x = _x(shape=(N, 6, V, C))
    ref_block = attention.NonLocalBlock(attention_impl="reference")
    variables = _randomise(_init(ref_block, x))
    ref = ref_block.apply(variables, x, train=False)
    out = attention.NonLocalBlock(attention_impl=impl).apply(variables, x, train=False)
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_chunked_path_matches_reference_values_and_gradients(mode):
    """Several query blocks with a ragged last one (padding), also with chunk_elements as the
    automatic switch (attention_impl=None); gradients w.r.t. input and every parameter."""
    x = _x(shape=(N, 7, V, C))
    ref_block = attention.NonLocalBlock(mode=mode, attention_impl="reference")
    variables = _randomise(_init(ref_block, x))

    def loss(block, variables, x):
        y, _ = block.apply(variables, x, train=True, mutable=["batch_stats"])
        return jnp.sum(jnp.sin(y))

    ref_val, ref_grads = jax.value_and_grad(functools.partial(loss, ref_block), (0, 1))(
        variables, x)
    # 2 query rows per block: T=7 / V=5 / 35 positions leave a ragged (padded) last block.
    chunk = {"spatial": 2 * N * 7 * 3, "temporal": 2 * N * V * 4, "spatiotemporal": 2 * N * 12}
    for impl in ("chunked", None):
        block = attention.NonLocalBlock(mode=mode, attention_impl=impl,
                                        chunk_elements=chunk[mode])
        grad_fn = jax.value_and_grad(functools.partial(loss, block), (0, 1))
        assert "scan" in str(jax.make_jaxpr(grad_fn)(variables, x))  # the blocked path ran
        val, grads = jax.jit(grad_fn)(variables, x)
        np.testing.assert_allclose(val, ref_val, rtol=1e-5)
        for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
            np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch, rows_budget, shards", [
    (2, 1, 1), (2, 9 * 8, 1), (2, 10**9, 1), (3, 2 * 30 * 9, 1), (5, 30 * 9, 1),
    (4, 9 * 7, 2), (3, 9 * 30, 3)])
def test_blocked_attention_backward_matches_autodiff_of_the_reference(batch, rows_budget,
                                                                     shards):
    """`_attend_chunked`'s written-out VJP (log-sum-exp kept, rowsum(dY·Y) correction) against
    autodiff of the full softmax, with blocks of 1 row of one sequence, 8 rows with a ragged
    last block, all sequences in one block, 2 whole sequences per block with a padded group,
    one whole sequence per block, and (batch split over `shards` devices) 3 rows of every
    sequence per block (ragged) and all rows of every sequence."""
    rs = np.random.default_rng(3)
    q, k, v = (jnp.asarray(rs.standard_normal(shape), jnp.float32)
               for shape in ((batch, 30, 8), (batch, 9, 8), (batch, 9, 8)))
    cot = jnp.asarray(rs.standard_normal((batch, 30, 8)), jnp.float32)
    out, vjp = jax.vjp(lambda *a: attention._attend_chunked(*a, rows_budget, shards), q, k, v)
    ref, ref_vjp = jax.vjp(lambda *a: attention._attend_reference(*a)[0], q, k, v)
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), rtol=1e-5, atol=1e-6)
    for g, r in zip(vjp(cot), ref_vjp(cot)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-5, atol=1e-5)


def test_blocked_attention_keeps_the_input_dtypes_in_its_gradients():
    q, k, v = (jnp.ones(shape, jnp.bfloat16) for shape in ((1, 6, 8), (1, 3, 8), (1, 3, 8)))
    grads = jax.grad(lambda *a: attention._attend_chunked(*a, 6).astype(jnp.float32).sum(),
                     (0, 1, 2))(q, k, v)
    assert [g.dtype for g in grads] == [jnp.bfloat16] * 3


def _cross_position_gradient(mode):
    """|d out[:, t=1, v=1] / d x| at every (t, v), with random non-zero parameters."""
    block = attention.NonLocalBlock(mode=mode)
    x = _x(shape=(1, 6, 5, 8))
    variables = _randomise(_init(block, x))

    def probe(x):
        return block.apply(variables, x, train=False)[0, 1, 1].sum()

    return np.abs(np.asarray(jax.jit(jax.grad(probe))(x)[0])).sum(-1)  # (T, V)


def test_spatial_mode_never_mixes_frames():
    g_TV = _cross_position_gradient("spatial")
    assert np.all(g_TV[np.arange(6) != 1] == 0.0)  # other frames: exactly no influence
    assert np.all(g_TV[1] > 0)  # every joint of the same frame contributes


def test_temporal_mode_never_mixes_joints():
    g_TV = _cross_position_gradient("temporal")
    assert np.all(g_TV[:, np.arange(5) != 1] == 0.0)
    assert np.all(g_TV[:, 1] > 0)


def test_spatiotemporal_mode_mixes_frames_and_joints():
    g_TV = _cross_position_gradient("spatiotemporal")
    assert np.all(g_TV > 0)


def test_pooling_knob():
    x = _x(shape=(N, 8, 5, C))
    variables = _init(attention.NonLocalBlock(), x)

    def attn_shape(**kw):
        _, state = attention.NonLocalBlock(**kw).apply(variables, x, train=False,
                                                        mutable=["intermediates"])
        return state["intermediates"]["attention"][0].shape

    assert attn_shape() == (N, 40, 12)  # ceil(8/2) * ceil(5/2) keys
    assert attn_shape(pool_on=()) == (N, 40, 40)
    assert attn_shape(pool_size=1) == (N, 40, 40)
    assert attn_shape(pool_size=4) == (N, 40, 2 * 2)
    assert attn_shape(pool_on=("theta", "phi", "g")) == (N, 12, 12)
    for bad in [("phi",), ("g",), ("theta",), ("theta", "phi"), ("key",)]:
        with pytest.raises(ValueError, match="pool_on"):
            attention.NonLocalBlock(pool_on=bad).apply(variables, x, train=False)
    with pytest.raises(ValueError, match="mode"):
        attention.NonLocalBlock(mode="channel").apply(variables, x, train=False)
    with pytest.raises(ValueError, match="attention_impl"):
        attention.NonLocalBlock(attention_impl="flash").apply(variables, x, train=False)


@pytest.mark.parametrize("kind", ["nonlocal", "cbam", "se"])
def test_jit_matches_eager_and_train_updates_stats(kind):
    module = attention.make_attention(kind)
    x = _x(shape=(N, 8, V, 32))
    variables = _randomise(_init(module, x))
    eager = module.apply(variables, x, train=False)
    jitted = jax.jit(functools.partial(module.apply, train=False))(variables, x)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-6, atol=1e-6)
    assert eager.shape == x.shape and eager.dtype == x.dtype
    if "batch_stats" in variables:
        _, state = jax.jit(functools.partial(module.apply, train=True, mutable=["batch_stats"]))(
            variables, x)
        changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)),
                                         state["batch_stats"], variables["batch_stats"])
        assert all(jax.tree_util.tree_leaves(changed))


@pytest.mark.parametrize("kind,kwargs", [("nonlocal", {"mode": "spatial"}),
                                         ("nonlocal", {"mode": "spatiotemporal"}),
                                         ("nonlocal", {"attention_impl": "xla"}),
                                         ("cbam", {}), ("se", {})])
def test_bfloat16_compute_is_finite_and_close(kind, kwargs):
    x = _x(shape=(N, 8, V, 32))
    f32 = attention.make_attention(kind, **kwargs)
    variables = _randomise(_init(f32, x))
    ref = f32.apply(variables, x, train=False)
    bf16 = attention.make_attention(kind, dtype=jnp.bfloat16, **kwargs)
    for x_in in (x, x.astype(jnp.bfloat16)):
        out = jax.jit(functools.partial(bf16.apply, train=False))(variables, x_in)
        assert out.dtype == x_in.dtype and bool(jnp.all(jnp.isfinite(out)))
        diff = np.asarray(out, np.float32) - np.asarray(ref)
        # bf16 keeps ~3 significant digits; sharp random softmaxes amplify that a little.
        assert np.sqrt(np.mean(diff**2)) < 0.03 * np.sqrt(np.mean(np.asarray(ref) ** 2))
    # Parameters stay float32 under bf16 compute.
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(_init(bf16, x)))
    if kind == "nonlocal":
        _, state = bf16.apply(variables, x, train=False, mutable=["intermediates"])
        attn = state["intermediates"]["attention"][0]
        assert attn.dtype == jnp.float32  # softmax in float32
        np.testing.assert_allclose(np.asarray(attn).sum(-1), 1.0, rtol=1e-5)


def test_se_block_math():
    x = _x(shape=(N, 4, 3, 32))
    se = attention.SEBlock()
    variables = _randomise(_init(se, x))
    p = variables["params"]
    assert p["fc1"]["kernel"].shape == (32, 2) and p["fc2"]["kernel"].shape == (2, 32)
    xn = np.asarray(x, np.float64)
    s = xn.mean(axis=(1, 2))
    s = np.maximum(s @ np.asarray(p["fc1"]["kernel"]) + np.asarray(p["fc1"]["bias"]), 0)
    s = 1 / (1 + np.exp(-(s @ np.asarray(p["fc2"]["kernel"]) + np.asarray(p["fc2"]["bias"]))))
    np.testing.assert_allclose(np.asarray(se.apply(variables, x, train=False)),
                               xn * s[:, None, None, :], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel_size", [7, (7, 1), (4, 3)])
def test_cbam_math(kernel_size):
    x = _x(shape=(N, 9, 6, 32))
    cbam = attention.CBAM(kernel_size=kernel_size)
    variables = _randomise(_init(cbam, x))
    p, st = variables["params"], variables["batch_stats"]
    kt, kv = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    assert p["spatial_conv"]["kernel"].shape == (kt, kv, 2, 1) and "bias" not in p["spatial_conv"]
    xn = np.asarray(x, np.float64)

    def mlp(h):
        h = np.maximum(h @ np.asarray(p["channel_fc1"]["kernel"]) + np.asarray(
            p["channel_fc1"]["bias"]), 0)
        return h @ np.asarray(p["channel_fc2"]["kernel"]) + np.asarray(p["channel_fc2"]["bias"])

    gate = 1 / (1 + np.exp(-(mlp(xn.mean(axis=(1, 2))) + mlp(xn.max(axis=(1, 2))))))
    h = xn * gate[:, None, None, :]
    pooled = np.stack([h.mean(-1), h.max(-1)], -1)
    padded = np.pad(pooled, ((0, 0), (kt // 2, (kt - 1) // 2), (kv // 2, (kv - 1) // 2), (0, 0)))
    k = np.asarray(p["spatial_conv"]["kernel"], np.float64)[..., 0]
    s = np.zeros(pooled.shape[:3])
    for i in range(pooled.shape[1]):
        for j in range(pooled.shape[2]):
            s[:, i, j] = np.einsum("nabc,abc->n", padded[:, i:i + kt, j:j + kv], k)
    s = (s - float(st["spatial_bn"]["mean"][0])) / np.sqrt(float(st["spatial_bn"]["var"][0]) + 1e-5)
    s = s * float(p["spatial_bn"]["scale"][0]) + float(p["spatial_bn"]["bias"][0])
    ref = h / (1 + np.exp(-s))[..., None]
    np.testing.assert_allclose(np.asarray(cbam.apply(variables, x, train=False)), ref,
                               rtol=1e-5, atol=1e-5)


def test_make_attention_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown attention kind"):
        attention.make_attention("transformer")
    assert isinstance(attention.make_attention("nonlocal", mode="spatial", name="nl"),
                      attention.NonLocalBlock)


def test_padded_fused_attention_matches_reference_values_and_gradients():
    """The cuDNN path pads odd sequence lengths to even and masks the padding with per-sequence
    lengths (jax's cuDNN check refuses odd lengths when training, e.g. Kinetics' 2,700 x 675).
    The same padding and masking, run through the XLA implementation on CPU, must give the
    unpadded softmax(q k^T) v and its gradients."""
    kq, kk, kv = jax.random.split(jax.random.key(3), 3)
    q = jax.random.normal(kq, (3, 7, 8))
    k = jax.random.normal(kk, (3, 5, 8))
    v = jax.random.normal(kv, (3, 5, 8))

    def ref(q, k, v):
        return jnp.sum(jnp.sin(attention._attend_reference(q, k, v)[0]))

    def padded(q, k, v):
        return jnp.sum(jnp.sin(attention._attend_fused(q, k, v, "xla", pad_to_even=True)))

    out = attention._attend_fused(q, k, v, "xla", pad_to_even=True)
    assert out.shape == (3, 7, 8)
    np.testing.assert_allclose(np.asarray(out), np.asarray(attention._attend_reference(q, k, v)[0]),
                               rtol=1e-5, atol=1e-5)
    for g, r in zip(jax.grad(padded, (0, 1, 2))(q, k, v), jax.grad(ref, (0, 1, 2))(q, k, v)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-5, atol=1e-5)


def test_automatic_implementation_uses_cudnn_only_where_flash_attention_applies(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(attention, "_compute_capability", lambda: (7, 5))  # e.g. a T4
    assert attention._auto_impl("spatiotemporal", jnp.bfloat16, 32) is None
    monkeypatch.setattr(attention, "_compute_capability", lambda: (9, 0))
    assert attention._auto_impl("spatiotemporal", jnp.bfloat16, 32) == "cudnn"
    assert attention._auto_impl("temporal", jnp.float16, 64) == "cudnn"
    assert attention._auto_impl("spatial", jnp.bfloat16, 32) is None  # V x V per frame: tiny
    assert attention._auto_impl("spatiotemporal", jnp.float32, 32) is None  # cuDNN: half only
    assert attention._auto_impl("spatiotemporal", jnp.bfloat16, 12) is None  # head dim % 8
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    assert attention._auto_impl("spatiotemporal", jnp.bfloat16, 32) is None


@pytest.mark.parametrize("window", [(2, 2), (1, 2), (2, 1), (3, 2)])
def test_max_pool_first_matches_flax_max_pool_values_and_tie_gradients(window):
    """Ceil-mode pooling on odd T, V; many ties (small integers) so the gradient's tie rule
    (first maximum in row-major window order, like select-and-scatter) is exercised."""
    wt, wv = window
    x = jnp.round(2 * jax.random.normal(jax.random.key(0), (2, 7, 5, 3)))
    pad = ((0, -7 % wt), (0, -5 % wv))

    def ref(x):
        return nn.max_pool(x, window, strides=window, padding=pad)

    got = attention.max_pool_first(x, wt, wv)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(ref(x)))
    cot = jax.random.normal(jax.random.key(1), got.shape)
    g_got = jax.vjp(lambda x: attention.max_pool_first(x, wt, wv), x)[1](cot)[0]
    g_ref = jax.vjp(ref, x)[1](cot)[0]
    np.testing.assert_array_equal(np.asarray(g_got), np.asarray(g_ref))


def test_automatic_cudnn_choice_falls_back_to_blocked_attention_when_refused(monkeypatch):
    """If jax refuses cuDNN attention at trace time (old cuDNN, unsupported shape), the automatic
    choice runs the blocked path (values and gradients as the reference); an explicit
    attention_impl="cudnn" still raises."""
    x = _x(shape=(N, 6, V, C))
    ref_block = attention.NonLocalBlock(attention_impl="reference")
    variables = _randomise(_init(ref_block, x))

    def refuse(*args, **kwargs):
        raise NotImplementedError("Unsupported sequence length")

    monkeypatch.setattr(attention, "_auto_impl", lambda *a: "cudnn")
    monkeypatch.setattr(attention, "_attend_fused", refuse)

    def loss(block, variables):
        y, _ = block.apply(variables, x, train=True, mutable=["batch_stats"])
        return jnp.sum(jnp.sin(y))

    val, grads = jax.value_and_grad(functools.partial(loss, attention.NonLocalBlock()))(variables)
    ref_val, ref_grads = jax.value_and_grad(functools.partial(loss, ref_block))(variables)
    np.testing.assert_allclose(val, ref_val, rtol=1e-5)
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-4, atol=1e-5)
    with pytest.raises(NotImplementedError):
        loss(attention.NonLocalBlock(attention_impl="cudnn"), variables)
