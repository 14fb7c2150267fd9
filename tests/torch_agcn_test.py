"""The benchmark's PyTorch 2s-AGCN (benchmarks/torch_agcn.py) reproduces the upstream reference.

Loading the ../shared/parity-agcn fixture weights strictly and running the fixture inputs must
give the stored upstream logits, last-block features and per-block means, so the side-by-side
benchmark (`train_step_benchmark.py --backbone agcn`) times the reference architecture; our Flax
model's weights must load into it through `agcn_convert.flax_to_torch` and give its logits.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import torch_agcn  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.parity]

CLASSES = {"kinetics": 400, "ntu": 60}


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_torch_agcn_matches_upstream_fixture(shared_dir, name):
    fixture = shared_dir / "parity-agcn" / f"agcn_{name}_seed0"
    state = torch.load(f"{fixture}.pt", map_location="cpu", weights_only=True)
    ref = dict(np.load(f"{fixture}.npz"))
    model = torch_agcn.AGCN(ref["A"], num_classes=CLASSES[name]).eval()
    model.load_state_dict(state, strict=True)
    means, gcn_means = {}, {}
    hooks = []
    for i in range(10):
        unit = getattr(model, f"l{i + 1}")
        hooks.append(unit.register_forward_hook(
            lambda mod, inp, out, i=i: means.__setitem__(i, out.mean(2))))
        hooks.append(unit.gcn1.register_forward_hook(
            lambda mod, inp, out, i=i: gcn_means.__setitem__(i, out.mean(2))))
    feature = {}
    hooks.append(model.l10.register_forward_hook(
        lambda mod, inp, out: feature.__setitem__("x", out)))
    with torch.no_grad():
        logits = model(torch.from_numpy(ref["x"])).numpy()
    for h in hooks:
        h.remove()
    # the fixtures' tolerances (parity-agcn/README.md): 1e-5 for the logits, 1e-4 for the
    # features and intermediates (thread count alone moves the NTU feature by 7.6e-6)
    np.testing.assert_allclose(logits, ref["logits"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(feature["x"].numpy(), ref["feature"], rtol=1e-4, atol=1e-4)
    for i in range(10):
        np.testing.assert_allclose(means[i].numpy(), ref[f"block{i}_tmean"], rtol=1e-4,
                                   atol=1e-4, err_msg=f"block{i}")
        np.testing.assert_allclose(gcn_means[i].numpy(), ref[f"block{i}_gcn_tmean"], rtol=1e-4,
                                   atol=1e-4, err_msg=f"block{i}_gcn")


def test_flax_weights_load_strictly_and_give_the_flax_logits():
    """Random Flax AGCN variables -> `agcn_convert.flax_to_torch` -> this model, strictly:
    the same eval logits (what the benchmark's `logits_max_abs_diff` reports)."""
    import jax

    from amstgcn_jax import agcn_convert, graph
    from amstgcn_jax.agcn import AGCN
    from benchmarks import train_step_benchmark as harness

    rs = np.random.default_rng(0)
    x_NCTVM = rs.standard_normal((2, 3, 16, 18, 2)).astype(np.float32)
    model = AGCN(num_classes=7, layout="openpose")
    x_NMTVC = x_NCTVM.transpose(0, 4, 2, 3, 1)
    variables = jax.jit(lambda r: model.init(r, x_NMTVC[:1], train=False))(jax.random.key(0))
    variables = harness.randomize_variables(dict(variables), 0)
    logits, _ = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x_NMTVC)
    state = agcn_convert.flax_to_torch(jax.device_get(variables))
    adj = graph.build_adjacency(graph.get_layout("openpose"), strategy="agcn")
    torch_model = torch_agcn.AGCN(adj, num_classes=7).eval()
    torch_model.load_state_dict({k: torch.as_tensor(np.array(v)) for k, v in state.items()},
                                strict=True)
    with torch.no_grad():
        ref = torch_model(torch.from_numpy(x_NCTVM)).numpy()
    np.testing.assert_allclose(np.asarray(logits), ref, rtol=1e-5, atol=1e-5)


def test_harness_compares_the_two_agcn_models(tmp_path):
    """`train_step_benchmark.py --backbone agcn` times our 2s-AGCN against this one with the
    same weights: same eval logits, same first train-step loss (no dropout), both timed."""
    import json
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, "benchmarks/train_step_benchmark.py", "--backbone", "agcn",
         "--dataset", "kinetics", "--frames", "8", "--batch", "2", "--iters", "1",
         "--threads", "2"], cwd=repo, capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    last = json.loads(run.stdout.strip().splitlines()[-1])
    assert last["config"]["backbone"] == "agcn" and "torch_error" not in last
    assert last["logits_max_abs_diff"] < 1e-4 * max(1.0, last["logits_max_abs"])
    assert abs(last["jax"]["first_step_loss"] - last["torch"]["first_step_loss"]) < 1e-4
    assert set(last["ratio_jax_over_torch"]) == {"train", "infer"}
    assert last["jax"]["model_kwargs"]["backbone"] == "agcn"
