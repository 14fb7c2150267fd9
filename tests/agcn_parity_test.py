"""2s-AGCN numerical parity against upstream PyTorch fixtures (../shared/parity-agcn/README.md).

Every `<name>.pt` / `<name>.npz` pair in `$AMSTGCN_PARITY_AGCN_DIR` (default ../shared/parity-agcn)
is loaded through `agcn_convert` and compared array by array: logits and pooled at 1e-5,
everything else at 1e-4 (float32, highest matmul precision; see the fixture README for why).
"""

import os
from pathlib import Path

import jax
import numpy as np
import pytest

from amstgcn_jax import agcn_convert, graph
from amstgcn_jax.agcn import AGCN

pytestmark = pytest.mark.parity

_ENV = "AMSTGCN_PARITY_AGCN_DIR"
_SHARED = Path(__file__).resolve().parents[1].parent / "shared"
_DEFAULT_DIR = _SHARED / "parity-agcn"
_TIGHT = ("logits", "pooled")  # rtol = atol = 1e-5


def _parity_dir():
    """(directory, reason to skip or None)."""
    if os.environ.get(_ENV):
        return Path(os.environ[_ENV]), None
    if not _SHARED.is_dir():
        return None, f"../shared is absent ({_SHARED}) and ${_ENV} is unset"
    return _DEFAULT_DIR, None


def _pairs():
    directory, _ = _parity_dir()
    if directory is None or not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.pt") if p.with_suffix(".npz").is_file())


def test_parity_dir_has_pairs():
    directory, skip = _parity_dir()
    if skip:
        pytest.skip(skip)
    assert directory.is_dir(), f"{_ENV} / default parity dir {directory} does not exist"
    assert _pairs(), f"{directory} holds no <name>.pt / <name>.npz pairs"


def _load_state_dict(path):
    try:
        from amstgcn_jax import torch_pickle
    except ImportError:  # loader not available: fall back to torch for the test only
        torch = pytest.importorskip("torch")
        return {k: v.numpy() for k, v in torch.load(path, weights_only=True).items()}
    return torch_pickle.load_state_dict(path)


def _layout_of(adj_KVV):
    """The built-in layout whose 2s-AGCN graph is the fixture's `A` (checkpoints do not hold A)."""
    names = [name for name, layout in graph.LAYOUTS.items()
             if layout.num_nodes == adj_KVV.shape[-1]
             and np.array_equal(graph.build_adjacency(layout, strategy="agcn"), adj_KVV)]
    assert names, f"no built-in layout has the fixture's graph A {adj_KVV.shape}"
    return names[0]


_CACHE = {}


def _run(name):
    if name not in _CACHE:
        directory, _ = _parity_dir()
        sd = _load_state_dict(directory / f"{name}.pt")
        ref = dict(np.load(directory / f"{name}.npz"))
        config = agcn_convert.infer_config(sd, layout=_layout_of(ref["A"]))
        variables = agcn_convert.torch_to_flax(sd, config)
        x_NMTVC = np.transpose(ref["x"], (0, 4, 2, 3, 1))
        apply = jax.jit(lambda v, x: AGCN(**config).apply(v, x, train=False))
        with jax.default_matmul_precision("highest"):
            logits_NL, out = apply(variables, x_NMTVC)
        out = jax.tree.map(np.asarray, out)
        out["logits"] = np.asarray(logits_NL)
        _CACHE[name] = (sd, ref, config, variables, out)
    return _CACHE[name]


def _to_reference_layout(out, ref):
    """Our channels-last outputs in the fixture's upstream layouts."""
    n, c, t, v, m = ref["x"].shape
    got = {
        "logits": out["logits"],
        "pooled": out["pooled"],
        # (N*M, T, V, C) -> (N, M*V*C, T), channel m*V*C + v*C + c
        "data_bn_out": out["data_bn_out"].reshape(n, m, t, v, c).transpose(0, 1, 3, 4, 2)
        .reshape(n, m * v * c, t),
    }
    feature = out["feature"]  # (N, M, T', V, C) -> (N*M, C, T', V)
    got["feature"] = feature.reshape(n * m, *feature.shape[2:]).transpose(0, 3, 1, 2)
    for i in range(10):
        # (N*M, T, V, C) -> time mean (N*M, C, V)
        got[f"block{i}_tmean"] = out[f"block{i}"].mean(axis=1).transpose(0, 2, 1)
        got[f"block{i}_gcn_tmean"] = out[f"block{i}_gcn"].mean(axis=1).transpose(0, 2, 1)
        got[f"block{i}_attn"] = out[f"block{i}_attn"]  # (N*M, K, V, V), row n*M + m
    return got


@pytest.mark.parametrize("name", _pairs())
def test_agcn_matches_upstream(name):
    _, ref, _, _, out = _run(name)
    got = _to_reference_layout(out, ref)
    compared, failures = [], []
    for key in ref:
        if key in ("x", "A"):
            continue
        assert key in got, f"{name}: fixture array {key!r} has no counterpart in our outputs"
        tol = 1e-5 if key in _TIGHT else 1e-4
        assert got[key].shape == ref[key].shape, f"{name}/{key}: {got[key].shape}"
        try:
            np.testing.assert_allclose(got[key], ref[key], rtol=tol, atol=tol,
                                       err_msg=f"{name}/{key}")
        except AssertionError as e:
            failures.append(str(e))
        compared.append(key)
    assert not failures, "\n".join(failures)
    assert {"logits", "pooled", "feature", "data_bn_out", "block0_attn"} <= set(compared)
    assert np.array_equal(got["logits"].argmax(-1), ref["logits"].argmax(-1))


@pytest.mark.parametrize("name", _pairs())
def test_adjacency_matches_fixture(name):
    """The graph rebuilt from the checkpoint alone (V -> upstream Graph class) is the fixture's."""
    sd, ref, _, _, _ = _run(name)
    layout = agcn_convert.infer_config(sd)["layout"]
    adj_KVV = graph.build_adjacency(graph.get_layout(layout), strategy="agcn")
    np.testing.assert_array_equal(adj_KVV, ref["A"])


@pytest.mark.parametrize("name", _pairs())
def test_roundtrip_torch_flax_torch(name):
    sd, _, _, variables, _ = _run(name)
    back = agcn_convert.flax_to_torch(variables)
    assert list(back) == list(sd), "exported keys or their order differ from upstream"
    for key, value in sd.items():
        assert back[key].shape == value.shape and back[key].dtype == value.dtype, key
        np.testing.assert_array_equal(back[key], value, err_msg=key)


@pytest.mark.parametrize("name", _pairs())
def test_parameter_count_equals_upstream(name):
    sd, _, _, variables, _ = _run(name)
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    upstream = sum(v.size for k, v in sd.items() if not k.endswith(buffers))
    ours = sum(p.size for p in jax.tree.leaves(variables["params"]))
    assert ours == upstream


@pytest.mark.torch
@pytest.mark.parametrize("name", _pairs()[:1])
def test_exported_file_loads_in_torch(name, tmp_path):
    """flax -> torch_pickle.save_state_dict -> torch.load(weights_only=True) gives upstream's
    dict."""
    torch = pytest.importorskip("torch")
    from amstgcn_jax import torch_pickle

    sd, _, _, variables, _ = _run(name)
    path = tmp_path / "export.pt"
    torch_pickle.save_state_dict(agcn_convert.flax_to_torch(variables), path)
    loaded = torch.load(path, weights_only=True)
    assert list(loaded) == list(sd)
    for key, value in sd.items():
        np.testing.assert_array_equal(loaded[key].numpy(), value, err_msg=key)
