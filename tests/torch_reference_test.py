"""The benchmark's PyTorch ST-GCN (benchmarks/torch_stgcn.py) reproduces the upstream reference.

Loading the ../shared/parity fixture weights strictly and running the fixture inputs must give
the stored upstream logits, last-block features and per-block means: this proves the
side-by-side benchmark times the same architecture as the reference (and as our Flax model,
which tests/parity_test.py checks against the same fixtures).
"""

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import torch_stgcn  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.parity]

CASES = {
    "kinetics": dict(num_classes=400, dropout=0.0),
    "ntu": dict(num_classes=60, dropout=0.5),
}


def _load(shared_dir, name):
    fixture = shared_dir / "parity" / f"stgcn_{name}_seed0"
    state = torch.load(f"{fixture}.pt", map_location="cpu", weights_only=True)
    ref = dict(np.load(f"{fixture}.npz"))
    model = torch_stgcn.STGCN(state["A"].numpy(), **CASES[name])
    model.load_state_dict(state, strict=True)
    return model.eval(), ref


@pytest.mark.parametrize("name", sorted(CASES))
def test_torch_model_matches_upstream_fixture(shared_dir, name):
    model, ref = _load(shared_dir, name)
    x = torch.from_numpy(ref["x"])
    means = {}
    hooks = [
        blk.register_forward_hook(lambda mod, inp, out, i=i: means.__setitem__(i, out.mean(2)))
        for i, blk in enumerate(model.st_gcn_networks)
    ]
    with torch.no_grad():
        logits = model(x).numpy()
        feat = model.features(x)
    for h in hooks:
        h.remove()
    n, m = ref["x"].shape[0], ref["x"].shape[-1]
    feature = feat.view(n, m, *feat.shape[1:]).permute(0, 2, 3, 4, 1).numpy()
    np.testing.assert_allclose(logits, ref["logits"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(feature, ref["feature"], rtol=1e-5, atol=1e-5)
    for i in range(10):
        np.testing.assert_allclose(means[i].numpy(), ref[f"block{i}_tmean"], rtol=1e-5, atol=1e-5)


def test_state_dict_keys_match_upstream(shared_dir):
    state = torch.load(shared_dir / "parity" / "stgcn_ntu_seed0.pt", weights_only=True)
    model = torch_stgcn.STGCN(state["A"].numpy(), num_classes=60)
    assert list(model.state_dict()) == list(state)


def test_attention_placements_add_blocks_and_start_as_identity():
    adj = np.stack([np.eye(18, dtype=np.float32)] * 3)
    torch.manual_seed(0)
    base = torch_stgcn.STGCN(adj, num_classes=5)
    attn = torch_stgcn.STGCN(adj, num_classes=5, attention={2: [("convs", {}), ("convt", {})]})
    missing, unexpected = attn.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all("attn_" in k for k in missing)
    x = torch.randn(2, 3, 16, 18, 2)
    with torch.no_grad():
        base.eval(), attn.eval()
        np.testing.assert_allclose(attn(x).numpy(), base(x).numpy(), rtol=1e-6, atol=1e-6)
        attn.st_gcn_networks[2].attn_convt[0].bn.weight.fill_(1.0)
        assert not np.allclose(attn(x).numpy(), base(x).numpy(), atol=1e-4)


@pytest.mark.parametrize("variant", ["convs_l2x1_convt_l2x2", "convt_l3x3"])
def test_torch_am_stgcn_matches_flax_model_with_converted_weights(variant):
    """Same weights (amstgcn_jax.convert.flax_to_torch) -> same logits, attention included."""
    import jax

    from amstgcn_jax import convert
    from amstgcn_jax import model as model_lib
    from benchmarks import train_step_benchmark as bench

    layout = "openpose"
    flax_model = model_lib.get_model(num_classes=7, layout=layout, variant=variant)
    x_NCTVM = np.random.default_rng(0).standard_normal((2, 3, 13, 18, 2)).astype(np.float32)
    x_NMTVC = x_NCTVM.transpose(0, 4, 2, 3, 1)
    variables = flax_model.init(jax.random.PRNGKey(0), x_NMTVC, train=False)
    variables = bench.randomize_variables(dict(variables), seed=3)
    logits_jax, _ = flax_model.apply(variables, x_NMTVC, train=False)

    state = convert.flax_to_torch(jax.device_get(variables), {"layout": layout})
    placements = model_lib.normalize_attention(model_lib.VARIANTS[variant]["attention"])
    model = torch_stgcn.STGCN(state["A"], num_classes=7,
                              attention=bench.attention_blocks(placements))
    torch_stgcn.load_numpy_state_dict(model, state, strict=True)
    with torch.no_grad():
        logits_torch = model.eval()(torch.from_numpy(x_NCTVM)).numpy()
    assert np.abs(logits_torch).max() > 0.1  # the check is not vacuous
    np.testing.assert_allclose(np.asarray(logits_jax), logits_torch, rtol=1e-5, atol=1e-5)
