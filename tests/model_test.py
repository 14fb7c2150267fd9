"""AMSTGCN: param paths/counts, the model zoo, attention placement and identity at init."""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amstgcn_jax import convert
from amstgcn_jax.model import (
    AMSTGCN,
    VARIANTS,
    count_params,
    get_model,
    normalize_attention,
    parse_placements,
)

TESTDATA = Path(__file__).parent / "testdata"
_RNGS = {"params": jax.random.key(0), "dropout": jax.random.key(1)}


def _shapes(model, v=25, m=2, t=9, c=3):
    x = jnp.zeros((1, m, t, v, c), jnp.float32)
    return jax.eval_shape(lambda: model.init(_RNGS, x, train=False))


def _tiny(**kw):
    """Three blocks (64 -> 64 -> 128/s2) keep CPU tests fast; attention at paper layer 1/2."""
    return get_model(blocks=((8, 1, False), (8, 1, True), (16, 2, True)), **kw)


def _perturbed_variables(model, x):
    """`model`'s init variables, each moved by N(0, 0.05²) so that BatchNorm scales and biases
    are not the trivial ones when formulations are compared. The init is jitted and the noise
    drawn by NumPy: op by op this took 20 s for a 3-block model, 5 s now."""
    variables = jax.jit(functools.partial(model.init, train=False))(_RNGS, x)
    rng = np.random.default_rng(8)
    return jax.tree.map(lambda a: a + 0.05 * rng.standard_normal(a.shape, np.float32),
                        variables)


def _train_loss(model, variables, x):
    """sum(logits²) of a train-mode forward, with the logits, the intermediate features (data_bn
    and every block's output) and the updated batch statistics."""
    (logits, out), updates = model.apply(variables, x, train=True, mutable=["batch_stats"],
                                         rngs={"dropout": jax.random.key(2)})
    return jnp.sum(logits ** 2), (logits, out, updates["batch_stats"])


@pytest.mark.parametrize("num_classes,layout,expected", [
    (60, "ntu-rgb+d", 3_098_832), (400, "openpose", 3_177_140), (120, "ntu-rgb+d", 3_114_252)])
def test_param_count_matches_upstream(num_classes, layout, expected):
    model = get_model(variant="stgcn", num_classes=num_classes, layout=layout)
    v = 25 if layout == "ntu-rgb+d" else 18
    assert count_params(_shapes(model, v=v)["params"]) == expected


def test_param_path_snapshot():
    model = get_model(variant="am_stgcn", num_classes=60, layout="ntu-rgb+d")
    lines = sorted(f"{'/'.join(p)}\t{','.join(map(str, x.shape))}\t{x.dtype}"
                   for p, x in convert._flat(_shapes(model)).items())
    manifest = (TESTDATA / "am_stgcn_ntu60_param_paths.txt").read_text().splitlines()
    assert lines == [ln for ln in manifest if ln and not ln.startswith("#")]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_builds_with_attention_where_named(name):
    model = get_model(variant=name, num_classes=400, layout="openpose")
    params = _shapes(model, v=18)["params"]
    expected = set()
    for _, where, layer, count, _ in normalize_attention(VARIANTS[name]["attention"]):
        expected |= {f"block{layer}/attn_{where}{j}" for j in range(count)}
    found = {f"{b}/{k}" for b, sub in params.items() if b.startswith("block")
             for k in sub if k.startswith("attn_")}
    assert found == expected


def test_paper_default_is_layer3_convt_times_three():
    assert VARIANTS["am_stgcn"]["attention"] == (("nonlocal", "convt", 3, 3),)
    assert parse_placements("convs_l2x2_convt_l3x3") == (
        ("nonlocal", "convs", 2, 2), ("nonlocal", "convt", 3, 3))
    for bad in ("convs", "convs_convt_l2x2", "l3x3", "convt_l3x3_x", "foo_l1x1"):
        with pytest.raises(ValueError):
            parse_placements(bad)


def test_layer_indexing_paper_vs_code():
    x = jnp.zeros((1, 1, 9, 25, 3))
    with pytest.raises(ValueError, match="paper layers"):
        jax.eval_shape(lambda: get_model(attention=(("nonlocal", "convs", 0, 1),)).init(_RNGS, x))
    with pytest.raises(ValueError, match="paper layers"):
        jax.eval_shape(lambda: get_model(attention=(("nonlocal", "convs", 10, 1),)).init(_RNGS, x))
    model = get_model(attention=(("nonlocal", "convs", 0, 1),), layer_indexing="code")
    assert "attn_convs0" in _shapes(model, m=1)["params"]["block0"]
    with pytest.raises(ValueError, match="kind"):
        normalize_attention((("transformer", "convs", 1, 1),))
    with pytest.raises(ValueError, match="where"):
        normalize_attention((("nonlocal", "gcn", 1, 1),))


def test_get_model_variant_overrides_and_config_lists():
    model = get_model(variant="convs_l2x1_convt_l2x2", num_classes=10,
                      attention=[["se", "convt", 1, 1]], layout="coco")
    assert model.attention == (("se", "convt", 1, 1, ()),)
    model = get_model(variant="convt_l5x3", num_classes=10)
    assert model.attention == (("nonlocal", "convt", 5, 3, ()),)
    with pytest.raises(ValueError, match="backbone"):
        get_model(backbone="resnet")
    with pytest.raises(TypeError):
        get_model(num_clases=10)


def test_agcn_backbone_is_dispatched():
    from amstgcn_jax.agcn import AGCN

    assert isinstance(get_model(backbone="agcn", num_classes=60), AGCN)


def _run(model, variables, x, train=False, seed=0):
    if train:
        (logits, out), _ = model.apply(variables, x, train=True, mutable=["batch_stats"],
                                       rngs={"dropout": jax.random.key(seed)})
        return logits, out
    return model.apply(variables, x, train=False)


def test_attention_is_identity_at_init_model_level():
    x = jax.random.normal(jax.random.key(3), (2, 2, 12, 25, 3))
    base = _tiny(num_classes=5)
    base_vars = base.init(_RNGS, x, train=False)
    for attention in ((("nonlocal", "convt", 2, 2),), (("nonlocal", "convs", 1, 1),
                                                        ("nonlocal", "convt", 1, 1))):
        am = _tiny(num_classes=5, attention=attention)
        am_vars = am.init(_RNGS, x, train=False)
        merged = jax.tree.map(lambda a: a, am_vars)  # same backbone weights as `base`
        for col in ("params", "batch_stats"):
            for k, sub in base_vars[col].items():
                merged[col][k] = (dict(merged[col][k], **sub) if isinstance(sub, dict) else sub)
        for train in (False, True):
            want, want_out = _run(base, base_vars, x, train)
            got, got_out = _run(am, merged, x, train)
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(got_out["feature"], want_out["feature"], rtol=1e-6,
                                       atol=1e-6)


def test_outputs_shapes_and_determinism():
    x = jax.random.normal(jax.random.key(4), (2, 2, 12, 25, 3))
    model = _tiny(num_classes=7, dropout=0.5)
    variables = model.init(_RNGS, x, train=False)
    logits, out = model.apply(variables, x, train=False)
    assert logits.shape == (2, 7) and logits.dtype == jnp.float32
    assert out["data_bn_out"].shape == (4, 12, 25, 3)
    assert out["block2"].shape == (4, 6, 25, 16)
    assert out["feature"].shape == (2, 2, 6, 25, 16)
    np.testing.assert_allclose(out["pooled"], out["feature"].mean((1, 2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.apply(variables, x, train=False)[0], logits)
    a, _ = _run(model, variables, x, train=True, seed=1)
    b, _ = _run(model, variables, x, train=True, seed=2)
    assert not np.allclose(a, b)


def test_person_permutation_invariance_with_vc_data_bn():
    x = jax.random.normal(jax.random.key(5), (2, 2, 12, 18, 3))
    model = _tiny(num_classes=4, layout="openpose")
    variables = model.init(_RNGS, x, train=False)
    a, _ = model.apply(variables, x)
    b, _ = model.apply(variables, x[:, ::-1])
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("data_bn", ["VC", "MVC"])
def test_data_bn_channel_order(data_bn):
    n, m, t, v, c = 1, 2, 3, 25, 3
    model = _tiny(num_classes=3, data_bn=data_bn)
    x = jnp.zeros((n, m, t, v, c))
    variables = model.init(_RNGS, x, train=False)
    size = (m if data_bn == "MVC" else 1) * v * c
    assert variables["params"]["data_bn"]["bias"].shape == (size,)
    params = dict(variables["params"], data_bn={"scale": jnp.ones(size),
                                                "bias": jnp.arange(size, dtype=jnp.float32)})
    stats = dict(variables["batch_stats"], data_bn={"mean": jnp.zeros(size),
                                                    "var": jnp.ones(size) - 1e-5})
    _, out = model.apply({"params": params, "batch_stats": stats}, x)
    got = np.asarray(out["data_bn_out"]).reshape(n, m, t, v, c)[0, :, 0]  # (M, V, C)
    mi, vi, ci = np.meshgrid(np.arange(m), np.arange(v), np.arange(c), indexing="ij")
    want = (mi * v * c if data_bn == "MVC" else 0) + vi * c + ci
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_input_shape_errors_are_clear():
    model = get_model(layout="openpose")
    with pytest.raises(ValueError, match="does not match layout"):
        jax.eval_shape(lambda: model.init(_RNGS, jnp.zeros((1, 2, 9, 25, 3))))


def test_bfloat16_model_runs_with_float32_state():
    x = jax.random.normal(jax.random.key(6), (2, 1, 12, 25, 3))
    model = _tiny(num_classes=3, dtype="bfloat16", attention=(("nonlocal", "convt", 1, 1),))
    variables = model.init(_RNGS, x, train=False)
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(variables))
    logits, out = _run(model, variables, x, train=True)
    assert logits.dtype == jnp.float32 and out["block1"].dtype == jnp.bfloat16
    assert np.isfinite(np.asarray(logits)).all()


def test_stgcn_alias_and_defaults():
    model = AMSTGCN()
    assert model.attention == () and model.data_bn == "VC" and model.layer_indexing == "paper"


def test_gcn_impl_choice_per_block_and_same_outputs(monkeypatch):
    """'auto' is sparse on CPU from SPARSE_MIN_ROW_ELEMENTS per node row (factored below it
    or with NTVC activations) and on GPU Kronecker up to V·C = KRON_MAX_WIDTH, sparse beyond
    (factored with NTVC activations); every choice shares the parameters and gives the same
    features (train mode, gradients included)."""
    from amstgcn_jax import model as model_lib

    blocks = model_lib.STGCN_BLOCKS
    assert model_lib.gcn_impls_for("auto", blocks, 25) == ("sparse",) * 10  # CPU backend
    assert model_lib.gcn_impls_for("auto", blocks, 25, "NTVC") == ("factored",) * 10
    small = model_lib.SPARSE_MIN_ROW_ELEMENTS - 1
    assert model_lib.gcn_impls_for("auto", blocks[:2], 25, "auto", (small, small + 1)) == (
        "factored", "sparse")
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert model_lib.gcn_impls_for("auto", blocks, 25) == ("kron",) * 7 + ("sparse",) * 3
    assert model_lib.gcn_impls_for("auto", blocks, 25, "NTVC") == ("kron",) * 7 + (
        "factored",) * 3
    assert model_lib.gcn_impls_for("auto", blocks, 25, "VNTC") == ("sparse",) * 10
    assert model_lib.gcn_impls_for("auto", blocks, 18) == ("kron",) * 10
    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    assert model_lib.gcn_impls_for("auto", blocks, 25) == ("factored",) * 10
    monkeypatch.undo()
    with pytest.raises(ValueError, match="entries for 3 blocks"):
        model_lib.gcn_impls_for(("kron",), ((8, 1, False),) * 3, 25)

    x = jax.random.normal(jax.random.key(4), (2, 2, 12, 25, 3))
    ref_model = _tiny(num_classes=5)
    variables = ref_model.init(_RNGS, x, train=False)

    def loss(model, variables):
        (logits, out), _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
        return jnp.sum(logits ** 2), out

    (ref_loss, ref_out), ref_grads = jax.jit(jax.value_and_grad(
        lambda v: loss(ref_model, v), has_aux=True))(variables)
    for impl in ("kron", ("kron", "factored", "kron"), "sparse", "gpu auto"):
        if impl == "gpu auto":
            # The GPU default, traced here: two Kronecker blocks on NTVC activations, then a
            # sparse one (its unrolled form) on V-major ones.
            monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
            monkeypatch.setattr(model_lib, "KRON_MAX_WIDTH", 25 * 8)
            assert model_lib.gcn_impls_for("auto", _tiny().blocks, 25) == (
                "kron", "kron", "sparse")
            model = _tiny(num_classes=5)
        else:
            model = _tiny(num_classes=5, gcn_impl=impl)
        (val, out), grads = jax.jit(jax.value_and_grad(
            functools.partial(loss, model), has_aux=True))(variables)
        monkeypatch.undo()
        np.testing.assert_allclose(out["block2"], ref_out["block2"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(val, ref_loss, rtol=1e-5)
        for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
            np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)


def test_activation_layout_choice_and_same_outputs(monkeypatch):
    """'auto' runs the blocks on V-major activations on CPU and NTVC on GPU or with Kronecker
    blocks; both layouts share the parameters and give the same logits, features and
    gradients, attention blocks included (they are transposed to NTVC and back)."""
    from amstgcn_jax import model as model_lib

    layouts = model_lib.block_layouts_for
    assert layouts("auto", ("factored",) * 3) == ("VNTC",) * 3  # CPU backend
    assert layouts("auto", ("factored", "kron")) == ("VNTC", "NTVC")
    assert layouts("auto", ("kron", "sparse")) == ("NTVC", "VNTC")
    assert layouts("per_block", ("kron", "factored")) == ("NTVC", "VNTC")
    assert layouts("NTVC", ("factored", "kron")) == ("NTVC", "NTVC")
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert layouts("auto", ("factored",) * 3) == ("NTVC",) * 3
    assert layouts("auto", ("kron", "factored", "sparse")) == ("NTVC", "NTVC", "VNTC")
    assert layouts("per_block", ("kron", "factored", "sparse")) == ("NTVC", "VNTC", "VNTC")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="cannot run gcn_impl='sparse'"):
        layouts("NTVC", ("sparse",))
    with pytest.raises(ValueError, match="cannot run gcn_impl='kron'"):
        layouts("VNTC", ("kron",))
    with pytest.raises(ValueError, match="activation_layout must be one of"):
        layouts("NCTV", ("factored",))

    x = jax.random.normal(jax.random.key(5), (2, 2, 12, 25, 3))
    attention = (("nonlocal", "convs", 1, 1), ("nonlocal", "convt", 2, 1, {"pool_size": 2}),
                 ("se", "convt", 1, 1))
    models = {lay: _tiny(num_classes=5, attention=attention, activation_layout=lay)
              for lay in ("NTVC", "VNTC")}
    # Layout changes between blocks: NTVC -> VNTC -> NTVC.
    mixed = ("kron", "factored", "kron")
    assert layouts("per_block", mixed) == ("NTVC", "VNTC", "NTVC")
    models["per_block"] = _tiny(num_classes=5, attention=attention,
                                activation_layout="per_block", gcn_impl=mixed)
    variables = models["NTVC"].init(_RNGS, x, train=False)
    variables = jax.tree.map(lambda a: a + 0.05 * jax.random.normal(jax.random.key(6), a.shape),
                             variables)  # non-identity attention, non-trivial BN

    def loss(model, variables):
        (logits, out), _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
        return jnp.sum(logits ** 2), (logits, out)

    # jitted: 51 s for this test alone against 66 s op by op (Zen 3, round 17)
    results = {lay: jax.jit(jax.value_and_grad(functools.partial(loss, m), has_aux=True))(
        variables) for lay, m in models.items()}
    (_, (ref_logits, ref_out)), ref_grads = results["NTVC"]
    eval_logits = {lay: jax.jit(functools.partial(m.apply, train=False))(variables, x)[0]
                   for lay, m in models.items()}
    for lay in ("VNTC", "per_block"):
        (_, (logits, out)), grads = results[lay]
        np.testing.assert_allclose(logits, ref_logits, rtol=1e-5, atol=1e-5)
        for key in ("block0", "block1", "block2", "feature", "pooled"):
            assert out[key].shape == ref_out[key].shape
            np.testing.assert_allclose(out[key], ref_out[key], rtol=1e-5, atol=1e-5)
        for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
            np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(eval_logits[lay], eval_logits["NTVC"], rtol=1e-5, atol=1e-5)


def test_batch_shards_resolves_auto_and_keeps_dropout_masks(monkeypatch):
    """`batch_shards` > 1 turns "auto" into NTVC activations and matmul (CPU training) or
    lax.conv temporal convs (explicit choices stay) and changes nothing else: in training
    mode with dropout, the 1-device model (V-major, FFT conv on CPU) and the 2-shard one give
    the same logits, features and gradients, because the masks are drawn in NTVC order."""
    from amstgcn_jax import model as model_lib

    assert model_lib.mesh_auto("auto", "auto", 1) == ("auto", "auto")
    assert model_lib.mesh_auto("auto", "auto", 2) == ("NTVC", "matmul")  # CPU training
    assert model_lib.mesh_auto("auto", "auto", 2, train=False) == ("NTVC", "conv")
    assert model_lib.mesh_auto("VNTC", "fft", 8) == ("VNTC", "fft")
    with pytest.raises(ValueError, match="batch_shards must be >= 1"):
        model_lib.mesh_auto("auto", "auto", 0)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert model_lib.mesh_auto("auto", "auto", 2) == ("NTVC", "conv")
    # on GPU the sparse 256-channel blocks become factored ones on a mesh
    wide = ((64, 1, True), (256, 1, True))
    assert model_lib.gcn_impls_for("auto", wide, 25, "auto") == ("kron", "sparse")
    assert model_lib.gcn_impls_for("auto", wide, 25, "NTVC") == ("kron", "factored")
    monkeypatch.undo()

    x = jax.random.normal(jax.random.key(5), (4, 2, 12, 25, 3))
    models = {shards: _tiny(num_classes=5, dropout=0.5, batch_shards=shards)
              for shards in (1, 2)}
    variables = _perturbed_variables(models[1], x)

    def loss(model, variables, key=9):
        (logits, out), _ = model.apply(variables, x, train=True, mutable=["batch_stats"],
                                       rngs={"dropout": jax.random.key(key)})
        return jnp.sum(logits ** 2), (logits, out)

    results = {s: jax.jit(jax.value_and_grad(functools.partial(loss, m), has_aux=True))(
        variables) for s, m in models.items()}
    (_, (ref_logits, ref_out)), ref_grads = results[1]
    (_, (logits, out)), grads = results[2]
    other_key = jax.jit(functools.partial(loss, models[1], key=10))(variables)[1][0]
    assert not np.allclose(other_key, ref_logits, rtol=1e-3, atol=1e-3)  # the masks matter
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-5, atol=1e-5)
    for key in ("block1", "block2", "pooled"):
        np.testing.assert_allclose(out[key], ref_out[key], rtol=1e-5, atol=1e-5)
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)


def test_bn_impl_picks_the_batchnorm_backward_with_the_same_numbers():
    """`bn_impl` reaches every backbone BatchNorm (data_bn, tcn_bn0/1, residual_bn) and only
    changes how the training gradient is computed: same logits, batch statistics and
    gradients."""
    import flax.linen as nn
    from flax import traverse_util

    from amstgcn_jax import layers

    x = jax.random.normal(jax.random.key(7), (2, 2, 12, 25, 3))
    models = {impl: _tiny(num_classes=5, bn_impl=impl) for impl in ("custom", "autodiff")}
    variables = _perturbed_variables(models["custom"], x)
    results = {impl: jax.value_and_grad(functools.partial(_train_loss, m, x=x), has_aux=True)(
        variables) for impl, m in models.items()}
    (_, (logits, features, stats)), grads = results["custom"]
    (_, (ref_logits, ref_features, ref_stats)), ref_grads = results["autodiff"]
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-5, atol=1e-6)
    for name, feature in features.items():
        np.testing.assert_allclose(feature, ref_features[name], rtol=1e-5, atol=1e-5,
                                   err_msg=name)
    for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(ref_stats)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    ref_by_path = traverse_util.flatten_dict(ref_grads["params"], sep="/")
    for path, g in traverse_util.flatten_dict(grads["params"], sep="/").items():
        np.testing.assert_allclose(g, ref_by_path[path], rtol=1e-4, atol=1e-5, err_msg=path)

    # Which backward each BatchNorm was built with, read off the modules as they run.
    seen = []

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, layers.BatchNorm) and context.method_name == "__call__":
            seen.append((context.module.name, context.module.custom_backward))
        return next_fun(*args, **kwargs)

    for impl, expected in (("custom", True), ("autodiff", False), ("auto", None)):
        seen.clear()
        with nn.intercept_methods(record):
            _tiny(num_classes=5, bn_impl=impl).apply(variables, x, train=False)
        assert {"data_bn", "tcn_bn0", "tcn_bn1", "residual_bn"} <= {n for n, _ in seen}, seen
        assert {flag for _, flag in seen} == {expected}
    with pytest.raises(ValueError, match="bn_impl must be one of"):
        _tiny(num_classes=5, bn_impl="fused").init(_RNGS, x, train=False)


def test_block_output_stored_is_the_identity_and_stops_recomputation():
    """`block_output="stored"` (`layers.store` at each block's output, the CPU default) changes
    neither values nor gradients; it makes XLA:CPU compute each block's ReLU output once instead
    of copying the chain of residual adds and ReLUs into every consumer (fewer `maximum` ops in
    the compiled train step, one gather per block)."""
    from amstgcn_jax import layers

    x = jax.random.normal(jax.random.key(3), (4, 6, 5))
    w = jax.random.normal(jax.random.key(4), x.shape)
    grad = jax.jit(jax.grad(lambda x: jnp.sum(layers.store(x) * w)))(x)
    np.testing.assert_array_equal(jax.jit(layers.store)(x), x)
    np.testing.assert_array_equal(grad, w)

    x = jax.random.normal(jax.random.key(7), (2, 2, 12, 25, 3))
    models = {out: _tiny(num_classes=5, block_output=out) for out in ("stored", "fused")}
    variables = _perturbed_variables(models["fused"], x)
    results, hlo = {}, {}
    for out, model in models.items():
        fn = jax.jit(jax.value_and_grad(functools.partial(_train_loss, model, x=x),
                                        has_aux=True))
        hlo[out] = fn.lower(variables).compile().as_text()
        results[out] = fn(variables)
    (_, (logits, features, stats)), grads = results["stored"]
    (_, (ref_logits, ref_features, ref_stats)), ref_grads = results["fused"]
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-6, atol=1e-7)
    assert features.keys() == ref_features.keys() and "block2" in features
    for name, feature in features.items():
        np.testing.assert_allclose(feature, ref_features[name], rtol=1e-6, atol=1e-6,
                                   err_msg=name)
    for a, b in zip(jax.tree.leaves((stats, grads)), jax.tree.leaves((ref_stats, ref_grads))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert hlo["stored"].count(" gather(") == hlo["fused"].count(" gather(") + 3
    assert hlo["stored"].count(" maximum(") < hlo["fused"].count(" maximum("), (
        hlo["stored"].count(" maximum("), hlo["fused"].count(" maximum("))

    assert layers.stores_block_output("auto") == (jax.default_backend() == "cpu")
    with pytest.raises(ValueError, match="block_output must be one of"):
        _tiny(num_classes=5, block_output="kept").init(_RNGS, x, train=False)
