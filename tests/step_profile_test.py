"""benchmarks/step_profile.py: variant specs and the HLO index that names profiled kernels."""

import re

import jax
import jax.numpy as jnp
import pytest

from benchmarks import step_profile


def test_variant_spec_parsing_and_types():
    cfg = step_profile.typed(step_profile.parse_spec("batch=8,frames=40,gcn_impl=kron+factored"))
    assert cfg["batch"] == 8 and cfg["frames"] == 40 and cfg["dropout"] is None
    assert cfg["gcn_impl"] == "kron+factored" and cfg["dataset"] == "ntu"
    with pytest.raises(SystemExit, match="unknown variant key"):
        step_profile.parse_spec("batchsize=8")


def test_hlo_index_describes_fusions_with_their_ops_and_source_module():
    def f(x, w):
        return jnp.sum(jax.nn.relu(x @ w) * 2.0, axis=0), jnp.tanh(x).T

    text = jax.jit(f).lower(jnp.ones((64, 32)), jnp.ones((32, 16))).compile().as_text()
    instrs, comps = step_profile.hlo_index(text)
    fusions = [n for n in instrs if "fusion" in n and instrs[n][0] == "fusion"]
    assert fusions, "no fusion parsed from the optimized HLO"
    described = [step_profile.describe(n, instrs, comps) for n in fusions]
    assert all(d.startswith("fusion") and " | " in d for d in described)
    # The fused computation's ops are listed, e.g. "tanhx1" or "maximumx1".
    assert any(re.search(r"(tanh|maximum|multiply)x\d", d) for d in described)
    dots = [n for n in instrs if instrs[n][0] in ("dot", "custom-call")]
    assert dots and "gemm" in step_profile.category(dots[0], step_profile.describe(
        dots[0], instrs, comps))
    assert step_profile.describe("no_such_op", instrs, comps) == ""


def test_short_source_names_module_path_and_phase():
    name = "jit(train_step)/transpose(jvp(AMSTGCN))/block3/gcn/ntvkc,kvw->ntwc/transpose"
    assert step_profile._short_source(name) == "bwd block3/gcn .. transpose"
    assert step_profile._short_source("jit(train_step)/jvp(AMSTGCN)/block1/Dropout_0/add") == (
        "fwd block1/Dropout_0 .. add")
    assert step_profile._short_source("jit(train_step)/add").startswith("step")


@pytest.mark.slow  # a benchmark tool's full run; its helpers are tested in the default suite
def test_infer_mode_times_the_eval_forward_and_counts_one_forward_of_flops():
    cfg = step_profile.typed(step_profile.parse_spec(
        "batch=2,frames=12,dtype=float32,persons=1,mode=infer"))
    infer = step_profile.build_variant("i", cfg)
    forward = step_profile.harness.forward_flops_per_clip(25, 12, 1, 60, {}) / 1e9
    assert infer["info"]["model_gflop_infer_per_clip"] == pytest.approx(forward)
    assert "model_gflop_train_per_clip" not in infer["info"]
    infer["run"](2)  # runs again after the warm-up calls, without a train state
    # The eval forward has no gradient: its optimized HLO holds no backward ops.
    assert "transpose(jvp(" not in infer["hlo"] and "jvp(" not in infer["hlo"]
    with pytest.raises(SystemExit, match="mode"):
        step_profile.typed(step_profile.parse_spec("mode=eval"))


def test_device_defaults_to_the_platform_jax_will_use(monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    assert step_profile.parse_args([]).device == "cpu"
    monkeypatch.setenv("JAX_PLATFORMS", "cuda,cpu")
    assert step_profile.parse_args([]).device == "gpu"
    assert step_profile.parse_args(["--device", "cpu"]).device == "cpu"
    monkeypatch.delenv("JAX_PLATFORMS")
    monkeypatch.setattr(step_profile.shutil, "which", lambda name: None)
    monkeypatch.setattr(step_profile.Path, "exists", lambda self: False)
    assert step_profile.parse_args([]).device == "cpu"
    monkeypatch.setattr(step_profile.shutil, "which", lambda name: "/usr/bin/" + name)
    assert step_profile.parse_args([]).device == "gpu"


def _dot_flops(jaxpr) -> int:
    """2·MACs of every dot_general in a jaxpr, sub-jaxprs (jit, custom_vjp, ...) included."""
    import math

    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(
                lhs[d] for d in contract)
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    total += _dot_flops(inner)
    return total


def test_agcn_backbone_and_its_model_flop_count():
    """`backbone=agcn` builds 2s-AGCN, and `agcn_forward_flops_per_clip` counts exactly the
    multiply-adds of its eval forward's GEMMs (temporal convs as one GEMM each), a ConvT
    non-local block included. (Traced on shapes only: nothing is compiled.)"""
    import numpy as np

    from amstgcn_jax.agcn import AGCN

    cfg = step_profile.typed(step_profile.parse_spec(
        "backbone=agcn,model=convt_l2x1,dataset=kinetics,batch=1,frames=12,dtype=float32,"
        "persons=2,mode=infer,tcn_impl=matmul"))
    harness = step_profile.harness
    model, kwargs, v, num_classes = step_profile.variant_model(cfg)
    assert isinstance(model, AGCN) and model.tcn_impl == "matmul" and model.dropout == 0.0
    x = jax.ShapeDtypeStruct((1, 2, 12, v, 3), np.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    jaxpr = jax.make_jaxpr(lambda var, x: model.apply(var, x, train=False)[0])(variables, x)
    attention = harness.attention_blocks(kwargs["attention"], strict=False)
    assert attention  # the placement reached the model
    expected = harness.agcn_forward_flops_per_clip(v, 12, 2, num_classes, attention)
    assert _dot_flops(jaxpr.jaxpr) == expected
    with pytest.raises(SystemExit, match="backbone"):
        step_profile.typed(step_profile.parse_spec("backbone=resnet"))


def test_host_timeline_counts_concurrency_and_gives_each_gap_to_the_op_before_it():
    # a: 0-10, b: 5-20 (overlaps a), gap 20-50 after b, c: 50-60, gap 60-70 after c, d: 70-80.
    events = [(0, 10, "a"), (5, 20, "b"), (50, 60, "c"), (70, 80, "d")]
    running, idle_after = step_profile.host_timeline(events)
    assert running[2] == 5 and running[1] == 5 + 10 + 10 + 10 and running[0] == 30 + 10
    assert idle_after == {"b": 30, "c": 10}
    # A gap belongs to the op that finished last, not the one that started last.
    running, idle_after = step_profile.host_timeline([(0, 30, "long"), (5, 10, "short"),
                                                      (40, 41, "next")])
    assert idle_after == {"long": 10} and running[2] == 5
    # An asynchronous op (an Eigen dot whose work goes on untraced) owns the gaps of its busy
    # period, even when other thunks finish after it; the next busy period starts afresh.
    # Gaps shorter than `settle_ns` (the executor's own) do not end that ownership.
    events = [(0, 2, "dot"), (3, 6, "dus"), (10, 12, "add"), (20, 21, "mul")]
    running, idle_after = step_profile.host_timeline(events, lambda op: op == "dot", settle_ns=2)
    assert idle_after == {"dot": 1 + 4, "add": 8} and running[0] == 13
