"""2s-AGCN backbone and conversion: behaviour on tiny shapes (no ../shared needed)."""

import functools
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amstgcn_jax import agcn_convert, graph
from amstgcn_jax.agcn import AGCN, AdaptiveGraphConv

N, M, T = 2, 2, 8


def _x(v=25, c=3, seed=0, t=T):
    return np.random.default_rng(seed).normal(size=(N, M, t, v, c)).astype(np.float32)


def _random_variables(model, x, seed=0):
    """Variables with random values, without compiling `init` (XLA:CPU compiles the RNG slowly)."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
    rng = np.random.default_rng(seed)
    variables = jax.tree.map(lambda s: (0.3 * rng.normal(size=s.shape)).astype(s.dtype), shapes)
    variables["batch_stats"] = jax.tree.map(lambda a: np.abs(a) + 0.5, variables["batch_stats"])
    return variables


def _apply(model, variables, x, train=False, rng=None):
    """Jitted apply (eager op-by-op dispatch of the 10 blocks is slow on 2 cores)."""
    if not train:
        return _jitted(model, "eval")(variables, x)
    return _jitted(model, "train")(variables, x, jax.random.PRNGKey(0) if rng is None else rng)


@functools.lru_cache(maxsize=None)
def _jitted(model, what):
    if what == "eval":
        return jax.jit(lambda v, x: model.apply(v, x, train=False))
    return jax.jit(lambda v, x, r: model.apply(v, x, train=True, mutable=["batch_stats"],
                                               rngs={"dropout": r}))


TINY = ((8, 1, False), (8, 1, True), (16, 2, True))  # l1-, l2-, l5-like blocks


@pytest.fixture(scope="module")
def ntu():
    model = AGCN(num_classes=7, layout="ntu-rgb+d")
    return model, _random_variables(model, _x())


def test_outputs_and_shapes(ntu):
    model, variables = ntu
    logits_NL, out = _apply(model, variables, _x())
    assert logits_NL.shape == (N, 7) and logits_NL.dtype == jnp.float32
    assert out["data_bn_out"].shape == (N * M, T, 25, 3)
    widths = (64,) * 4 + (128,) * 3 + (256,) * 3
    frames = (T,) * 4 + (T // 2,) * 3 + (T // 4,) * 3
    gcn_frames = (T,) * 5 + (T // 2,) * 3 + (T // 4,) * 2  # gcn runs before the stride
    for i in range(10):
        assert out[f"block{i}"].shape == (N * M, frames[i], 25, widths[i]), i
        assert out[f"block{i}_gcn"].shape == (N * M, gcn_frames[i], 25, widths[i]), i
        assert out[f"block{i}_attn"].shape == (N * M, 3, 25, 25), i
    assert out["feature"].shape == (N, M, T // 4, 25, 256)
    np.testing.assert_allclose(out["pooled"], out["feature"].mean((1, 2, 3)), rtol=1e-5, atol=1e-5)
    assert np.isfinite(np.asarray(logits_NL)).all()


def test_attention_columns_sum_to_one_and_vary_with_input(ntu):
    model, variables = ntu
    _, out_a = _apply(model, variables, _x(seed=1))
    _, out_b = _apply(model, variables, _x(seed=2))
    for i in (0, 9):
        attn = np.asarray(out_a[f"block{i}_attn"])
        np.testing.assert_allclose(attn.sum(axis=-2), 1.0, rtol=1e-5)
        assert (attn >= 0).all()
    assert not np.allclose(out_a["block0_attn"], out_b["block0_attn"])


def test_structure_matches_upstream(ntu):
    _, variables = ntu
    p = variables["params"]
    assert p["block0"]["gcn"]["conv_a"]["kernel"].shape == (3, 3, 16)
    assert p["block9"]["gcn"]["conv_d"]["kernel"].shape == (3, 256, 256)
    # down paths where the width changes, block residual convs at l5 and l8, no residual at l1
    assert {b for b in p if "down_conv" in p[b].get("gcn", {})} == {"block0", "block4", "block7"}
    assert {b for b in p if "residual_conv" in p[b]} == {"block4", "block7"}
    paths = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(variables)[0]]
    assert not any("'A'" in path for path in paths)  # the graph is a constant, not a variable


@pytest.fixture(scope="module")
def tiny():
    model = AGCN(num_classes=7, layout="ntu-rgb+d", blocks=TINY)
    init = jax.jit(lambda k, x: model.init(k, x, train=False))
    return model, init(jax.random.PRNGKey(0), _x())


def test_upstream_initialisation(tiny):
    _, variables = tiny
    p = variables["params"]
    np.testing.assert_array_equal(p["block0"]["gcn"]["PA"], np.full((3, 25, 25), 1e-6, np.float32))
    np.testing.assert_array_equal(p["block2"]["gcn"]["bn"]["scale"], np.full(16, 1e-6, np.float32))
    np.testing.assert_array_equal(p["block2"]["tcn_bn"]["scale"], 1.0)
    np.testing.assert_array_equal(p["block2"]["gcn"]["conv_d"]["bias"], 0)
    np.testing.assert_array_equal(p["block2"]["gcn"]["conv_a"]["bias"], 0)
    std = float(np.std(p["block2"]["gcn"]["conv_d"]["kernel"]))  # conv_branch_init
    assert abs(std - np.sqrt(2 / (16 * 8 * 3))) < 0.15 * std
    std = float(np.std(p["block2"]["tcn_conv"]["kernel"]))  # kaiming normal, fan_out = 16 * 9
    assert abs(std - np.sqrt(2 / (16 * 9))) < 0.15 * std


def test_eval_is_deterministic_and_train_updates_batch_stats(tiny):
    model, variables = tiny
    a, _ = _apply(model, variables, _x())
    b, _ = _apply(model, variables, _x())
    np.testing.assert_array_equal(a, b)
    (logits, _), updates = _apply(model, variables, _x(), train=True)
    assert np.isfinite(np.asarray(logits)).all()
    before = variables["batch_stats"]["data_bn"]["mean"]
    assert not np.allclose(updates["batch_stats"]["data_bn"]["mean"], before)


def test_data_bn_channels_are_per_person_slot():
    """BatchNorm1d over M*V*C: person slot m uses its own statistics (channel m*V*C + v*C + c)."""
    model = AGCN(num_classes=4, layout="openpose", dropout=0.5, blocks=TINY)
    x = _x(v=18)
    variables = _random_variables(model, x, seed=1)
    stats = jax.tree.map(np.array, variables["batch_stats"])
    stats["data_bn"]["mean"][18 * 3 + 5 * 3 + 2] = 7.0  # person 1, joint 5, channel 2
    _, out = _apply(model, {**variables, "batch_stats": stats}, x)
    _, ref = _apply(model, variables, x)
    diff = np.abs(np.asarray(out["data_bn_out"]) - np.asarray(ref["data_bn_out"]))
    diff = diff.reshape(N, M, T, 18, 3)
    assert set(zip(*np.nonzero(diff.max(axis=(0, 2))))) == {(1, 5, 2)}


def _conv1x1_nctv(x, kernel_IO, bias_O):
    return np.einsum("nctv,co->notv", x, kernel_IO) + bias_O[:, None, None]


def _bn_nctv(x, scale, bias, stats):
    mean, var = np.asarray(stats["mean"]), np.asarray(stats["var"])
    return ((x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5) * scale[:, None, None]
            + bias[:, None, None])


def test_single_gcn_unit_matches_numpy_reference():
    """AdaptiveGraphConv against a direct float64 transcription of upstream unit_gcn.forward."""
    rng = np.random.default_rng(3)
    x_NTVC = rng.normal(size=(2, 5, 6, 4)).astype(np.float32)
    adj_KVV = rng.uniform(size=(3, 6, 6)).astype(np.float32)
    unit = AdaptiveGraphConv(8)
    shapes = jax.eval_shape(lambda: unit.init(jax.random.PRNGKey(0), x_NTVC, adj_KVV, train=False))
    variables = jax.tree.map(lambda p: rng.normal(size=p.shape).astype(np.float32), shapes)
    variables["batch_stats"] = jax.tree.map(np.abs, variables["batch_stats"])  # var > 0
    y, attn = jax.jit(lambda v, x: unit.apply(v, x, adj_KVV, train=False))(variables, x_NTVC)

    p = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"])
    stats = variables["batch_stats"]
    x = x_NTVC.astype(np.float64).transpose(0, 3, 1, 2)  # upstream (n, C, T, V)
    n, c, t, v = x.shape
    graph_KVV = adj_KVV + p["PA"]
    out = 0
    for k in range(3):
        a = _conv1x1_nctv(x, p["conv_a"]["kernel"][k], p["conv_a"]["bias"][k])
        b = _conv1x1_nctv(x, p["conv_b"]["kernel"][k], p["conv_b"]["bias"][k])
        a1 = a.transpose(0, 3, 1, 2).reshape(n, v, -1)  # (n, V, C_e*T)
        a2 = b.reshape(n, -1, v)  # (n, C_e*T, V)
        s = a1 @ a2 / a1.shape[-1]
        e = np.exp(s - s.max(axis=1, keepdims=True))
        ck = e / e.sum(axis=1, keepdims=True)  # softmax over dim -2
        np.testing.assert_allclose(attn[:, k], ck, rtol=1e-4, atol=1e-5)
        z = (x.reshape(n, c * t, v) @ (ck + graph_KVV[k])).reshape(n, c, t, v)
        out = out + _conv1x1_nctv(z, p["conv_d"]["kernel"][k], p["conv_d"]["bias"][k])
    out = _bn_nctv(out, p["bn"]["scale"], p["bn"]["bias"], stats["bn"])
    down = _conv1x1_nctv(x, p["down_conv"]["kernel"][0, 0], p["down_conv"]["bias"])
    down = _bn_nctv(down, p["down_bn"]["scale"], p["down_bn"]["bias"], stats["down_bn"])
    expected = np.maximum(out + down, 0).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_bfloat16_compute_keeps_float32_params_and_logits():
    model = AGCN(num_classes=7, layout="nw-ucla", dtype="bfloat16", blocks=TINY)
    x = _x(v=20)
    variables = _random_variables(model, x)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))
    logits, out = _apply(model, variables, x)
    assert logits.dtype == jnp.float32 and np.isfinite(np.asarray(logits)).all()
    assert out["block1"].dtype == jnp.bfloat16 and out["block1_attn"].dtype == jnp.float32
    ref, _ = _apply(AGCN(num_classes=7, layout="nw-ucla", blocks=TINY), variables, x)
    np.testing.assert_allclose(logits, ref, atol=0.1 * float(np.abs(ref).max()) + 1e-3)


def test_dropout_only_in_training():
    model = AGCN(num_classes=4, layout="openpose", dropout=0.5, blocks=TINY)
    x = _x(v=18)
    variables = _random_variables(model, x, seed=1)
    a, _ = _apply(model, variables, x)
    b, _ = _apply(model, variables, x)
    np.testing.assert_array_equal(a, b)
    (c, _), _ = _apply(model, variables, x, train=True, rng=jax.random.PRNGKey(1))
    (d, _), _ = _apply(model, variables, x, train=True, rng=jax.random.PRNGKey(2))
    assert not np.allclose(c, d)


def test_rejects_bad_config_and_input():
    with pytest.raises(TypeError):
        AGCN(num_classes=3, edge_importance=True)  # an ST-GCN-only key fails loudly
    x = _x()
    for bad in (dict(strategy="distance"), dict(data_bn="VC"), dict(layout="openpose"),
                dict(in_channels=2), dict(attention=(("nonlocal", "convx", 2, 1),)),
                dict(attention=(("nonlocal", "convt", 0, 1),)),
                dict(attention=(("nonlocal", "convt", 10, 1),)),
                dict(attention=(("nonlocal", "convt", 3, 3),), layer_indexing="both")):
        with pytest.raises(ValueError):
            AGCN(num_classes=3, **bad).init(jax.random.PRNGKey(0), x, train=False)


def test_attention_placements_follow_model_conventions():
    pytest.importorskip("amstgcn_jax.attention")
    from amstgcn_jax.model import get_model

    x = _x(v=18, t=8)
    model = get_model(backbone="agcn", num_classes=3, layout="openpose",
                      attention=(("nonlocal", "convt", 3, 2), ("se", "convs", 1, 1)))
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
    params = variables["params"]
    assert {"attn_convt0", "attn_convt1"} <= set(params["block3"])
    assert "attn_convs0" in params["block1"]
    code = get_model(backbone="agcn", num_classes=3, layout="openpose", layer_indexing="code",
                     attention=(("nonlocal", "convs", 0, 1),))
    shapes = jax.eval_shape(lambda: code.init(jax.random.PRNGKey(0), x, train=False))
    assert "attn_convs0" in shapes["params"]["block0"]
    paper = get_model(backbone="agcn", variant="am_stgcn", num_classes=3, layout="openpose")
    shapes = jax.eval_shape(lambda: paper.init(jax.random.PRNGKey(0), x, train=False))
    assert {k for k in shapes["params"]["block3"] if k.startswith("attn")} == {
        "attn_convt0", "attn_convt1", "attn_convt2"}
    with pytest.raises(agcn_convert.ConversionError, match="attn_convt0"):
        agcn_convert.flax_to_torch(agcn_convert.template_variables(
            {"num_classes": 3, "layout": "openpose", "attention": (("nonlocal", "convt", 3, 1),)}))


# ---------------------------------------------------------------- conversion (synthetic)


def _synthetic_state_dict(config, seed=0):
    template = agcn_convert.template_variables(config)
    rng = np.random.default_rng(seed)
    filled = jax.tree.map(lambda a: rng.normal(size=a.shape).astype(np.float32), template)
    return filled, agcn_convert.flax_to_torch(filled)


def test_state_dict_keys_follow_upstream_layout():
    _, sd = _synthetic_state_dict({"num_classes": 60, "layout": "ntu-rgb+d"})
    assert len(sd) == 352 and sum(k.endswith("num_batches_tracked") for k in sd) == 26
    keys = list(sd)
    assert keys[:6] == ["data_bn.weight", "data_bn.bias", "data_bn.running_mean",
                        "data_bn.running_var", "data_bn.num_batches_tracked", "l1.gcn1.PA"]
    assert keys.index("l1.gcn1.down.0.weight") < keys.index("l1.gcn1.bn.weight")
    assert sd["l5.residual.conv.weight"].shape == (128, 64, 1, 1)
    assert sd["l8.gcn1.conv_a.2.weight"].shape == (64, 128, 1, 1)
    assert sd["l1.tcn1.conv.weight"].shape == (64, 64, 9, 1)
    assert sd["data_bn.weight"].shape == (150,) and sd["fc.weight"].shape == (60, 256)
    assert keys[-2:] == ["fc.weight", "fc.bias"]


def test_roundtrip_and_prefix_and_missing_num_batches_tracked():
    config = {"num_classes": 5, "layout": "openpose"}
    filled, sd = _synthetic_state_dict(config)
    assert agcn_convert.infer_config(sd) == {**config, "in_channels": 3}
    wrapped = {f"module.{k}": v for k, v in sd.items() if "num_batches_tracked" not in k}
    back = agcn_convert.torch_to_flax(wrapped)
    jax.tree.map(np.testing.assert_array_equal, back, filled)
    again = agcn_convert.flax_to_torch(back)
    assert list(again) == list(sd)
    for k in sd:
        np.testing.assert_array_equal(again[k], sd[k])


def test_conversion_errors_name_every_bad_key():
    _, sd = _synthetic_state_dict({"num_classes": 5, "layout": "openpose"})
    broken = dict(sd)
    del broken["l3.gcn1.conv_b.1.bias"]
    broken["l3.gcn1.extra.weight"] = np.zeros(3, np.float32)
    broken["l4.tcn1.conv.weight"] = np.zeros((64, 64, 5, 1), np.float32)
    with pytest.raises(agcn_convert.ConversionError) as err:
        agcn_convert.torch_to_flax(broken)
    msg = str(err.value)
    for key in ("l3.gcn1.conv_b.1.bias", "l3.gcn1.extra.weight", "l4.tcn1.conv.weight"):
        assert key in msg
    with pytest.raises(agcn_convert.ConversionError, match="pass layout"):
        agcn_convert.infer_config({**sd, "l1.gcn1.PA": np.zeros((3, 7, 7), np.float32)})
    with pytest.raises(agcn_convert.ConversionError, match="l1.gcn1.PA"):
        agcn_convert.infer_config({"fc.weight": sd["fc.weight"]})


def test_converted_model_runs_and_infers_input_width():
    config = {"num_classes": 4, "layout": "coco", "in_channels": 2}
    _, sd = _synthetic_state_dict(config)
    inferred = agcn_convert.infer_config(sd, layout="coco")
    assert inferred == config
    variables = agcn_convert.torch_to_flax(sd, inferred)
    model = AGCN(**inferred)
    logits, _ = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables,
                               _x(v=17, c=2))
    assert logits.shape == (N, 4)


def test_parameter_count_matches_upstream_formula():
    variables = agcn_convert.template_variables({"num_classes": 60, "layout": "ntu-rgb+d"})
    count = sum(p.size for p in jax.tree.leaves(variables["params"]))
    v, k = 25, 3
    total = 2 * 2 * v * 3 + 256 * 60 + 60  # data_bn (M=2) + fc
    for (c_out, stride, residual), c_in in zip(
        ((64, 1, 0), (64, 1, 1), (64, 1, 1), (64, 1, 1), (128, 2, 1), (128, 1, 1), (128, 1, 1),
         (256, 2, 1), (256, 1, 1), (256, 1, 1)),
        (3, 64, 64, 64, 64, 128, 128, 128, 256, 256),
    ):
        e = c_out // 4
        total += k * v * v + 2 * k * (c_in * e + e) + k * (c_in * c_out + c_out) + 2 * c_out
        total += (c_in * c_out + c_out + 2 * c_out) if c_in != c_out else 0
        total += 9 * c_out * c_out + c_out + 2 * c_out
        if residual and (c_in != c_out or stride > 1):
            total += c_in * c_out + c_out + 2 * c_out
    assert count == total


def test_library_never_imports_torch():
    code = ("import sys; import amstgcn_jax.agcn, amstgcn_jax.agcn_convert, "
            "amstgcn_jax.agcn_preprocess; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_adjacency_is_the_2s_agcn_spatial_graph():
    """graph/tools.py get_spatial_graph for NTU: identity, inward (parent->child), outward."""
    adj = graph.build_adjacency(graph.get_layout("ntu-rgb+d"), strategy="agcn")
    np.testing.assert_array_equal(adj[0], np.eye(25))
    assert adj[1, 1, 0] == 1.0  # joint 0 (spine base) receives from its parent 1 (spine middle)
    np.testing.assert_allclose(adj[1].sum(0), [0 if w == 20 else 1 for w in range(25)])
    assert adj[2, 0, 1] == 1.0 and adj[2, 4, 20] == 0.25  # 4 children of the spine shoulder


def test_cpu_formulations_match_the_plain_xla_ones():
    """The formulations AGCN picks on CPU (NVTC activations, the aggregation as one GEMM,
    FFT temporal convs, the BatchNorms' written-out backward, stored block outputs; 1x1 convs
    as GEMMs always) give the logits, every block's features, the gradients and the batch
    statistics of the plain XLA ones (NTVC, `lax.conv`, autodiff, fused outputs), a strided
    block included, and in eval mode (where "auto" picks NVTC) the same logits and features.
    (No attention block here: with these random weights its unscaled softmax amplifies float
    rounding ~100x.)"""
    x = _x(v=20, t=12)
    kw = dict(num_classes=5, layout="nw-ucla", blocks=TINY)
    fast = AGCN(tcn_impl="fft", bn_impl="custom", block_output="stored",
                activation_layout="NVTC", **kw)
    plain = AGCN(tcn_impl="conv", bn_impl="autodiff", block_output="fused",
                 activation_layout="NTVC", **kw)
    variables = _random_variables(plain, x, seed=3)

    def loss(model, variables):
        (logits, out), updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
        return jnp.sum(jnp.sin(logits)), (logits, out, updates["batch_stats"])

    results = {}
    for name, model in (("fast", fast), ("plain", plain)):
        fn = jax.jit(jax.value_and_grad(functools.partial(loss, model), has_aux=True))
        results[name] = (fn(variables), fn.lower(variables).compile().as_text())
    ((_, (logits, out, stats)), grads), hlo = results["fast"]
    ((_, (ref_logits, ref_out, ref_stats)), ref_grads), ref_hlo = results["plain"]
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-5, atol=1e-5)
    assert out.keys() == ref_out.keys() and "block2_gcn" in out
    for name in out:
        np.testing.assert_allclose(out[name], ref_out[name], rtol=1e-5, atol=1e-5, err_msg=name)
    for a, b in zip(jax.tree.leaves((stats, grads)), jax.tree.leaves((ref_stats, ref_grads))):
        # (atol: the biases before a BatchNorm have rounding-noise gradients, ~1e-10)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert " fft(" in hlo and " fft(" not in ref_hlo
    # one stored gather per graph-conv unit and per block
    assert hlo.count(" gather(") >= ref_hlo.count(" gather(") + 2 * len(TINY)
    assert " convolution(" not in hlo  # every conv is a GEMM or an FFT on this path
    (logits, out), (ref_logits, ref_out) = (
        jax.jit(functools.partial(model.apply, train=False))(variables, x)
        for model in (fast, plain))
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-5, atol=1e-5)
    for name in ref_out:
        np.testing.assert_allclose(out[name], ref_out[name], rtol=1e-5, atol=1e-5, err_msg=name)
    with pytest.raises(ValueError, match="block_output must be one of"):
        jax.eval_shape(lambda: AGCN(block_output="kept", **kw).init(jax.random.key(0), x))
    with pytest.raises(ValueError, match="activation_layout must be"):
        jax.eval_shape(lambda: AGCN(activation_layout="VNTC", **kw).init(jax.random.key(0), x))


def test_activation_layout_auto_is_nvtc_on_cpu_without_attention():
    """On CPU "auto" trains and infers on NVTC (the adaptive graph's GEMMs with fewer
    transposes around them) unless attention blocks are placed, which run on NTVC; an
    explicit NVTC with attention is refused rather than silently transposed."""
    x = _x(v=20, t=12)
    kw = dict(num_classes=5, layout="nw-ucla", blocks=TINY)

    def transposes(model, train=False):  # in the optimised program (unused features gone)
        variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
        fn = jax.jit(lambda v: model.apply(v, x, train=train, mutable=["batch_stats"])[0][0])
        return fn.lower(variables).compile().as_text().count(" transpose(")

    nvtc, ntvc = AGCN(activation_layout="NVTC", **kw), AGCN(activation_layout="NTVC", **kw)
    assert transposes(AGCN(**kw)) == transposes(nvtc) < transposes(ntvc)
    assert transposes(AGCN(**kw), train=True) == transposes(nvtc, train=True) < transposes(
        ntvc, train=True)
    attended = dict(kw, attention=(("nonlocal", "convt", 1, 1),))
    assert transposes(AGCN(**attended)) == transposes(AGCN(activation_layout="NTVC", **attended))
    with pytest.raises(ValueError, match="attention blocks run on NTVC"):
        jax.eval_shape(lambda: AGCN(activation_layout="NVTC", **attended).init(
            jax.random.key(0), x))
