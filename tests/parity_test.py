"""Numerical parity with the unmodified upstream ST-GCN (yysijie/st-gcn @ 221c0e15).

Every `<name>.pt` in `$AMSTGCN_PARITY_DIR` (default ../shared/parity) with a matching `<name>.npz`
is loaded through our torch-free loader and converter; the npz input `x` is run and `logits`,
`feature`, `data_bn_out` and every `block{i}_tmean` must agree at rtol = atol = 1e-5 (float32,
highest matmul precision). A `<name>_legacy.pt` (PyTorch's pre-1.6 container) without its own
npz is paired with `<name>.npz`: it holds the same tensors. The directory must hold at least one
pair, else the run fails; only a missing ../shared (with the variable unset) skips.
"""

import os
from pathlib import Path

import jax
import numpy as np
import pytest

from amstgcn_jax import convert, torch_pickle
from amstgcn_jax.model import get_model

pytestmark = pytest.mark.parity

_ENV = "AMSTGCN_PARITY_DIR"
_SHARED = Path(__file__).resolve().parents[1].parent / "shared"
_TOL = dict(rtol=1e-5, atol=1e-5)


def _parity_dir():
    """(directory, skip reason or None)."""
    if os.environ.get(_ENV):
        return Path(os.environ[_ENV]), None
    if not _SHARED.is_dir():
        return None, f"../shared is absent ({_SHARED}) and ${_ENV} is unset"
    return _SHARED / "parity", None


def _npz_for(pt: Path) -> Path | None:
    for stem in (pt.stem, pt.stem.removesuffix("_legacy")):
        if pt.with_name(stem + ".npz").is_file():
            return pt.with_name(stem + ".npz")
    return None


def _pairs() -> list[tuple[str, str]]:
    directory, _ = _parity_dir()
    if directory is None or not directory.is_dir():
        return []
    return [(pt.name, npz.name) for pt in sorted(directory.glob("*.pt"))
            if (npz := _npz_for(pt)) is not None]


def test_parity_dir_has_pairs():
    directory, skip = _parity_dir()
    if skip:
        pytest.skip(skip)
    assert directory.is_dir(), f"${_ENV} / default parity dir {directory} does not exist"
    assert _pairs(), f"{directory} holds no <name>.pt / <name>.npz pairs"


_CACHE = {}


def _run(pt_name: str, npz_name: str):
    key = (pt_name, npz_name)
    if key not in _CACHE:
        directory, _ = _parity_dir()
        sd = torch_pickle.load_state_dict(directory / pt_name)
        variables, config = convert.torch_to_flax(sd)
        ref = dict(np.load(directory / npz_name))
        model = get_model(**config)
        x_NMTVC = np.transpose(ref["x"], (0, 4, 2, 3, 1))
        with jax.default_matmul_precision("highest"):
            logits_NL, out = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables,
                                                                                   x_NMTVC)
        out = jax.tree.map(np.asarray, out)
        out["logits"] = np.asarray(logits_NL)
        _CACHE[key] = (sd, config, variables, ref, out)
    return _CACHE[key]


def _to_reference_layout(out: dict, ref: dict) -> dict:
    """Our channels-last outputs in the fixture's upstream layouts."""
    n, c, t, v, m = ref["x"].shape
    got = {"logits": out["logits"],
           "feature": out["feature"].transpose(0, 4, 2, 3, 1)}  # (N,M,T,V,C) -> (N,C,T,V,M)
    bn = out["data_bn_out"]  # (N*M, T, V, C)
    if ref["data_bn_out"].shape[0] == n * m:  # (N*M, V*C, T), channel v*C + c
        got["data_bn_out"] = bn.transpose(0, 2, 3, 1).reshape(n * m, v * c, t)
    else:  # (N, M*V*C, T), channel m*V*C + v*C + c
        got["data_bn_out"] = bn.reshape(n, m, t, v, c).transpose(0, 1, 3, 4, 2).reshape(
            n, m * v * c, t)
    for name in out:
        if name.startswith("block") and name[5:].isdigit():
            got[f"{name}_tmean"] = out[name].mean(axis=1).transpose(0, 2, 1)  # (N*M, C, V)
    return got


@pytest.mark.parametrize("pt_name,npz_name", _pairs())
def test_stgcn_matches_upstream(pt_name, npz_name):
    _, _, _, ref, out = _run(pt_name, npz_name)
    got = _to_reference_layout(out, ref)
    names = ["logits", "feature", "data_bn_out"] + sorted(k for k in ref if k.endswith("_tmean"))
    assert len(names) > 3, f"{npz_name} has no block{{i}}_tmean arrays"
    for name in names:
        assert got[name].shape == ref[name].shape, (name, got[name].shape, ref[name].shape)
        np.testing.assert_allclose(got[name], ref[name], err_msg=f"{pt_name}: {name}", **_TOL)
    np.testing.assert_array_equal(got["logits"].argmax(-1), ref["logits"].argmax(-1))


@pytest.mark.parametrize("pt_name,npz_name", _pairs())
def test_adjacency_in_checkpoint_matches_graph(pt_name, npz_name):
    sd, config, _, ref, _ = _run(pt_name, npz_name)
    a = convert.clean_state_dict(sd)["A"]
    np.testing.assert_array_equal(a, ref["A"])
    a_ours = convert.flax_to_torch({}, config)["A"]
    np.testing.assert_array_equal(a_ours, a)


@pytest.mark.parametrize("pt_name,npz_name", _pairs())
def test_roundtrip_torch_flax_torch(pt_name, npz_name):
    sd, config, variables, _, _ = _run(pt_name, npz_name)
    sd = convert.clean_state_dict(sd)
    back = convert.flax_to_torch(variables, config)
    assert sorted(back) == sorted(sd)
    for key in sd:
        np.testing.assert_array_equal(back[key], sd[key], err_msg=key)


@pytest.mark.parametrize("pt_name,npz_name", _pairs()[:1])
def test_cli_conversion_gives_the_same_logits(tmp_path, pt_name, npz_name):
    directory, _ = _parity_dir()
    convert.main([str(directory / pt_name), str(tmp_path / "converted")])
    variables, config = convert.load_converted(tmp_path / "converted")
    _, _, expected_vars, ref, out = _run(pt_name, npz_name)
    jax.tree.map(np.testing.assert_array_equal, dict(variables), expected_vars)
    model = get_model(**config)
    x_NMTVC = np.transpose(ref["x"], (0, 4, 2, 3, 1))
    with jax.default_matmul_precision("highest"):
        logits_NL, _ = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x_NMTVC)
    np.testing.assert_allclose(np.asarray(logits_NL), ref["logits"], **_TOL)
