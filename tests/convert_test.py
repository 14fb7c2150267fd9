"""torch state_dict <-> Flax conversion on synthetic state_dicts (no torch, no ../shared)."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from amstgcn_jax import convert, graph, torch_pickle
from amstgcn_jax.model import get_model

TESTDATA = Path(__file__).parent / "testdata"


def _manifest_state_dict(seed=0):
    """Random tensors with the exact keys/shapes/dtypes of an upstream NTU-60 checkpoint."""
    rng = np.random.default_rng(seed)
    sd = {}
    for line in (TESTDATA / "stgcn_ntu60_state_dict_keys.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        key, shape, dtype = line.split("\t")
        shape = tuple(int(s) for s in shape.split(",")) if shape else ()
        if key == "A":
            sd[key] = graph.build_adjacency("ntu-rgb+d")
        elif dtype == "int64":
            sd[key] = np.zeros(shape, np.int64)
        elif key.endswith("running_var"):
            sd[key] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        else:
            sd[key] = rng.normal(size=shape).astype(np.float32)
    return sd


def test_manifest_round_trip_and_inferred_config():
    sd = _manifest_state_dict()
    variables, config = convert.torch_to_flax(sd)
    assert config == dict(backbone="stgcn", num_classes=60, in_channels=3, strategy="spatial",
                          edge_importance=True, layout="ntu-rgb+d", data_bn="VC", attention=())
    back = convert.flax_to_torch(variables, config, num_batches_tracked=True)
    assert sorted(back) == sorted(sd)
    for key, value in sd.items():
        np.testing.assert_array_equal(back[key], value, err_msg=key)
    # Hooks: 1x1 conv (O, I, 1, 1) -> (I, O); temporal (O, I, 9, 1) -> HWIO.
    np.testing.assert_array_equal(variables["params"]["block4"]["gcn"]["kernel"],
                                  sd["st_gcn_networks.4.gcn.conv.weight"][:, :, 0, 0].T)
    np.testing.assert_array_equal(variables["params"]["block4"]["tcn_conv"]["kernel"],
                                  sd["st_gcn_networks.4.tcn.2.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(variables["batch_stats"]["block7"]["residual_bn"]["var"],
                                  sd["st_gcn_networks.7.residual.1.running_var"])
    np.testing.assert_array_equal(variables["params"]["head"]["kernel"],
                                  sd["fcn.weight"][:, :, 0, 0].T)


def test_module_prefix_and_num_batches_tracked_are_ignored():
    sd = _manifest_state_dict()
    wrapped = {f"module.backbone.module.{k}": v for k, v in sd.items()
               if not k.endswith("num_batches_tracked")}
    v1, _ = convert.torch_to_flax(sd)
    v2, _ = convert.torch_to_flax(wrapped)
    jax.tree.map(np.testing.assert_array_equal, v1, v2)


def test_missing_unused_and_misshaped_keys_are_all_named():
    sd = _manifest_state_dict()
    del sd["st_gcn_networks.3.tcn.2.bias"]
    del sd["data_bn.running_var"]
    sd["st_gcn_networks.2.extra.weight"] = np.zeros(3, np.float32)
    sd["st_gcn_networks.5.tcn.0.bias"] = np.zeros(7, np.float32)
    with pytest.raises(ValueError) as err:
        convert.torch_to_flax(sd)
    msg = str(err.value)
    for name in ("st_gcn_networks.3.tcn.2.bias", "data_bn.running_var",
                 "st_gcn_networks.2.extra.weight", "st_gcn_networks.5.tcn.0.bias"):
        assert name in msg


def test_wrong_adjacency_is_rejected():
    sd = _manifest_state_dict()
    sd["A"] = graph.build_adjacency("ntu-pyskl")
    with pytest.raises(ValueError, match="graph buffer 'A' differs"):
        convert.torch_to_flax(sd, {"layout": "ntu-rgb+d"})
    # Without a layout the converter picks the built-in layout whose graph matches A.
    _, config = convert.torch_to_flax(sd)
    assert config["layout"] == "ntu-pyskl"


def test_checkpoint_without_edge_importance_and_a_buffer():
    model = get_model(num_classes=11, layout="coco", edge_importance=False)
    variables = convert.template_variables(
        {"num_classes": 11, "layout": "coco", "edge_importance": False})
    variables = jax.tree.map(lambda s: np.full(s.shape, 0.5, s.dtype), variables)
    sd = convert.flax_to_torch(variables)
    assert "A" not in sd and not any(k.startswith("edge_importance") for k in sd)
    back, config = convert.torch_to_flax(sd)
    assert config["layout"] == "coco" and config["num_classes"] == 11
    assert config["edge_importance"] is False
    assert isinstance(get_model(**config), type(model))
    jax.tree.map(np.testing.assert_array_equal, back, variables)


def test_attention_round_trip_infers_placements():
    config = {"variant": "convs_l2x1_convt_l2x2", "num_classes": 5, "layout": "nw-ucla"}
    template = convert.template_variables(config)
    leaves, tree = jax.tree.flatten(template)
    rng = np.random.default_rng(1)
    variables = jax.tree.unflatten(tree, [rng.normal(size=s.shape).astype(np.float32)
                                          for s in leaves])
    sd = convert.flax_to_torch(variables, dict(config, strategy="spatial"))
    assert "st_gcn_networks.2.attn_convt.1.theta.weight" in sd
    assert sd["st_gcn_networks.2.attn_convs.0.out.weight"].ndim == 4
    back, inferred = convert.torch_to_flax(sd)
    assert inferred["attention"] == (("nonlocal", "convs", 2, 1, ()),
                                     ("nonlocal", "convt", 2, 2, ()))
    assert inferred["layer_indexing"] == "code"
    jax.tree.map(np.testing.assert_array_equal, back, variables)


def test_cli_writes_orbax_dir_and_config(tmp_path):
    sd = _manifest_state_dict(seed=3)
    pt = tmp_path / "ckpt.pt"
    torch_pickle.save_state_dict({f"module.{k}": v for k, v in sd.items()}, pt)
    convert.main([str(pt), str(tmp_path / "out")])
    config = json.loads((tmp_path / "out" / "model_config.json").read_text())
    assert config["num_classes"] == 60 and config["layout"] == "ntu-rgb+d"
    variables, config2 = convert.load_converted(tmp_path / "out")
    assert config2 == config
    expected, _ = convert.torch_to_flax(sd)
    jax.tree.map(np.testing.assert_array_equal, dict(variables), expected)
    x = np.zeros((1, 2, 9, 25, 3), np.float32)
    logits, _ = get_model(**convert._from_json(config)).apply(variables, x)
    assert logits.shape == (1, 60)


def test_not_an_stgcn_state_dict():
    with pytest.raises(ValueError, match="not an ST-GCN state_dict"):
        convert.torch_to_flax({"fc.weight": np.zeros((3, 4), np.float32)})


@pytest.mark.parametrize("layout,strategy,max_hop,dilation", [
    ("openpose", "uniform", 2, 1), ("ntu-rgb+d", "distance", 2, 1), ("ntu-pyskl", "spatial", 2, 1),
    ("coco", "spatial", 2, 2), ("nw-ucla", "spatial", 1, 1)])
def test_graph_config_is_inferred_from_the_a_buffer(layout, strategy, max_hop, dilation):
    config = dict(num_classes=7, layout=layout, strategy=strategy, max_hop=max_hop,
                  dilation=dilation)
    variables = jax.tree.map(lambda s: np.ones(s.shape, np.float32),
                             convert.template_variables(config))
    _, inferred = convert.torch_to_flax(convert.flax_to_torch(variables, config))
    assert {k: inferred.get(k, 1) for k in config} == config


@pytest.mark.parametrize("persons", [1, 3])
def test_mvc_data_bn_round_trip(persons):
    config = dict(num_classes=4, layout="coco", data_bn="MVC")
    variables = jax.tree.map(lambda s: np.ones(s.shape, np.float32),
                             convert.template_variables(config, num_persons=persons))
    sd = convert.flax_to_torch(variables, config)
    assert sd["data_bn.weight"].shape == (persons * 17 * 3,)
    back, inferred = convert.torch_to_flax(sd)
    assert inferred["data_bn"] == ("MVC" if persons > 1 else "VC")
    jax.tree.map(np.testing.assert_array_equal, back, variables)


def test_agcn_checkpoints_are_dispatched(shared_dir):
    from amstgcn_jax import agcn_convert

    path = shared_dir / "parity-agcn" / "agcn_kinetics_seed0.pt"
    if not path.exists():
        pytest.skip(f"{path} absent")
    variables, config = convert.load_pytorch_checkpoint(path)
    assert config["backbone"] == "agcn" and config["num_classes"] == 400
    expected = agcn_convert.torch_to_flax(torch_pickle.load_state_dict(path))
    jax.tree.map(np.testing.assert_array_equal, variables, expected)
    assert type(get_model(**config)).__name__ == "AGCN"
